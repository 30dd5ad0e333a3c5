"""Turning features into sample-by-feature matrices: the one rule for convolutional maps.

Every measure in :mod:`kc.similarity` compares two matrices X (n, d_x) and Y (n, d_y) whose
rows are the same n samples. Features of shape (N, C) are used as they are. For maps of shape
(N, C, H, W) the ``maps`` argument chooses what a sample is:

* ``"flatten"`` (default): one sample per image, the C x H x W values of the map its features,
  so X is (N, C*H*W). Sensitive to where in the map a pattern sits.
* ``"positions"``: one sample per image and spatial position, the C channels its features, so
  X is (N*H*W, C). x and y must then have the same H and W (positions are matched one to one).

Whatever goes in (torch tensor or numpy array, any float dtype), the measures compute in
float64 on the CPU.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

MAPS = ("flatten", "positions")


def as_matrix(x: Tensor | np.ndarray, maps: str = "flatten", *, name: str = "x") -> Tensor:
    """Features as a float64 matrix of samples by features, by the rule of this module.

    Args:
        x: features (N, C) or (N, C, H, W), a torch tensor or a numpy array.
        maps: ``"flatten"`` -> (N, C*H*W) or ``"positions"`` -> (N*H*W, C); ignored for (N, C).
        name: the argument's name, for error messages.

    Returns:
        Float64 CPU tensor of shape (n, d).

    Example:
        >>> as_matrix(torch.zeros(2, 3, 4, 5), "positions").shape
        torch.Size([40, 3])
    """
    if maps not in MAPS:
        raise ValueError(f"maps must be one of {MAPS}, got {maps!r}")
    t = torch.as_tensor(np.asarray(x)) if not isinstance(x, Tensor) else x
    t = t.detach().to(device="cpu", dtype=torch.float64)
    if t.dim() == 2:
        m = t
    elif t.dim() == 4:
        m = t.flatten(1) if maps == "flatten" else t.permute(0, 2, 3, 1).reshape(-1, t.shape[1])
    else:
        raise ValueError(f"{name} must have shape (N, C) or (N, C, H, W), got {tuple(t.shape)}")
    if m.shape[0] == 0 or m.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {tuple(t.shape)}")
    if not torch.isfinite(m).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return m


def pair(x: Any, y: Any, maps: str = "flatten", *, min_n: int = 2) -> tuple[Tensor, Tensor]:
    """Check a pair of features once and return both as centred float64 matrices.

    Args:
        x, y: features of the same N samples, each (N, C) or (N, C, H, W).
        maps: see :func:`as_matrix`.
        min_n: the fewest samples (rows, after ``maps``) the measure accepts.

    Returns:
        (X, Y), (n, d_x) and (n, d_y), every column centred (mean zero over the samples).

    Raises:
        ValueError: N differs, spatial sizes differ under ``"positions"``, too few samples,
            or either side has no variance at all (every sample identical).
    """
    nx, ny = np.shape(x)[0], np.shape(y)[0]
    if nx != ny:
        raise ValueError(f"expected x and y with the same number of samples N, got {nx} and {ny}")
    if maps == "positions" and len(np.shape(x)) == 4 and len(np.shape(y)) == 4:
        if tuple(np.shape(x)[2:]) != tuple(np.shape(y)[2:]):
            raise ValueError(
                "maps='positions' needs x and y with the same spatial size, got "
                f"{tuple(np.shape(x)[2:])} and {tuple(np.shape(y)[2:])}"
            )
    if maps == "positions" and len(np.shape(x)) != len(np.shape(y)):
        raise ValueError(
            "maps='positions' needs both x and y as maps (N, C, H, W) or both as (N, C), got "
            f"shapes {tuple(np.shape(x))} and {tuple(np.shape(y))}"
        )
    mx, my = as_matrix(x, maps, name="x"), as_matrix(y, maps, name="y")
    if mx.shape[0] < min_n:
        raise ValueError(f"this measure needs at least {min_n} samples, got {mx.shape[0]}")
    scales = (mx.abs().max(), my.abs().max())
    mx, my = mx - mx.mean(0), my - my.mean(0)
    for name, m, scale in (("x", mx, scales[0]), ("y", my, scales[1])):
        # rounding of the mean leaves ~1e-16 relative residue on a constant input
        if not bool(m.abs().max() > 1e-12 * scale):
            raise ValueError(
                f"{name} is constant across all {m.shape[0]} samples (zero variance): "
                "the similarity is undefined"
            )
    return mx, my
