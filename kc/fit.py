"""Fitting g (Eq. 2) on feature pairs and measuring consistency (Eq. 3-4, Sec. 4.2)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from kc.decompose import decompose
from kc.losses import consistency_loss
from kc.metrics import variance
from kc.model import ConsistencyNet
from kc.normalize import NORM_MODES, Normalizer, fit_normalizer

RESIZE_MODES = ("pool", "interpolate")


# ---------------------------------------------------------------------------- checks


def _check_feature(t: Tensor, name: str) -> None:
    if not isinstance(t, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() not in (2, 4):
        raise ValueError(
            f"{name} must have shape (N, C) or (N, C, H, W), got shape {tuple(t.shape)}"
        )
    if not t.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {t.dtype}")
    if not torch.isfinite(t).all():
        bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"{name} contains {bad} NaN or Inf values")


def check_pair(x: Tensor, x_star: Tensor, resize: str | None = None) -> None:
    """Validate a feature pair (x, x*) once, at the boundary, with explicit messages."""
    _check_feature(x, "x")
    _check_feature(x_star, "x_star")
    if x.shape[0] != x_star.shape[0]:
        raise ValueError(
            f"expected x and x_star with the same batch size, got {x.shape[0]} and {x_star.shape[0]}"
        )
    if x.dim() != x_star.dim():
        raise ValueError(
            f"x and x_star must both be maps or both vectors, got shapes {tuple(x.shape)} "
            f"and {tuple(x_star.shape)}"
        )
    if resize is not None and resize not in RESIZE_MODES:
        raise ValueError(f"resize must be None or one of {RESIZE_MODES}, got {resize!r}")
    if x.dim() == 4 and x.shape[2:] != x_star.shape[2:] and resize is None:
        raise ValueError(
            f"x and x_star have different spatial sizes {tuple(x.shape[2:])} and "
            f"{tuple(x_star.shape[2:])}; pass resize='pool' or resize='interpolate' to map x "
            "onto the size of x_star"
        )


def match_spatial(x: Tensor, size: tuple[int, int], resize: str | None) -> Tensor:
    """Bring x (N, C, H, W) to the spatial ``size`` of the target (explicit, never silent)."""
    if x.dim() != 4 or tuple(x.shape[2:]) == tuple(size):
        return x
    if resize == "pool":
        return F.adaptive_avg_pool2d(x, size)
    if resize == "interpolate":
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    raise ValueError(f"spatial sizes differ ({tuple(x.shape[2:])} vs {tuple(size)}) and resize={resize!r}")


# ---------------------------------------------------------------------------- fitting


def _pairs(x, x_star) -> tuple[Dataset | DataLoader, bool]:
    """Return the source of (x, x*) pairs and whether it is two in-memory tensors."""
    if isinstance(x, Tensor):
        if not isinstance(x_star, Tensor):
            raise ValueError("x_star must be a tensor when x is a tensor")
        return torch.utils.data.TensorDataset(x, x_star), True
    if x_star is not None:
        raise ValueError("pass x_star=None when x is a Dataset or DataLoader of (x, x_star) pairs")
    if isinstance(x, (Dataset, DataLoader)):
        return x, False
    raise ValueError(f"x must be a Tensor, Dataset or DataLoader, got {type(x).__name__}")


def _set_norm(g: ConsistencyNet, prefix: str, stats: Normalizer | None) -> None:
    if stats is None:
        setattr(g, prefix + "_mean", None)
        setattr(g, prefix + "_std", None)
    else:
        setattr(g, prefix + "_mean", stats.mean.clone())
        setattr(g, prefix + "_std", stats.std.clone())


def prepare(
    g: ConsistencyNet, x: Tensor, x_star: Tensor | None = None, *, resize: str | None = None
) -> tuple[Tensor, Tensor | None]:
    """Apply g's stored normalisers (and the resize) to raw features.

    Args:
        g: a fitted consistency network.
        x: raw input feature (N, C, H, W) or (N, C).
        x_star: raw target feature, or None.
        resize: how to match x to the spatial size of x_star (see :func:`check_pair`).

    Returns:
        (normalised x, normalised x_star or None).
    """
    if x_star is not None:
        check_pair(x, x_star, resize)
        x = match_spatial(x, tuple(x_star.shape[2:]), resize)
    nx, ns = g.normalizer("x"), g.normalizer("x_star")
    x = nx(x) if nx is not None else x
    if x_star is not None and ns is not None:
        x_star = ns(x_star)
    return x, x_star


def _stream(source, batch_size: int, generator: torch.Generator | None) -> Iterator:
    if isinstance(source, DataLoader):
        yield from source
        return
    loader = DataLoader(source, batch_size=batch_size, shuffle=generator is not None,
                        generator=generator, drop_last=False)
    yield from loader


def fit_consistency(
    x: Tensor | Dataset | DataLoader,
    x_star: Tensor | None = None,
    *,
    order: int = 3,
    lam: float = 0.1,
    epochs: int = 40,
    batch_size: int = 64,
    lr: float = 3e-2,
    lr_final: float | None = None,
    weight_decay: float = 1e-4,
    seed: int = 0,
    sigma: str = "batch",
    kernel_size: int = 3,
    p_init: float = 0.5,
    normalize_x: bool = True,
    normalize_x_star: bool = True,
    norm_mode: str = "global",
    resize: str | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> ConsistencyNet:
    """Train g to reconstruct x* from x with the loss of Eq. 2.

    Adam with weight decay and a learning rate decaying log-linearly from ``lr`` to
    ``lr_final`` (default ``lr / 100``) over the epochs; the authors' released code uses
    the same scheme from 1e-4 to 1e-6 over many more epochs. Both features are normalised
    to zero mean and unit variance by default (footnote 2), with statistics from these
    training features stored inside the returned g. After training, the ``"batch"``
    variances are calibrated exactly on the training inputs.

    Args:
        x: input features (N, C, H, W) or (N, C); or a Dataset / DataLoader of
            (x, x*) pairs (then ``x_star`` is None), for features that do not fit in memory.
        x_star: target features (N, C*, H*, W*) or (N, C*).
        order: K of Eq. 1.
        lam: lambda of Eq. 2.
        epochs, batch_size, lr, lr_final, weight_decay: optimisation.
        seed: seeds the initialisation and the shuffling; on CPU the fit is deterministic.
        sigma, kernel_size, p_init: see :class:`ConsistencyNet`.
        normalize_x, normalize_x_star: apply footnote 2 to x and x*.
        norm_mode: ``"global"`` or ``"channel"`` statistics (see :func:`kc.fit_normalizer`).
        resize: ``"pool"`` or ``"interpolate"`` to map x onto the spatial size of x*.
        device: where to train (default: CPU); the returned g is on the CPU.
        progress: show a tqdm bar over epochs.

    Returns:
        The fitted :class:`ConsistencyNet` in eval mode.
    """
    if not isinstance(order, int) or order < 0:
        raise ValueError(f"order must be an integer >= 0, got {order!r}")
    if lam < 0:
        raise ValueError(f"lam must be >= 0, got {lam}")
    if epochs < 1 or batch_size < 1:
        raise ValueError(f"epochs and batch_size must be >= 1, got {epochs} and {batch_size}")
    if norm_mode not in NORM_MODES:
        raise ValueError(f"norm_mode must be one of {NORM_MODES}, got {norm_mode!r}")
    if isinstance(x, Tensor) and isinstance(x_star, Tensor):
        check_pair(x, x_star, resize)
    source, in_memory = _pairs(x, x_star)
    if in_memory:
        if x.dim() == 4:
            x = match_spatial(x, tuple(x_star.shape[2:]), resize)
        source = torch.utils.data.TensorDataset(x, x_star)
        sample_x, sample_t = x[:1], x_star[:1]
    else:
        sample_x, sample_t = next(iter(_stream(source, 1, None)))
        check_pair(sample_x, sample_t, resize)
    device = torch.device(device) if device is not None else torch.device("cpu")

    def raw_batches(which: int, bs: int = 512) -> Iterable[Tensor]:
        for xb, tb in _stream(source, bs, None):
            if which == 0:
                yield match_spatial(xb, tuple(tb.shape[2:]), resize) if xb.dim() == 4 else xb
            else:
                yield tb

    class _Re:  # a re-iterable view for the normaliser and the calibration passes
        def __init__(self, fn):
            self.fn = fn

        def __iter__(self):
            return iter(self.fn())

    nx = fit_normalizer(_Re(lambda: raw_batches(0)), norm_mode) if normalize_x else None
    ns = fit_normalizer(_Re(lambda: raw_batches(1)), norm_mode) if normalize_x_star else None

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        g = ConsistencyNet(sample_x.shape[1], sample_t.shape[1], order=order,
                           kernel_size=kernel_size, sigma=sigma, p_init=p_init)
    _set_norm(g, "x", nx)
    _set_norm(g, "x_star", ns)
    g.to(device).train()

    opt = torch.optim.Adam(g.parameters(), lr=lr, weight_decay=weight_decay)
    lr_final = lr / 100 if lr_final is None else lr_final
    shuffle = torch.Generator().manual_seed(seed)
    bar = tqdm(range(epochs), desc=f"fit g (K={order})", disable=not progress, leave=False)
    for epoch in bar:
        frac = epoch / max(epochs - 1, 1)
        for group in opt.param_groups:
            group["lr"] = math.exp(math.log(lr) + frac * (math.log(lr_final) - math.log(lr)))
        total, n = 0.0, 0
        for xb, tb in _stream(source, batch_size, shuffle):
            if xb.dim() == 4:
                xb = match_spatial(xb, tuple(tb.shape[2:]), resize)
            xb = nx(xb) if nx is not None else xb
            tb = ns(tb) if ns is not None else tb
            xb, tb = xb.to(device), tb.to(device)
            loss = consistency_loss(g, xb, tb, lam)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * xb.shape[0]
            n += xb.shape[0]
        bar.set_postfix(loss=f"{total / max(n, 1):.4f}")
    g.eval()

    def norm_inputs():
        for xb in raw_batches(0):
            yield (nx(xb) if nx is not None else xb).to(device)

    g.calibrate(_Re(norm_inputs))
    return g.cpu()


# ---------------------------------------------------------------------------- measuring


@dataclass
class ConsistencyResult:
    """What :func:`consistency` measures (all tensors on the CPU, normalised units).

    Attributes:
        model: the fitted g.
        components: ``"x0"`` .. ``"xK"`` (Eq. 4) and ``"delta"`` = x* - g(x) (Eq. 3), each
            with the shape of x*.
        target: the normalised x* the components decompose.
        variances: Var of each component and of x* (Sec. 4.2), normalised units; index
            ``Var(x0)``, ..., ``Var(xK)``, ``Var(delta)``, ``Var(x*)``.
        variances_raw: the same in the raw units of x* (components rescaled by x*'s std).
        instability: Var(delta) / Var(x*).
        evaluated_on: ``"test"`` or ``"train"`` (the fitting pair itself).
    """

    model: ConsistencyNet
    components: dict[str, Tensor]
    target: Tensor
    variances: pd.Series
    variances_raw: pd.Series
    instability: float
    evaluated_on: str = "test"
    info: dict = field(default_factory=dict)

    @property
    def consistent(self) -> Tensor:
        """g(x) = x(0) + ... + x(K)."""
        return self.target - self.components["delta"]

    def __repr__(self) -> str:
        vs = ", ".join(f"{k}={v:.4g}" for k, v in self.variances.items())
        return (f"ConsistencyResult(order={self.model.order}, instability={self.instability:.4f}, "
                f"evaluated_on={self.evaluated_on!r}, {vs})")


@torch.no_grad()
def evaluate_consistency(
    g: ConsistencyNet,
    x: Tensor,
    x_star: Tensor,
    *,
    resize: str | None = None,
    batch_size: int = 256,
    evaluated_on: str = "test",
) -> ConsistencyResult:
    """Decompose x* into x(0)..x(K) and x_Delta with a fitted g, and measure variances.

    Args:
        g: a fitted consistency network (its stored normalisers are applied).
        x: raw input features (N, C, H, W) or (N, C).
        x_star: raw target features with N matching.
        resize: as in :func:`fit_consistency`.
        batch_size: images per decomposition batch (memory only).
        evaluated_on: label recorded in the result.

    Returns:
        A :class:`ConsistencyResult`; ``instability`` = Var(x_Delta) / Var(x*) (Sec. 4.2).
    """
    xn, tn = prepare(g, x, x_star, resize=resize)
    g.eval()
    parts = [decompose(g, xn[i:i + batch_size]) for i in range(0, xn.shape[0], batch_size)]
    comps = torch.cat(parts, dim=1)
    names = [f"x{k}" for k in range(g.order + 1)]
    components = {name: comps[k] for k, name in enumerate(names)}
    components["delta"] = tn - comps.sum(0)
    std = g.normalizer("x_star")
    scale = std.std if std is not None else torch.tensor(1.0)
    index = [f"Var({n})" for n in names] + ["Var(delta)", "Var(x*)"]
    tensors = [components[n] for n in names] + [components["delta"], tn]
    variances = pd.Series([variance(t) for t in tensors], index=index, name="variance")
    raw = pd.Series([variance(t * scale) for t in tensors], index=index, name="variance (raw units)")
    return ConsistencyResult(
        model=g,
        components=components,
        target=tn,
        variances=variances,
        variances_raw=raw,
        instability=variances["Var(delta)"] / variances["Var(x*)"],
        evaluated_on=evaluated_on,
    )


def consistency(
    x: Tensor,
    x_star: Tensor,
    *,
    order: int = 3,
    lam: float = 0.1,
    test: tuple[Tensor, Tensor] | None = None,
    **fit_kwargs,
) -> ConsistencyResult:
    """Fit g on (x, x*) and decompose a feature pair: the one-call API.

    Args:
        x: input features of network A, (N, C, H, W) or (N, C).
        x_star: target features of network B for the same N images.
        order: K of Eq. 1.
        lam: lambda of Eq. 2.
        test: a held-out pair (x_test, x_star_test) to evaluate on. Without it the
            result is measured on the training pair (``evaluated_on == "train"``), which
            understates the residual of an expressive g.
        **fit_kwargs: passed to :func:`fit_consistency` (epochs, lr, seed, sigma, ...).

    Returns:
        A :class:`ConsistencyResult` with components, variances and instability.

    Example:
        >>> x = torch.randn(64, 4, 5, 5)
        >>> res = consistency(x, x[:, [2, 0, 3, 1]], order=1, epochs=5, progress=False)
        >>> res.instability < 0.1
        True
    """
    g = fit_consistency(x, x_star, order=order, lam=lam, **fit_kwargs)
    resize = fit_kwargs.get("resize")
    if test is None:
        return evaluate_consistency(g, x, x_star, resize=resize, evaluated_on="train")
    if not (isinstance(test, tuple) and len(test) == 2):
        raise ValueError("test must be a pair (x_test, x_star_test)")
    return evaluate_consistency(g, test[0], test[1], resize=resize, evaluated_on="test")
