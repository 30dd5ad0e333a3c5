"""Planted feature pairs of known structure: the ground truth for the order decomposition.

A target x* is made from a source x by a random convolutional network of known depth (0, 1,
2 or 4 ReLU layers) plus independent noise of a chosen share, and split exactly into three
parts that are orthogonal in the global inner product of :func:`kc.variance` (so their
variances add up to Var(x*)):

* ``linear``: the least-squares projection of the network output on linear functions of the
  k x k patches of x (k = ``kernel_size``, the reach of g's order-0 branch W(0) x) plus a bias
  per channel. The network's first convolution is k x k and every later one 1 x 1, so the
  output at a position depends on that patch only and this is its best linear part;
* ``nonlinear``: the rest of the network output (zero for depth 0): what only orders >= 1 of
  g can explain;
* ``noise``: independent Gaussian noise, orthogonalised against the other two.

``shares`` = Var(part) / Var(x*) are known exactly on the generated samples. What the order
decomposition should find on held-out data: Var(x(0)) / Var(x*) near the linear share, the
higher orders near the nonlinear share, and the instability near the noise share.
:func:`recover` fits g on one split and measures that on the other, beside the baselines of
:mod:`kc.core.similarity`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kc.core.metrics import variance

DEPTHS = (0, 1, 2, 4)
PARTS = ("linear", "nonlinear", "noise")


def random_network(
    depth: int,
    in_channels: int,
    out_channels: int,
    *,
    kernel_size: int = 3,
    hidden: int | None = None,
    bias: float = 0.5,
    generator: torch.Generator | None = None,
) -> nn.Sequential:
    """A frozen random CNN with ``depth`` ReLU layers whose receptive field is one k x k patch.

    depth 0: one k x k convolution. depth >= 1: k x k conv -> [ReLU -> 1 x 1 conv] x depth,
    the last conv mapping to ``out_channels``. Weights are N(0, gain / fan_in) (gain 1 for the
    first layer, 2 after a ReLU), biases of the hidden layers N(0, bias^2) (so the ReLUs are
    not all centred on 0).

    Args:
        depth: number of ReLU layers, >= 0.
        in_channels, out_channels: C of x and C* of x*.
        kernel_size: odd side k of the first convolution ('same' zero padding).
        hidden: width of the hidden layers (default ``in_channels``, the width of g's).
        bias: standard deviation of the hidden biases.
        generator: source of the random weights.
    """
    if not isinstance(depth, int) or depth < 0:
        raise ValueError(f"depth must be an integer >= 0, got {depth!r}")
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size!r}")
    hidden = hidden or in_channels
    widths = [in_channels] + [hidden] * depth + [out_channels]
    layers: list[nn.Module] = []
    for i in range(depth + 1):
        k = kernel_size if i == 0 else 1
        conv = nn.Conv2d(widths[i], widths[i + 1], k, padding=k // 2, bias=True)
        fan_in = widths[i] * k * k
        gain = 1.0 if i == 0 else 2.0
        with torch.no_grad():
            conv.weight.copy_(
                torch.randn(conv.weight.shape, generator=generator) * math.sqrt(gain / fan_in)
            )
            hidden_layer = i < depth
            conv.bias.copy_(
                torch.randn(conv.bias.shape, generator=generator) * bias if hidden_layer else 0.0
            )
        if i > 0:
            layers.append(nn.ReLU())
        layers.append(conv)
    net = nn.Sequential(*layers).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def _patches(x: Tensor, kernel_size: int) -> Tensor:
    """k x k patches of x (N, C, H, W) with 'same' zero padding, plus a 1: (N*H*W, C*k*k + 1)."""
    cols = F.unfold(x, kernel_size, padding=kernel_size // 2)  # (N, C*k*k, H*W)
    cols = cols.transpose(1, 2).reshape(-1, cols.shape[1])
    return torch.cat([cols, torch.ones(cols.shape[0], 1, dtype=cols.dtype)], dim=1)


def _to_maps(rows: Tensor, like: Tensor) -> Tensor:
    """(N*H*W, C) back to the shape (N, C, H, W) of ``like``."""
    n, c, h, w = like.shape
    return rows.reshape(n, h, w, c).permute(0, 3, 1, 2).contiguous()


def _linear_part(x: Tensor, f: Tensor, kernel_size: int) -> Tensor:
    """Least-squares projection of f (N, C*, H, W) on linear functions of x's k x k patches."""
    a = _patches(x, kernel_size)
    b = f.permute(0, 2, 3, 1).reshape(-1, f.shape[1])
    coef = torch.linalg.lstsq(a, b, driver="gelsd").solution
    return _to_maps(a @ coef, f)


def _dot(a: Tensor, b: Tensor) -> Tensor:
    return (a * b).sum()


@dataclass(frozen=True)
class PlantedPair:
    """A source x, its planted target x* = linear + nonlinear + noise, and the known shares.

    Attributes:
        x: source features (N, C, S, S).
        x_star: target features (N, C*, S, S), Var(x*) = 1 on the whole generated set.
        parts: ``"linear"``, ``"nonlinear"``, ``"noise"``, each shaped like x*; they sum to x*.
        depth: ReLU layers of the planted network.
        network: the planted network (frozen; see :func:`random_network`).
        params: the generator's arguments, for tables.
    """

    x: Tensor
    x_star: Tensor
    parts: dict[str, Tensor]
    depth: int
    network: nn.Module
    params: dict = field(default_factory=dict)

    @property
    def shares(self) -> dict[str, float]:
        """Var(part) / Var(x*) for each part (sums to 1 up to rounding on the whole set, and
        up to sampling error on a split)."""
        total = variance(self.x_star)
        return {name: variance(p) / total for name, p in self.parts.items()}

    def split(self, n_train: int) -> tuple[PlantedPair, PlantedPair]:
        """The first ``n_train`` samples and the rest, as two pairs of the same structure."""
        n = self.x.shape[0]
        if not 2 <= n_train <= n - 2:
            raise ValueError(
                f"n_train must leave at least 2 samples on each side, got {n_train} of {n}"
            )

        def part(sl: slice) -> PlantedPair:
            return PlantedPair(
                self.x[sl],
                self.x_star[sl],
                {k: v[sl] for k, v in self.parts.items()},
                self.depth,
                self.network,
                self.params,
            )

        return part(slice(0, n_train)), part(slice(n_train, n))


def planted_pair(
    depth: int,
    *,
    noise: float = 0.1,
    linear_share: float | None = None,
    n: int = 512,
    channels: int = 4,
    out_channels: int | None = None,
    size: int = 6,
    kernel_size: int = 3,
    hidden: int | None = None,
    bias: float = 0.0,
    x: Tensor | None = None,
    seed: int = 0,
) -> PlantedPair:
    """Make a planted pair: x* = linear(x) + nonlinear(x) + noise with known variance shares.

    Args:
        depth: ReLU layers of the planted network (:data:`DEPTHS` are the benchmark's).
        noise: the noise share Var(noise) / Var(x*), in [0, 1).
        linear_share: if given, rescale the two signal parts so that the linear share of
            Var(x*) is ``linear_share * (1 - noise)``; None keeps the network's own mix.
            Depth 0 has no nonlinear part, so only None or 1 are possible there.
        n, channels, size: samples N, channels C of x and map side S.
        out_channels: C* of x* (default C).
        kernel_size: k of the planted first conv and of the linear projection (match g's).
        hidden: hidden width of the network (default C, as g's).
        bias: standard deviation of the hidden biases of the network. g's convolutions have
            no bias, so its ReLUs all switch at 0: with ``bias=0`` the planted network is of
            the same kind (positively homogeneous); with ``bias > 0`` part of it lies outside
            what g can represent.
        x: optional source features (N, C, S, S) to use instead of standard Gaussians.
        seed: seeds the network (one stream, so that cases differing only in N share the
            network) and x and the noise (another stream).

    Returns:
        A :class:`PlantedPair` (float32 tensors; shares computed in float64).

    Example:
        >>> pair = planted_pair(1, noise=0.25, n=64)
        >>> round(pair.shares["noise"], 6), round(sum(pair.shares.values()), 6)
        (0.25, 1.0)
    """
    if not 0.0 <= noise < 1.0:
        raise ValueError(f"noise must lie in [0, 1), got {noise!r}")
    if linear_share is not None and not 0.0 <= linear_share <= 1.0:
        raise ValueError(f"linear_share must lie in [0, 1], got {linear_share!r}")
    if depth == 0 and linear_share not in (None, 1.0):
        raise ValueError(f"depth 0 is linear: linear_share must be None or 1, got {linear_share!r}")
    # Two streams, so the network depends on the seed and the widths only, not on N.
    gen_net = torch.Generator().manual_seed(2 * seed)
    gen = torch.Generator().manual_seed(2 * seed + 1)
    if x is None:
        x = torch.randn(n, channels, size, size, generator=gen)
    elif x.dim() != 4:
        raise ValueError(f"x must have shape (N, C, S, S), got {tuple(x.shape)}")
    x = x.detach().to(torch.float32)
    out_channels = out_channels or x.shape[1]
    net = random_network(
        depth,
        x.shape[1],
        out_channels,
        kernel_size=kernel_size,
        hidden=hidden,
        bias=bias,
        generator=gen_net,
    )
    with torch.no_grad():
        f = net(x).to(torch.float64)
    x64 = x.to(torch.float64)
    f = f - f.mean(dim=(0, 2, 3), keepdim=True)
    lin = _linear_part(x64, f, kernel_size)
    nonlin = f - lin
    if depth == 0:
        nonlin = torch.zeros_like(f)  # exact zero, not rounding residue
        lin = f
    if linear_share is not None and depth > 0:
        vl, vn = variance(lin), variance(nonlin)
        lin = lin * math.sqrt(linear_share / vl) if vl > 0 else lin
        nonlin = nonlin * math.sqrt((1 - linear_share) / vn) if vn > 0 else nonlin
    signal = lin + nonlin
    vs = variance(signal)
    if vs == 0:
        raise ValueError("the planted network's output is constant: try another seed or depth")
    scale = math.sqrt((1.0 - noise) / vs)
    lin, nonlin = lin * scale, nonlin * scale
    e = torch.randn(f.shape, generator=gen, dtype=torch.float64)
    e = e - e.mean()
    for part in (lin, nonlin):
        norm = _dot(part, part)
        if norm > 0:
            e = e - _dot(e, part) / norm * part
    e = e * math.sqrt(noise / variance(e)) if noise > 0 else torch.zeros_like(e)
    parts = {"linear": lin, "nonlinear": nonlin, "noise": e}
    parts = {k: v.to(torch.float32) for k, v in parts.items()}
    x_star = (lin + nonlin + e).to(torch.float32)
    params = dict(
        depth=depth,
        noise=noise,
        linear_share=linear_share,
        n=x.shape[0],
        channels=x.shape[1],
        out_channels=out_channels,
        size=x.shape[2],
        kernel_size=kernel_size,
        bias=bias,
        seed=seed,
    )
    return PlantedPair(x, x_star, parts, depth, net, params)


# ------------------------------------------------------------------ recovery benchmark

BASE = dict(lam=0.1, order=2, n=512, noise=0.2)
"""The base case of :func:`design`: lambda, K, samples N (half fit, half evaluated), noise."""
VARY = dict(lam=(0.0, 1.0), order=(0, 1, 4), n=(128, 2048), noise=(0.0, 0.5))
"""Values each factor takes, one factor at a time, the others at :data:`BASE`."""
QUICK_BASE = dict(lam=0.1, order=2, n=384, noise=0.2)
QUICK_VARY = dict(lam=(0.0,), noise=(0.0,))


def design(
    depths: tuple[int, ...] = DEPTHS, base: dict | None = None, vary: dict | None = None
) -> list[dict]:
    """Cases of the benchmark: the base for every depth, then each factor varied alone.

    Returns:
        A list of dicts with keys depth, lam, order, n, noise and ``varied`` (the factor
        that differs from the base, ``"base"`` for the base case).
    """
    base = dict(BASE if base is None else base)
    vary = VARY if vary is None else vary
    cases = []
    for depth in depths:
        cases.append(dict(depth=depth, varied="base", **base))
        for factor, values in vary.items():
            if factor not in base:
                raise ValueError(f"cannot vary {factor!r}: the base has {sorted(base)}")
            for v in values:
                if v != base[factor]:
                    cases.append(dict(depth=depth, varied=factor, **{**base, factor: v}))
    return cases


def recover(
    train: PlantedPair,
    test: PlantedPair,
    *,
    order: int = 2,
    lam: float = 0.1,
    steps: int = 400,
    batch_size: int = 64,
    seed: int = 0,
    maps: str = "flatten",
    baselines: bool = True,
) -> dict[str, float]:
    """Fit g on ``train`` and compare its decomposition on ``test`` with the planted shares.

    Args:
        train, test: two splits of one :class:`PlantedPair`.
        order, lam: K and lambda of Eq. 1-2.
        steps: optimiser steps of the fit (the budget; see :func:`kc.fit_consistency`).
        batch_size: images per step.
        seed: seeds the fit.
        maps: the map rule of the baselines (:mod:`kc.core.similarity`).
        baselines: also compute every measure of :func:`kc.core.similarity.compare_all` on the
            training pair (``ridge_r2`` fitted there and scored on the test pair).

    Returns:
        ``planted_<part>`` (test shares), ``share_x<k>`` = Var(x(k)) / Var(x*) for k <= K,
        ``share_higher`` (their sum over k >= 1), ``instability`` (test), the errors
        ``err_linear`` = share_x0 - planted linear, ``err_higher`` = share_higher - planted
        nonlinear, ``err_noise`` = instability - planted noise, and the baselines.
    """
    from kc.core.measure import consistency
    from kc.core.similarity import compare_all

    fit_kwargs = dict(max_steps=steps, batch_size=batch_size)
    res = consistency(
        train.x,
        train.x_star,
        order=order,
        lam=lam,
        test=(test.x, test.x_star),
        seed=seed,
        progress=False,
        **fit_kwargs,
    )
    v = res.variances
    total = v["Var(x*)"]
    row: dict[str, float] = {f"planted_{k}": s for k, s in test.shares.items()}
    for k in range(order + 1):
        row[f"share_x{k}"] = v[f"Var(x{k})"] / total
    row["share_higher"] = sum(row[f"share_x{k}"] for k in range(1, order + 1))
    row["instability"] = res.instability
    row["err_linear"] = row["share_x0"] - row["planted_linear"]
    row["err_higher"] = row["share_higher"] - row["planted_nonlinear"]
    row["err_noise"] = row["instability"] - row["planted_noise"]
    if baselines:
        row.update(compare_all(train.x, train.x_star, test=(test.x, test.x_star), maps=maps))
    return row


def run(
    cases: list[dict],
    *,
    steps: int = 400,
    seeds: tuple[int, ...] = (0,),
    channels: int = 4,
    size: int = 4,
    maps: str = "flatten",
    baselines: bool = True,
    on_row=None,
) -> list[dict]:
    """Generate, fit and score every case of :func:`design` for every seed.

    The seed sets the planted pair and the fit; N samples are generated, the first half fits
    g and the second half scores it. Maps are small (``size`` 4, C = 4: 64 features per image
    under ``maps="flatten"``) so that the baselines have more samples than features at the
    benchmark's N (CCA needs n > d_x + d_y to be informative). ``on_row(row)`` is called after each case (progress).

    Returns:
        One dict per (case, seed): the case, the seed, ``seconds`` and :func:`recover`'s row.
    """
    import time

    rows = []
    for case in cases:
        for seed in seeds:
            t0 = time.perf_counter()
            pair = planted_pair(
                case["depth"],
                noise=case["noise"],
                n=case["n"],
                channels=channels,
                size=size,
                seed=seed,
            )
            train, test = pair.split(case["n"] // 2)
            row = dict(case, seed=seed)
            row.update(
                recover(
                    train,
                    test,
                    order=case["order"],
                    lam=case["lam"],
                    steps=steps,
                    seed=seed,
                    maps=maps,
                    baselines=baselines,
                )
            )
            row["seconds"] = time.perf_counter() - t0
            rows.append(row)
            if on_row is not None:
                on_row(row)
    return rows
