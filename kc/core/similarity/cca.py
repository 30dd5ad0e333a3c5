"""Canonical-correlation measures: SVCCA (Raghu et al., 2017) and PWCCA (Morcos et al., 2018).

Both work on the column spaces of the centred X (n, d_x) and Y (n, d_y). Directions of zero
variance (constant or linearly dependent features) carry no information and are dropped by a
rank cut at the float64 rounding level, so constant features need no special care here. The
canonical correlations are the singular values of Q_x^T Q_y (Q: orthonormal bases of the
column spaces). Centred columns live in the (n - 1)-dimensional space orthogonal to the
constant vector, so with few samples (r_x + r_y > n - 1) the two spaces must intersect and at
least r_x + r_y - (n - 1) correlations are exactly 1 whatever the features: such a value says
nothing about them, and :class:`FewSamplesWarning` is raised (reduce the width, use more samples,
or ``maps="positions"``; ``maps="pool"`` when the maps differ in size).
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from kc.core.similarity._input import Features, pair


class FewSamplesWarning(UserWarning):
    """CCA on fewer samples than the two features' ranks need: correlations forced to 1."""


def _check_samples(rx: int, ry: int, n: int, measure: str) -> None:
    forced = rx + ry - (n - 1)
    if forced > 0:
        warnings.warn(
            f"{measure}: {forced} of {min(rx, ry)} canonical correlations are 1 whatever the "
            f"features (ranks {rx} + {ry} > {n - 1}, the centred sample space of n = {n}); use "
            "more samples, fewer features or maps='positions'",
            FewSamplesWarning,
            stacklevel=3,
        )


def _svd(m: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Thin SVD of a centred matrix (n, d), truncated to its numerical rank."""
    u, s, vh = torch.linalg.svd(m, full_matrices=False)
    tol = s[0] * max(m.shape) * torch.finfo(m.dtype).eps
    r = int((s > tol).sum())
    return u[:, :r], s[:r], vh[:r]


def n_directions(s: Tensor, keep: float) -> int:
    """The fewest leading directions whose variance s_i^2 explains ``keep`` of the total.

    Args:
        s: singular values in decreasing order, shape (r,).
        keep: fraction of variance in (0, 1].

    Returns:
        The smallest k with sum_{i<k} s_i^2 >= keep * sum_i s_i^2 (a ratio of normalised
        sums: a normalised cumulative sum compared with an unnormalised total is the peer bug
        this avoids).

    Example:
        >>> n_directions(torch.tensor([3.0, 2.0, 1.0]), 0.9)  # variances 9, 4, 1 of 14
        2
    """
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep must lie in (0, 1], got {keep!r}")
    var = s.to(torch.float64) ** 2
    explained = torch.cumsum(var, 0) / var.sum()
    # 1e-12: with keep = 1 rounding must not make the last cumulative fraction fall short
    k = int((explained < keep - 1e-12).sum()) + 1
    return min(k, s.shape[0])


def svd_reduce(x: Features, keep: float = 0.99, *, maps: str = "flatten") -> Tensor:
    """The SVCCA denoising step: project centred features on their leading directions.

    Args:
        x: features (N, C) or (N, C, H, W).
        keep: fraction of the variance the kept directions explain (see :func:`n_directions`).
        maps: see :mod:`kc.core.similarity._input`.

    Returns:
        U_k S_k of shape (n, k), the centred x in the basis of its top-k singular directions.
    """
    xm, _ = pair(x, x, maps, min_n=2)
    return _reduce(xm, keep)


def _reduce(m: Tensor, keep: float) -> Tensor:
    u, s, _ = _svd(m)
    k = n_directions(s, keep)
    return u[:, :k] * s[:k]


def canonical_correlations(xm: Tensor, ym: Tensor) -> Tensor:
    """Canonical correlations of two centred matrices (n, d_x), (n, d_y), decreasing.

    Returns:
        Tensor (min(r_x, r_y),) in [0, 1] (r: numerical ranks).
    """
    qx, _, _ = _svd(xm)
    qy, _, _ = _svd(ym)
    _check_samples(qx.shape[1], qy.shape[1], xm.shape[0], "CCA")
    return torch.linalg.svdvals(qx.T @ qy).clamp(max=1.0)


def svcca(x: Features, y: Features, keep: float = 0.99, *, maps: str = "flatten") -> float:
    """SVCCA: mean canonical correlation after keeping ``keep`` of each side's variance.

    .. math::
        \\mathrm{SVCCA}(X, Y) = \\frac{1}{m}\\sum_{i=1}^{m} \\rho_i(X U^x_{k_x}, Y U^y_{k_y})

    Args:
        x, y: features of the same N samples, (N, C) or (N, C, H, W).
        keep: variance fraction kept on each side (keep = 1 keeps the full column space, and
            then the value is invariant to invertible linear maps, as CCA is).
        maps: see :mod:`kc.core.similarity._input`.

    Returns:
        The mean of the m = min(k_x, k_y) canonical correlations, in [0, 1].

    Example:
        >>> x = torch.randn(100, 5)
        >>> round(svcca(x, x @ torch.randn(5, 5), keep=1.0), 6)
        1.0
    """
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep must lie in (0, 1], got {keep!r}")
    xm, ym = pair(x, y, maps, min_n=2)
    return float(canonical_correlations(_reduce(xm, keep), _reduce(ym, keep)).mean())


def pwcca(x: Features, y: Features, *, maps: str = "flatten") -> float:
    """Projection-weighted CCA: canonical correlations weighted by how much of x they carry.

    .. math::
        \\mathrm{PWCCA}(X, Y) = \\sum_i \\tilde\\alpha_i \\rho_i, \\quad
        \\alpha_i = \\sum_j |\\langle h_i, x_j \\rangle|, \\quad
        \\tilde\\alpha = \\alpha / \\textstyle\\sum_i \\alpha_i

    h_i: the i-th canonical variate of X (unit norm), x_j: the j-th centred feature (column)
    of X. Asymmetric: the weights come from x.

    Args:
        x: features whose canonical directions are weighted, (N, C) or (N, C, H, W).
        y: features of the same N samples.
        maps: see :mod:`kc.core.similarity._input`.

    Returns:
        The weighted mean correlation in [0, 1].
    """
    xm, ym = pair(x, y, maps, min_n=2)
    qx, _, _ = _svd(xm)
    qy, _, _ = _svd(ym)
    _check_samples(qx.shape[1], qy.shape[1], xm.shape[0], "PWCCA")
    a, rho, _ = torch.linalg.svd(qx.T @ qy, full_matrices=False)
    h = qx @ a  # (n, m) canonical variates of x
    alpha = (h.T @ xm).abs().sum(1)
    return float((alpha * rho.clamp(max=1.0)).sum() / alpha.sum())
