"""Variance-based measures of Sec. 4.2: Var(.), instability and its two-way average."""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

CENTERS = ("global", "channel")


def variance(t: Tensor, center: str = "global") -> float:
    """Var of Sec. 4.2: the mean squared deviation of a feature from a centre.

    ``center="global"`` (default, the paper's formula): deviations from one mean over all
    images, channels and positions,

    .. math::
        \\mathrm{Var}(t) = \\mathbb{E}_{I,c,i}\\big[(t_{I,c,i} - \\mathbb{E}_{I',c',i'}
        t_{I',c',i'})^2\\big].

    ``center="channel"`` (what the authors' released ``Variance.py`` computes): deviations of
    each channel c from its own mean over images and positions, averaged over all elements,

    .. math::
        \\mathrm{Var}_c(t) = \\mathbb{E}_{I,c,i}\\big[(t_{I,c,i} - \\mathbb{E}_{I',i'}
        t_{I',c,i'})^2\\big],

    i.e. the mean over channels of each channel's variance. Every channel has the same number
    of elements, so by the law of total variance the global Var is the channel Var plus the
    (population) variance of the C channel means; the two agree when all channels share one
    mean.

    Args:
        t: a feature or component of shape (N, ...) for ``"global"``; (N, C) or (N, C, ...)
            with channels on dim 1 for ``"channel"``. Computed in float64.
        center: ``"global"`` or ``"channel"``.

    Raises:
        ValueError: for an unknown ``center``, an empty ``t``, or ``"channel"`` with ``t`` of
            fewer than two dimensions.

    Example:
        >>> t = torch.tensor([[1.0, 3.0], [1.0, 3.0]])
        >>> variance(t), variance(t, center="channel")
        (1.0, 0.0)
    """
    if center not in CENTERS:
        raise ValueError(f"unknown center {center!r}; expected one of {list(CENTERS)}")
    if t.numel() == 0:
        raise ValueError("variance of an empty tensor is undefined")
    t64 = t.detach().to(torch.float64)
    if center == "global":
        return float(((t64 - t64.mean()) ** 2).mean())
    if t64.dim() < 2:
        raise ValueError(
            "center='channel' needs a tensor of shape (N, C) or (N, C, ...) with channels on "
            f"dim 1, got shape {tuple(t.shape)}"
        )
    dims = (0, *range(2, t64.dim()))
    return float(((t64 - t64.mean(dim=dims, keepdim=True)) ** 2).mean())


def instability(delta: Tensor, x_star: Tensor, center: str = "global") -> float:
    """Var(x_Delta) / Var(x*), the instability of Sec. 4.2, both about the same centre.

    Args:
        delta: the residual x* - g(x) (Eq. 3), shape (N, ...).
        x_star: the target feature it was taken from, same shape.
        center: the centre of both variances, ``"global"`` (default, the paper's) or
            ``"channel"`` (the released code's); see :func:`variance`.
    """
    if delta.shape != x_star.shape:
        raise ValueError(
            f"delta and x_star must have the same shape, got {tuple(delta.shape)} and {tuple(x_star.shape)}"
        )
    v = variance(x_star, center)
    if v == 0.0:
        raise ValueError(
            f"x_star has zero variance about center={center!r}: the instability is undefined"
        )
    return variance(delta, center) / v


class _HasInstability(Protocol):
    instability: float


def two_way_instability(a_from_b: float | _HasInstability, b_from_a: float | _HasInstability) -> float:
    """Sec. 4.2, Case 2: [Var(x_A^D)/Var(x_A) + Var(x_B^D)/Var(x_B)] / 2.

    Args:
        a_from_b: instability of reconstructing x_A from x_B (a float or a result with
            an ``instability`` attribute, e.g. :class:`kc.ConsistencyResult`).
        b_from_a: the same in the other direction.
    """
    values = [v if isinstance(v, (int, float)) else v.instability for v in (a_from_b, b_from_a)]
    return (values[0] + values[1]) / 2.0
