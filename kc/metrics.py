"""Variance-based measures of Sec. 4.2: Var(.), instability and its two-way average."""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor


def variance(t: Tensor) -> float:
    """Var of Sec. 4.2: the mean squared deviation of all elements of all images
    from their global mean, E_{I,i}[(t_{I,i} - E_{I',i'}[t_{I',i'}])^2].

    Args:
        t: a feature or component of any shape (N, ...); computed in float64.

    Example:
        >>> variance(torch.tensor([[1.0, 3.0], [1.0, 3.0]]))
        1.0
    """
    if t.numel() == 0:
        raise ValueError("variance of an empty tensor is undefined")
    t64 = t.detach().to(torch.float64)
    return float(((t64 - t64.mean()) ** 2).mean())


def instability(delta: Tensor, x_star: Tensor) -> float:
    """Var(x_Delta) / Var(x*), the instability of Sec. 4.2.

    Args:
        delta: the residual x* - g(x) (Eq. 3), shape (N, ...).
        x_star: the target feature it was taken from, same shape.
    """
    if delta.shape != x_star.shape:
        raise ValueError(
            f"delta and x_star must have the same shape, got {tuple(delta.shape)} and {tuple(x_star.shape)}"
        )
    v = variance(x_star)
    if v == 0.0:
        raise ValueError("x_star has zero variance: the instability is undefined")
    return variance(delta) / v


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
