"""Centred kernel alignment (Kornblith et al., 2019), linear and RBF, biased or debiased.

.. math::
    \\mathrm{CKA}(K, L) = \\frac{\\mathrm{HSIC}(K, L)}{\\sqrt{\\mathrm{HSIC}(K, K)\\,
    \\mathrm{HSIC}(L, L)}}

with K = X X^T, L = Y Y^T (linear) or Gaussian kernels (RBF). The biased estimator uses
HSIC_b = tr(H K H L) / (n - 1)^2 (H the centring matrix); with centred X, Y and a linear
kernel it equals ``||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)``, computed in feature space
(d x d products) when that is cheaper than the n x n Gram form. The debiased estimator uses
the unbiased HSIC_u of Song et al. (2012) and can be negative; it is reported as is.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from kc.core.similarity._input import Features, pair

METHODS = ("auto", "features", "gram")


def _feature_space_is_cheaper(n: int, dx: int, dy: int) -> bool:
    """Multiply-adds of X^T Y, X^T X, Y^T Y against those of X X^T, Y Y^T and tr(K L).

    For equal widths d this picks the feature space when d < 2n/3 (roughly d < n).
    """
    return n * (dx * dy + dx * dx + dy * dy) <= n * n * (dx + dy + 1)


def _hsic_u(
    tr_kl: Tensor, diag_kl: Tensor, sum_k: Tensor, sum_l: Tensor, kl1: Tensor, n: int
) -> Tensor:
    """Unbiased HSIC from the five sums it needs (K~, L~: K, L with zeroed diagonals).

    .. math::
        \\mathrm{HSIC}_u = \\frac{1}{n(n-3)}\\Big[\\mathrm{tr}(\\tilde K \\tilde L)
        + \\frac{1^T\\tilde K 1\\; 1^T \\tilde L 1}{(n-1)(n-2)}
        - \\frac{2}{n-2} 1^T \\tilde K \\tilde L 1\\Big]

    Args:
        tr_kl: tr(K L); diag_kl: sum_i K_ii L_ii; sum_k, sum_l: 1^T K~ 1 and 1^T L~ 1;
        kl1: 1^T K~ L~ 1 (all scalars); n: number of samples (> 3).
    """
    return (tr_kl - diag_kl + sum_k * sum_l / ((n - 1) * (n - 2)) - 2.0 * kl1 / (n - 2)) / (
        n * (n - 3)
    )


def _gram_terms(kx: Tensor, ky: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """The five sums of :func:`_hsic_u` from Gram matrices K, L (n, n)."""
    dk, dl = kx.diagonal(), ky.diagonal()
    rk, rl = kx.sum(1) - dk, ky.sum(1) - dl  # row sums of K~, L~
    return (kx * ky).sum(), (dk * dl).sum(), rk.sum(), rl.sum(), (rk * rl).sum()


def _debiased(kx: Tensor, ky: Tensor) -> float:
    """Debiased CKA of two Gram matrices (n, n)."""
    n = kx.shape[0]
    hxy = _hsic_u(*_gram_terms(kx, ky), n)
    hxx, hyy = _hsic_u(*_gram_terms(kx, kx), n), _hsic_u(*_gram_terms(ky, ky), n)
    return _ratio(hxy, hxx, hyy, n)


def _ratio(hxy: Tensor, hxx: Tensor, hyy: Tensor, n: int) -> float:
    if hxx <= 0 or hyy <= 0:
        raise ValueError(
            f"the unbiased HSIC of a representation with itself is not positive (x: {float(hxx):.3g}, "
            f"y: {float(hyy):.3g}) with n = {n} samples: too few samples or (nearly) constant "
            "features for the debiased estimator; use more samples or debiased=False"
        )
    return float(hxy / torch.sqrt(hxx * hyy))


def _check_debiased_n(n: int) -> None:
    if n <= 3:
        raise ValueError(
            f"the debiased estimator needs more than 3 samples (it divides by n(n-3)), got n = {n}"
        )


def linear_cka(
    x: Features, y: Features, debiased: bool = False, *, maps: str = "flatten", method: str = "auto"
) -> float:
    """Linear CKA between two representations of the same samples.

    .. math::
        \\mathrm{CKA}_{lin}(X, Y) = \\frac{\\|Y^T X\\|_F^2}{\\|X^T X\\|_F\\,\\|Y^T Y\\|_F}
        \\quad (X, Y \\text{ column-centred})

    Args:
        x: features (N, C) or (N, C, H, W), torch or numpy.
        y: features of the same N samples, any width.
        debiased: use the unbiased HSIC estimator (needs n > 3; may be negative, not clamped).
        maps: how (N, C, H, W) maps become samples (see :mod:`kc.core.similarity._input`).
        method: ``"features"`` (d x d products), ``"gram"`` (n x n) or ``"auto"`` (cheaper).

    Returns:
        CKA in [0, 1] (biased); 1 for representations equal up to rotation and scale.

    Example:
        >>> x = torch.randn(50, 4)
        >>> round(linear_cka(x, 2 * x[:, [1, 0, 3, 2]]), 6)
        1.0
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    xm, ym = pair(x, y, maps, min_n=2, center=False)
    n, dx, dy = xm.shape[0], xm.shape[1], ym.shape[1]
    if debiased:
        _check_debiased_n(n)
    features = method == "features" or (method == "auto" and _feature_space_is_cheaper(n, dx, dy))
    if not features:
        # Centring the n x n Gram matrices (H K H) is cheaper than centring n x d features.
        kx, ky = _center(xm @ xm.T, inplace=True), _center(ym @ ym.T, inplace=True)
        if debiased:
            return _debiased(kx, ky)
        return float(
            (kx * ky).sum() / (torch.linalg.matrix_norm(kx) * torch.linalg.matrix_norm(ky))
        )
    xm, ym = xm - xm.mean(0), ym - ym.mean(0)
    xty = ym.T @ xm
    xtx, yty = xm.T @ xm, ym.T @ ym
    if not debiased:
        return float(
            (xty**2).sum() / (torch.linalg.matrix_norm(xtx) * torch.linalg.matrix_norm(yty))
        )
    # Centred columns make K 1 = 0, so 1^T K~ 1 = -tr K and K~ 1 = -diag K (Song et al. sums
    # in O(n d)).
    sx, sy = (xm**2).sum(1), (ym**2).sum(1)

    def terms(cross: Tensor, sa: Tensor, sb: Tensor) -> tuple[Tensor, ...]:
        both = (sa * sb).sum()
        return (cross**2).sum(), both, -sa.sum(), -sb.sum(), both

    hxy = _hsic_u(*terms(xty, sx, sy), n)
    hxx = _hsic_u(*terms(xtx, sx, sx), n)
    hyy = _hsic_u(*terms(yty, sy, sy), n)
    return _ratio(hxy, hxx, hyy, n)


