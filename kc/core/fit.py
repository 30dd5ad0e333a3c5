"""Fitting g on feature pairs with the loss of Eq. 2: checks, warm start, schedule, stopping.

The measurement built on a fitted g (Eq. 3-4, Sec. 4.2) lives in :mod:`kc.core.measure`.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from kc.core.losses import consistency_loss
from kc.core.model import ConsistencyNet, as_map
from kc.core.normalize import NORM_MODES, fit_normalizer
from kc.core.precision import autocast, check_precision

RESIZE_MODES = ("pool", "interpolate")

#: Fewest images g is fitted on. Sigma(k) of Eq. 1 is a per-element variance over images;
#: estimated from n images its relative standard error is sqrt(2 / (n - 1)), 37% at n = 16
#: and over 50% below 8, so with fewer images the order components measure estimation
#: noise. 16 also leaves every mini-batch at least 16 images.
MIN_FIT_IMAGES = 16
#: Fewest images a (held-out) evaluation is measured on: one image has no spread across
#: images, so Var(x*) would describe a single picture, not the features.
MIN_EVAL_IMAGES = 2
#: A held-out slice for the stopping rule is used only when it has at least this many
#: images and leaves at least ``MIN_FIT_IMAGES`` to fit on.
MIN_HOLDOUT_IMAGES = 32


class ConvergenceWarning(UserWarning):
    """A fit of g stopped at its step budget before its loss plateaued."""


@dataclass(frozen=True)
class FitReport:
    """What one fit of g did (stored as ``g.fit_report`` and in the cache of g).

    Attributes:
        steps: optimiser steps taken.
        seconds: wall time of the optimisation (warm start included).
        final_loss: Eq. 2 on the training images, mean over the last check window.
        holdout_loss: Eq. 2 on the held-out slice at the kept state, or None without one.
        converged: True when the stopping rule stopped the fit, False when ``max_steps`` did.
        stopped_by: ``"plateau"`` or ``"max_steps"``.
        monitor: what the stopping rule watched: ``"holdout"`` or ``"train"``.
        best_step: step of the kept state (the best monitored loss).
        lr_initial, lr_final, max_steps: the log-spaced schedule lr -> lr_final over
            ``max_steps`` steps.
        warm_start: whether W(0) started from ridge least squares.
        n_fit, n_holdout: images fitted on and held out for the rule.
        history: ``(step, seconds, monitored loss)`` at every check, step 0 included
            with the warm start.
    """

    steps: int
    seconds: float
    final_loss: float
    holdout_loss: float | None
    converged: bool
    stopped_by: str
    monitor: str
    best_step: int
    lr_initial: float
    lr_final: float
    max_steps: int
    warm_start: bool
    n_fit: int
    n_holdout: int
    history: tuple[tuple[int, float, float], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for the cache and ``result.info["fit"]``)."""
        return asdict(self)


# ---------------------------------------------------------------------------- checks


def as_features(t: Any, name: str) -> Tensor:
    """Convert features to a float32 tensor once, at the boundary.

    Accepts a :class:`torch.Tensor`, a :class:`numpy.ndarray` or any array-like NumPy
    converts (nested lists); any floating dtype is cast once to float32 (the dtype g is
    fitted in). Integer, boolean and complex features are refused.

    Example:
        >>> as_features(np.zeros((2, 3)), "x").dtype
        torch.float32
    """
    if isinstance(t, (Dataset, DataLoader)):
        raise ValueError(f"{name} must be a tensor or array here, got {type(t).__name__}")
    if not isinstance(t, Tensor):
        try:
            t = torch.as_tensor(np.asarray(t))
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(
                f"{name} must be a torch.Tensor, a numpy.ndarray or an array-like of numbers, "
                f"got {type(t).__name__} ({err})"
            ) from None
    if not t.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {t.dtype}")
    return t.detach().to(torch.float32)


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


