"""Planted feature pairs with known consistency, for teaching and for checking g.

Each case returns features x (N, C, S, S) of a pretend network A and a target x* of a
pretend network B whose relation to x is known, so what :func:`kc.consistency` should find
is known too:

* ``"permuted"``: x* is x with its channels shuffled (the paper's footnote 1): fully
  0-order consistent, instability ~ 0.
* ``"linear"``: x* = M x for a random channel mixing M: still 0-order consistent.
* ``"nonlinear"``: x* = M (x + ReLU(V x)), the form of Eq. 1 with K = 1: needs order 1.
* ``"half"``: half of x*'s channels are a permuted copy of x, half independent noise:
  instability ~ 0.5.
* ``"independent"``: x* unrelated to x: instability ~ 1.
"""

from __future__ import annotations

import torch
from torch import Tensor

CASES = ("permuted", "linear", "nonlinear", "half", "independent")


def _mix(w: Tensor, z: Tensor) -> Tensor:
    """Apply a channel mixing w (C_out, C_in) at every position of z (N, C_in, H, W)."""
    return torch.einsum("oc,nchw->nohw", w, z)


def planted_pair(
    case: str, *, n: int = 512, channels: int = 8, size: int = 6, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """Make one planted pair (x, x*), both of shape (n, channels, size, size).

    Args:
        case: one of :data:`CASES`.
        n, channels, size: number of samples, channels and map side.
        seed: makes the pair reproducible.
    """
    if case not in CASES:
        raise ValueError(f"case must be one of {CASES}, got {case!r}")
    if channels < 2 or n < 1 or size < 1:
        raise ValueError(f"need n >= 1, channels >= 2, size >= 1; got {n}, {channels}, {size}")
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, channels, size, size, generator=gen)
    perm = torch.randperm(channels, generator=gen)
    m = torch.randn(channels, channels, generator=gen) / channels**0.5
    v = torch.randn(channels, channels, generator=gen) / channels**0.5
    noise = torch.randn(n, channels, size, size, generator=gen)
    if case == "permuted":
        return x, x[:, perm]
    if case == "linear":
        return x, _mix(m, x)
    if case == "nonlinear":
        return x, _mix(m, x + torch.relu(_mix(v, x)))
    if case == "half":
        half = channels // 2
        return x, torch.cat([x[:, perm[:half]], noise[:, : channels - half]], dim=1)
    return x, noise