def _sq_distances(m: Tensor) -> Tensor:
    """Squared Euclidean distances between the rows of m (n, d): (n, n), built in place."""
    g = m @ m.T
    d = g.diagonal().clone()
    return g.mul_(-2.0).add_(d[:, None]).add_(d[None, :]).clamp_(min=0.0)


def _median_sq_distance(d2: Tensor) -> float:
    """Squared median distance over the M = n(n-1)/2 distinct pairs of a squared-distance
    matrix (n, n); for even M the mean of the two middle distances.

    The off-diagonal entries hold every pair twice, which leaves the median unchanged, and
    the n zeros of the diagonal are the n smallest entries, so the k-th smallest pair is the
    (k + n)-th smallest entry: no copy of the n^2 / 2 pairs is needed.
    """
    n = d2.shape[0]
    m = n * (n - 1) // 2
    lo, hi = (m + 1) // 2, m // 2 + 1  # 1-based ranks of the middle pair(s)
    # in the doubled list the pair of rank r sits at ranks 2r - 1 and 2r
    flat = d2.reshape(-1).numpy()
    ranks = sorted({2 * lo - 1 + n - 1, 2 * hi - 1 + n - 1})  # 0-based
    part = np.partition(flat, ranks)
    a, b = math.sqrt(part[ranks[0]]), math.sqrt(part[ranks[-1]])
    return ((a + b) / 2) ** 2


def median_bandwidth(x: Features, *, maps: str = "flatten") -> float:
    """The default RBF bandwidth: the median Euclidean distance between distinct samples.

    Args:
        x: features (N, C) or (N, C, H, W).
        maps: see :mod:`kc.core.similarity._input`.
    """
    xm, _ = pair(x, x, maps, min_n=2)
    return math.sqrt(_median_sq_distance(_sq_distances(xm)))


def rbf_cka(
    x: Features,
    y: Features,
    sigma: float | tuple[float, float] | None = None,
    *,
    debiased: bool = False,
    maps: str = "flatten",
) -> float:
    """CKA with Gaussian kernels ``k(a, b) = exp(-||a - b||^2 / (2 sigma^2))``.

    Args:
        x, y: features of the same N samples, (N, C) or (N, C, H, W).
        sigma: bandwidth, one for both or ``(sigma_x, sigma_y)``; None takes each side's
            median distance between distinct samples (:func:`median_bandwidth`), which makes
            the value invariant to isotropic scaling (a fixed sigma does not).
        debiased: unbiased HSIC (n > 3; may be negative).
        maps: see :mod:`kc.core.similarity._input`.

    Returns:
        CKA (biased: in [0, 1]).
    """
    xm, ym = pair(x, y, maps, min_n=2)
    n = xm.shape[0]
    if debiased:
        _check_debiased_n(n)
    dx2, dy2 = _sq_distances(xm), _sq_distances(ym)
    if sigma is None:
        sx2, sy2 = _median_sq_distance(dx2), _median_sq_distance(dy2)
        if sx2 == 0 or sy2 == 0:
            raise ValueError(
                "the median distance between samples is 0 (over half the samples "
                "coincide): pass sigma explicitly"
            )
    else:
        sx, sy = (sigma, sigma) if isinstance(sigma, (int, float)) else sigma
        if not (sx > 0 and sy > 0):
            raise ValueError(f"sigma must be positive, got {sigma!r}")
        sx2, sy2 = float(sx) ** 2, float(sy) ** 2
    kx, ky = dx2.mul_(-0.5 / sx2).exp_(), dy2.mul_(-0.5 / sy2).exp_()  # in place: n^2 memory
    if debiased:
        return _debiased(kx, ky)
    kx, ky = _center(kx, inplace=True), _center(ky, inplace=True)
    return float((kx * ky).sum() / (torch.linalg.matrix_norm(kx) * torch.linalg.matrix_norm(ky)))


def _center(k: Tensor, inplace: bool = False) -> Tensor:
    """H K H for a symmetric Gram matrix K (n, n)."""
    r = k.mean(0)
    out = k if inplace else k.clone()
    return out.sub_(r[None, :]).sub_(r[:, None]).add_(r.mean())