def check_aligned(ids: tuple[Any, Any] | None, n: int) -> None:
    """Refuse a feature pair whose two sides describe different images.

    Args:
        ids: ``(ids_x, ids_x_star)``: image ids or labels of the rows of x and x*, each of
            length N (tensors, arrays or sequences); None skips the check.
        n: the batch size N of the pair.

    Example:
        >>> check_aligned(([0, 1, 2], [0, 2, 1]), 3)
        Traceback (most recent call last):
        ...
        ValueError: x and x_star are not aligned: their ids differ at 2 of 3 rows (first at row 1: 1 vs 2)
    """
    if ids is None:
        return
    if not (isinstance(ids, (tuple, list)) and len(ids) == 2):
        raise ValueError("ids must be a pair (ids_x, ids_x_star) of per-image ids or labels")
    a, b = (np.asarray(v.cpu() if isinstance(v, Tensor) else v).reshape(-1) for v in ids)
    if len(a) != n or len(b) != n:
        raise ValueError(f"expected {n} ids on each side (one per image), got {len(a)} and {len(b)}")
    differ = np.flatnonzero(a != b)
    if len(differ):
        i = int(differ[0])
        raise ValueError(
            f"x and x_star are not aligned: their ids differ at {len(differ)} of {n} rows "
            f"(first at row {i}: {a[i]} vs {b[i]})"
        )


def check_pair(
    x: Tensor,
    x_star: Tensor,
    resize: str | None = None,
    *,
    min_images: int = 1,
    ids: tuple[Any, Any] | None = None,
) -> None:
    """Validate a feature pair (x, x*) once, at the boundary, with explicit messages.

    Args:
        x, x_star: features (N, C, H, W) or (N, C) as tensors.
        resize: None, ``"pool"`` or ``"interpolate"``.
        min_images: refuse fewer images than this (``MIN_FIT_IMAGES`` for a fit).
        ids: optional ``(ids_x, ids_x_star)``, checked with :func:`check_aligned`.
    """
    _check_feature(x, "x")
    _check_feature(x_star, "x_star")
    if x.shape[0] != x_star.shape[0]:
        raise ValueError(
            f"expected x and x_star with the same batch size, got {x.shape[0]} and {x_star.shape[0]}"
        )
    if x.shape[0] < min_images:
        raise ValueError(f"need at least {min_images} images, got N = {x.shape[0]}")
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
    if x_star.numel() and bool((x_star == x_star.reshape(-1)[0]).all()):
        raise ValueError(
            f"x_star is constant (every value is {float(x_star.reshape(-1)[0]):g}): there is "
            "nothing to reconstruct and Var(x*) = 0 makes the instability undefined"
        )
    check_aligned(ids, x.shape[0])


def match_spatial(x: Tensor, size: tuple[int, int], resize: str | None) -> Tensor:
    """Bring x (N, C, H, W) to the spatial ``size`` of the target (explicit, never silent)."""
    if x.dim() != 4 or tuple(x.shape[2:]) == tuple(size):
        return x
    if resize == "pool":
        return F.adaptive_avg_pool2d(x, size)
    if resize == "interpolate":
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    raise ValueError(f"spatial sizes differ ({tuple(x.shape[2:])} vs {tuple(size)}) and resize={resize!r}")


def prepare(
    g: ConsistencyNet, x: Any, x_star: Any = None, *, resize: str | None = None
) -> tuple[Tensor, Tensor | None]:
    """Apply g's stored normalisers (and the resize) to raw features.

    Args:
        g: a fitted consistency network.
        x: raw input feature (N, C, H, W) or (N, C) (tensor or array-like, cast to float32).
        x_star: raw target feature, or None.
        resize: how to match x to the spatial size of x_star (see :func:`check_pair`).

    Returns:
        (normalised x, normalised x_star or None).
    """
    x = as_features(x, "x")
    if x_star is not None:
        x_star = as_features(x_star, "x_star")
        check_pair(x, x_star, resize)
        x = match_spatial(x, tuple(x_star.shape[2:]), resize)
    else:
        _check_feature(x, "x")
    nx, ns = g.normalizer("x"), g.normalizer("x_star")
    x = nx(x) if nx is not None else x
    if x_star is not None and ns is not None:
        x_star = ns(x_star)
    return x, x_star


