"""Measures that align one representation onto the other: orthogonal Procrustes and ridge.

``ridge_r2`` is the closed-form, order-0 analogue of the paper's g: how much of y a linear map
of x explains, pooled over all features like Var(x*) of Sec. 4.2, and asymmetric like g.
"""

from __future__ import annotations

import torch
from torch import Tensor

from kc.core.similarity._input import Features, as_matrix, pair


def _compress(m: Tensor) -> Tensor:
    """Replace a wide centred matrix (n, d > n) by U S (n, r): same X X^T, same singular
    values of X^T Y for every Y."""
    if m.shape[1] <= m.shape[0]:
        return m
    u, s, _ = torch.linalg.svd(m, full_matrices=False)
    return u * s


def procrustes(x: Features, y: Features, *, maps: str = "flatten") -> float:
    """Orthogonal Procrustes distance (Ding et al., 2021) of the centred, unit-norm features.

    .. math::
        d(X, Y) = \\min_{Q^T Q = I} \\|X - Y Q\\|_F^2 = 2 - 2\\,\\|X^T Y\\|_*,
        \\quad \\|X\\|_F = \\|Y\\|_F = 1

    Different widths are allowed (the narrower side is padded with zero features).

    Args:
        x, y: features of the same N samples, (N, C) or (N, C, H, W).
        maps: see :mod:`kc.core.similarity._input`.

    Returns:
        A distance in [0, 2]: 0 for representations equal up to rotation, shift and scale.
        (Rounding below 0 is set to 0.)

    Example:
        >>> x = torch.randn(30, 3)
        >>> procrustes(x, 5 * x[:, [2, 0, 1]]) < 1e-12
        True
    """
    xm, ym = pair(x, y, maps, min_n=2)
    xm, ym = (
        _compress(xm / torch.linalg.matrix_norm(xm)),
        _compress(ym / torch.linalg.matrix_norm(ym)),
    )
    nuc = torch.linalg.matrix_norm(xm.T @ ym, ord="nuc")
    return max(0.0, float(2.0 - 2.0 * nuc))


def ridge_r2(
    x: Features,
    y: Features,
    alpha: float = 1e-3,
    *,
    test: tuple[Features, Features] | None = None,
    maps: str = "flatten",
) -> float:
    """Linear predictivity of y from x: the R^2 of a ridge regression y ~ x W + b.

    .. math::
        W = (X^T X + \\lambda I)^{-1} X^T Y, \\quad \\lambda = \\alpha\\,\\|X\\|_F^2 / d_x,
        \\quad R^2 = 1 - \\frac{\\|Y - X W\\|_F^2}{\\|Y\\|_F^2}

    (X, Y centred). The penalty is relative to the mean eigenvalue of X^T X, so the value does
    not change when x is scaled. The dual form W = X^T (X X^T + lambda I)^{-1} Y is used when
    d_x > n. R^2 is pooled over all features of y (1 - a variance ratio, like 1 - instability).

    Args:
        x: predictor features, (N, C) or (N, C, H, W).
        y: predicted features of the same N samples.
        alpha: relative ridge penalty, >= 0 (0: least squares with the minimum-norm W).
        test: optional held-out pair (x_test, y_test); the R^2 is then measured there, with the
            fit's W and training means (it can be negative). Without it, in-sample R^2, which
            tends to 1 as d_x approaches n.
        maps: see :mod:`kc.core.similarity._input`.

    Returns:
        R^2 as a float (in-sample: in [0, 1]).
    """
    if not alpha >= 0:
        raise ValueError(f"alpha must be >= 0, got {alpha!r}")
    xm, ym = pair(x, y, maps, min_n=2)
    n, d = xm.shape
    lam = alpha * float((xm**2).sum()) / d
    if alpha == 0:
        w = torch.linalg.lstsq(xm, ym, driver="gelsd").solution
    elif d <= n:
        w = torch.linalg.solve(xm.T @ xm + lam * torch.eye(d, dtype=xm.dtype), xm.T @ ym)
    else:
        w = xm.T @ torch.linalg.solve(xm @ xm.T + lam * torch.eye(n, dtype=xm.dtype), ym)
    if test is None:
        resid, target = ym - xm @ w, ym
    else:
        if not (isinstance(test, tuple) and len(test) == 2):
            raise ValueError("test must be a pair (x_test, y_test)")
        xt, yt = pair(test[0], test[1], maps)  # checked, centred by their own means
        mx, my = as_matrix(x, maps, name="x").mean(0), as_matrix(y, maps, name="y").mean(0)
        xt_raw, yt_raw = (
            as_matrix(test[0], maps, name="x_test"),
            as_matrix(test[1], maps, name="y_test"),
        )
        if xt.shape[1] != d or yt.shape[1] != ym.shape[1]:
            raise ValueError(
                f"test features must have the training widths {d} and {ym.shape[1]}, got "
                f"{xt.shape[1]} and {yt.shape[1]}"
            )
        resid, target = yt_raw - ((xt_raw - mx) @ w + my), yt
    return float(1.0 - (resid**2).sum() / (target**2).sum())