def _materialise(x: Any, x_star: Any) -> tuple[Tensor, Tensor]:
    """Turn the accepted inputs into two float32 tensors (one pass, at the boundary)."""
    if isinstance(x, (Dataset, DataLoader)):
        if x_star is not None:
            raise ValueError("pass x_star=None when x is a Dataset or DataLoader of (x, x_star) pairs")
        loader = x if isinstance(x, DataLoader) else DataLoader(x, batch_size=1024, shuffle=False)
        xs, ts = zip(*((xb, tb) for xb, tb in loader), strict=True) if len(loader) else ((), ())
        if not xs:
            raise ValueError(f"need at least {MIN_FIT_IMAGES} images to fit g, got 0")
        return as_features(torch.cat(xs), "x"), as_features(torch.cat(ts), "x_star")
    if x_star is None:
        raise ValueError(
            "x_star is missing: pass x and x_star as tensors or arrays of shape (N, C, H, W) "
            "or (N, C), or x as a Dataset / DataLoader of (x, x_star) pairs"
        )
    return as_features(x, "x"), as_features(x_star, "x_star")


# ---------------------------------------------------------------------------- warm start


@torch.no_grad()
def ridge_patches(x: Tensor, x_star: Tensor, kernel_size: int, ridge: float = 1e-6,
                  chunk: int = 256) -> Tensor:
    """Ridge least squares of x* on the k x k patches of x: the optimal W(0) when K = 0.

    Solves ``min_W sum ||x*_{n,:,i} - W patch_{n,i}(x)||^2 + ridge * tr(A^T A)/d * ||W||^2``
    over all images n and positions i, with 'same' zero padding (the convolution of
    :class:`ConsistencyNet`). The normal equations are accumulated in float64 over chunks
    of images, so memory stays at one chunk of patches.

    Args:
        x: normalised input (N, C, H, W) or (N, C).
        x_star: normalised target (N, C*, H, W) or (N, C*).
        kernel_size: odd k.
        ridge: relative ridge (times the mean diagonal of the Gram matrix).
        chunk: images per chunk.

    Returns:
        A conv weight of shape (C*, C, k, k).

    Example:
        >>> x = torch.randn(32, 3, 4, 4)
        >>> w = ridge_patches(x, x[:, [2, 0, 1]], 3)
        >>> torch.allclose(F.conv2d(x, w, padding=1), x[:, [2, 0, 1]], atol=1e-3)
        True
    """
    xm, _ = as_map(x)
    tm, _ = as_map(x_star)
    c, c_out, k = xm.shape[1], tm.shape[1], kernel_size
    d = c * k * k
    gram = torch.zeros(d, d, dtype=torch.float64, device=x.device)
    cross = torch.zeros(d, c_out, dtype=torch.float64, device=x.device)
    for i in range(0, xm.shape[0], chunk):
        a = F.unfold(xm[i:i + chunk], k, padding=k // 2).transpose(1, 2).reshape(-1, d)
        t = tm[i:i + chunk].flatten(2).transpose(1, 2).reshape(-1, c_out)
        gram += (a.T @ a).double()
        cross += (a.T @ t).double()
    scale = float(gram.diagonal().mean()) or 1.0
    gram.diagonal().add_(ridge * scale)
    w = torch.linalg.solve(gram, cross)  # (d, C*)
    return w.T.reshape(c_out, c, k, k).to(x.dtype)


# ---------------------------------------------------------------------------- fitting


def _lr_at(step: int, lr: float, lr_final: float, max_steps: int) -> float:
    frac = step / max(max_steps - 1, 1)
    return math.exp(math.log(lr) + frac * (math.log(lr_final) - math.log(lr)))


@torch.no_grad()
def _eval_loss(g: ConsistencyNet, x: Tensor, t: Tensor, lam: float, chunk: int = 1024) -> float:
    was = g.training
    g.eval()
    se = sum(float(F.mse_loss(g(x[i:i + chunk]), t[i:i + chunk], reduction="sum"))
             for i in range(0, x.shape[0], chunk))
    g.train(was)
    return se / t.numel() + lam * float((g.p ** 2).sum())


def fit_consistency(
    x: Any,
    x_star: Any = None,
    *,
    order: int = 2,
    lam: float = 0.1,
    max_steps: int = 2000,
    min_steps: int | None = None,
    lr: float = 1e-2,
    lr_final: float | None = None,
    batch_size: int = 128,
    tol: float = 1e-3,
    window: int = 50,
    holdout: float = 0.1,
    warm_start: bool = False,
    weight_decay: float = 1e-4,
    p_lr_scale: float = 10.0,
    precision: str = "fp32",
    seed: int = 0,
    sigma: str = "batch",
    kernel_size: int = 3,
    p_init: float = 0.5,
    normalize_x: bool = True,
    normalize_x_star: bool = True,
    norm_mode: str = "global",
    resize: str | None = None,
    ids: tuple[Any, Any] | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> ConsistencyNet:
    """Train g to reconstruct x* from x with the loss of Eq. 2, to a plateau.

    Inputs are converted once (NumPy / array-likes to tensors, any floating dtype to
    float32) and both features are normalised once to zero mean and unit variance
    (footnote 2; the released code instead scales x per sample and channel and leaves x*
    raw). The statistics are stored in g. Mini-batches are drawn from the tensors by index
    (a seeded permutation per pass).

    Optimisation: Adam with weight decay, the learning rate decaying log-linearly from
    ``lr`` to ``lr_final`` (default ``lr / 100``) over ``max_steps`` optimiser steps (the
    released code does the same from 1e-4 to 1e-6 over 800 epochs).

    Stopping rule: every ``window`` steps the Eq. 2 loss is evaluated (g in eval mode) on
    a fixed monitor set: a held-out slice of ``round(holdout * N)`` images (seeded choice,
    not fitted on) when that slice has at least ``MIN_HOLDOUT_IMAGES`` images and leaves at
    least ``MIN_FIT_IMAGES``; else the whole training set. Averaging over the set is the
    smoothing. With ``best`` the lowest earlier check after step 0, the fit stops at the
    first check at or after ``min_steps`` whose loss is not below
    ``best - tol * max(best, 0.01 * mean(x*^2))`` (a relative improvement below ``tol``;
    the floor, 1% of the monitored target's power, keeps a loss falling towards 0 from
    never plateauing) with ``converged=True``; or at ``max_steps`` (``converged=False``
    and one :class:`ConvergenceWarning`). g keeps the state of the best check, the warm
    start (step 0) included.

    Warm start (``warm_start=True``, our addition; the released code starts at random):
    W(0) is set to the ridge least-squares map of x* on the k x k patches of x
    (:func:`ridge_patches`, the optimum for K = 0); the higher branches start as without it
    (random W(k), p(k) = ``p_init``). Off by default, by measurement
    (``benchmarks/fit_speed.py``, synthetic Table 1-like features, 8 x 8, N = 2000): it
    reached a random start's loss sooner and ended lower at C = 16, but needed twice the
    steps at C = 32 and ended clearly worse at C = 64 (held-out instability 0.333 against
    0.295). It helps on planted linear structure: on a channel permutation it converges in
    ~400 steps with x(0) carrying all of x*, where a random start leaves ~6% in x(1), x(2).

    After the fit the ``"batch"`` variances are calibrated exactly on the fitting images.

    Args:
        x: input features (N, C, H, W) or (N, C) (tensor, NumPy array or array-like); or a
            Dataset / DataLoader of (x, x*) pairs (then ``x_star`` is None), read once into
            memory.
        x_star: target features (N, C*, H*, W*) or (N, C*).
        order: K of Eq. 1.
        lam: lambda of Eq. 2.
        max_steps, min_steps: most and fewest optimiser steps (``min_steps`` defaults to
            ``min(100, max_steps)``).
        lr, lr_final: the schedule's first and last learning rates.
        batch_size: images per step (capped at the number of fitting images).
        tol, window, holdout: the stopping rule above.
        warm_start: start W(0) from least squares (default: PyTorch's random init).
        weight_decay: Adam's L2 coefficient.
        p_lr_scale: the learning rate of the p(k) (their logits) relative to the rest's. 10
            by default: at 1 (until 2026-12) the p(k) of a fit with a large lambda (AlexNet's
            8) shrank at the decaying pace of the rest's rate and the fit never plateaued,
            and a planted exact relation could stop in a saddle (``benchmarks/README.md``).
        precision: ``"fp32"`` or ``"bf16"``: the arithmetic of the training steps' forward
            pass (:mod:`kc.core.precision`); the stopping rule's loss, the calibration of
            Sigma and everything measured afterwards stay in fp32.
        seed: seeds the initialisation, the held-out slice and the batches; on the CPU
            the fit is deterministic.
        sigma, kernel_size: see :class:`ConsistencyNet`.
        p_init: initial p(k).
        normalize_x, normalize_x_star: apply footnote 2 to x and x*.
        norm_mode: ``"global"`` or ``"channel"`` statistics (see :func:`kc.fit_normalizer`).
        resize: ``"pool"`` or ``"interpolate"`` to map x onto the spatial size of x*.
        ids: optional ``(ids_x, ids_x_star)`` image ids or labels per row; misaligned
            pairs are refused.
        device: where to train (default: CPU); the returned g is on the CPU.
        progress: show a tqdm bar over steps.

    Returns:
        The fitted :class:`ConsistencyNet` in eval mode, with its :class:`FitReport` in
        ``g.fit_report``.

    Example:
        >>> x = torch.randn(64, 4, 5, 5)
        >>> g = fit_consistency(x, x[:, [2, 0, 3, 1]], max_steps=100, warm_start=True,
        ...                     progress=False)
        >>> g.fit_report.steps, g.fit_report.monitor, g.fit_report.n_fit
        (100, 'train', 64)
    """
    if not isinstance(order, int) or order < 0:
        raise ValueError(f"order must be an integer >= 0, got {order!r}")
    if lam < 0:
        raise ValueError(f"lam must be >= 0, got {lam}")
    if min_steps is None and isinstance(max_steps, int):
        min_steps = min(100, max_steps)
    if not (isinstance(max_steps, int) and isinstance(min_steps, int) and 1 <= min_steps <= max_steps):
        raise ValueError(f"need integers 1 <= min_steps <= max_steps, got {min_steps} and {max_steps}")
    if batch_size < 2 or window < 1:
        raise ValueError(f"batch_size must be >= 2 and window >= 1, got {batch_size} and {window}")
    if not (0.0 <= holdout < 1.0) or tol < 0:
        raise ValueError(f"holdout must lie in [0, 1) and tol be >= 0, got {holdout} and {tol}")
    lr_final = lr / 100 if lr_final is None else lr_final
    if not p_lr_scale > 0:
        raise ValueError(f"p_lr_scale must be > 0, got {p_lr_scale}")
    if lr <= 0 or lr_final <= 0:
        raise ValueError(f"lr and lr_final must be > 0, got {lr} and {lr_final}")
    if norm_mode not in NORM_MODES:
        raise ValueError(f"norm_mode must be one of {NORM_MODES}, got {norm_mode!r}")
    device = torch.device(device) if device is not None else torch.device("cpu")
    check_precision(precision, device)
    x, x_star = _materialise(x, x_star)
    if x.shape[0] < MIN_FIT_IMAGES and x.shape[0] == x_star.shape[0]:
        raise ValueError(f"need at least {MIN_FIT_IMAGES} images to fit g, got N = {x.shape[0]}")
    check_pair(x, x_star, resize, ids=ids)
    x = match_spatial(x, tuple(x_star.shape[2:]), resize) if x.dim() == 4 else x
    start = time.perf_counter()
    gen = torch.Generator().manual_seed(seed)

    # held-out slice for the stopping rule
    n = x.shape[0]
    n_hold = round(holdout * n)
    if n_hold < MIN_HOLDOUT_IMAGES or n - n_hold < MIN_FIT_IMAGES:
        n_hold = 0
    order_idx = torch.randperm(n, generator=gen) if n_hold else torch.arange(n)
    fit_idx, hold_idx = order_idx[n_hold:], order_idx[:n_hold]

    # footnote 2, once, on the fitting images only
    nx = fit_normalizer(x[fit_idx], norm_mode) if normalize_x else None
    ns = fit_normalizer(x_star[fit_idx], norm_mode) if normalize_x_star else None
    xn = (nx(x) if nx is not None else x).to(device)
    tn = (ns(x_star) if ns is not None else x_star).to(device)
    xf, tf = xn[fit_idx.to(device)], tn[fit_idx.to(device)]
    xh, th = (xn[hold_idx.to(device)], tn[hold_idx.to(device)]) if n_hold else (xf, tf)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        g = ConsistencyNet(x.shape[1], x_star.shape[1], order=order, kernel_size=kernel_size,
                           sigma=sigma, p_init=p_init)
    g.set_normalizers(nx, ns)
    g.to(device)
    if warm_start:
        g.weights[0].weight.data.copy_(ridge_patches(xf, tf, kernel_size))
    g.train()

    others = [q for name, q in g.named_parameters() if name != "p_logit"]
    groups = [{"params": others, "scale": 1.0}]
    if order > 0:
        groups.append({"params": [g.p_logit], "scale": float(p_lr_scale)})
    opt = torch.optim.Adam(groups, lr=lr, weight_decay=weight_decay)
    n_fit, bs = xf.shape[0], min(batch_size, xf.shape[0])
    perm, pos = torch.randperm(n_fit, generator=gen), 0
    floor = 0.01 * float(th.square().mean())  # 1% of the monitored target's power
    best = _eval_loss(g, xh, th, lam) if warm_start else math.inf
    rule_best = math.inf  # the rule compares trained checks only (never the warm start)
    best_state = {k: v.detach().clone() for k, v in g.state_dict().items()} if warm_start else None
    best_step, window_sum, window_n, last_window = 0, 0.0, 0, math.nan
    history = [(0, time.perf_counter() - start, best)] if warm_start else []
    stopped_by = "max_steps"
    bar = tqdm(total=max_steps, desc=f"fit g (K={order})", disable=not progress, leave=False)
    step = 0
    while step < max_steps:
        if pos + bs > n_fit:
            perm, pos = torch.randperm(n_fit, generator=gen), 0
        idx = perm[pos:pos + bs].to(device)
        pos += bs
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, lr, lr_final, max_steps) * group["scale"]
        with autocast(precision, device):
            loss = consistency_loss(g, xf[idx], tf[idx], lam)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        window_sum += float(loss.detach())
        window_n += 1
        if step % window == 0 or step == max_steps:
            last_window, window_sum, window_n = window_sum / window_n, 0.0, 0
            current = _eval_loss(g, xh, th, lam)
            history.append((step, time.perf_counter() - start, current))
            improved = rule_best - current > tol * max(rule_best, floor)
            rule_best = min(rule_best, current)
            if current < best:
                best, best_step = current, step
                best_state = {k: v.detach().clone() for k, v in g.state_dict().items()}
            bar.update(window if step % window == 0 else step % window)
            bar.set_postfix(loss=f"{current:.4f}")
            if step >= min_steps and not improved and step < max_steps:
                stopped_by = "plateau"
                break
    bar.close()
    if best_state is not None:
        # a state from before the first step may lack the running Sigma buffers; they are
        # recalibrated below in any case
        missing, unexpected = g.load_state_dict(best_state, strict=False)
        if unexpected or any(not k.endswith("running_var") for k in missing):
            raise RuntimeError(f"could not restore the best state: {missing}, {unexpected}")
    g.eval()
    g.calibrate([xf[i:i + 1024] for i in range(0, n_fit, 1024)])
    report = FitReport(
        steps=step,
        seconds=round(time.perf_counter() - start, 4),
        final_loss=float(last_window),
        holdout_loss=_eval_loss(g, xh, th, lam) if n_hold else None,
        converged=stopped_by == "plateau",
        stopped_by=stopped_by,
        monitor="holdout" if n_hold else "train",
        best_step=best_step,
        lr_initial=float(lr),
        lr_final=float(lr_final),
        max_steps=max_steps,
        warm_start=warm_start,
        n_fit=int(n_fit),
        n_holdout=int(n_hold),
        history=tuple((int(s), round(t, 4), float(v)) for s, t, v in history),
    )
    if not report.converged:
        warnings.warn(
            f"g did not converge: its loss still improved by more than tol={tol} over the last "
            f"{window} steps when max_steps={max_steps} was reached; raise max_steps (or lr) "
            "and check result.info['fit']",
            ConvergenceWarning,
            stacklevel=2,
        )
    g = g.cpu()
    g.fit_report = report
    return g


__all__: Sequence[str] = (
    "ConvergenceWarning", "FitReport", "MIN_EVAL_IMAGES", "MIN_FIT_IMAGES", "as_features",
    "check_aligned", "check_pair", "fit_consistency", "match_spatial", "prepare", "ridge_patches",
)
