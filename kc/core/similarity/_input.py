"""Turning features into sample-by-feature matrices: the one rule for convolutional maps.

Every measure in :mod:`kc.core.similarity` compares two matrices X (n, d_x) and Y (n, d_y) whose
rows are the same n samples. Features of shape (N, C) are used as they are. For maps of shape
(N, C, H, W) the ``maps`` argument chooses what a sample is:

* ``"flatten"`` (default): one sample per image, the C x H x W values of the map its features,
  so X is (N, C*H*W). Sensitive to where in the map a pattern sits.
* ``"positions"``: one sample per image and spatial position, the C channels its features, so
  X is (N*H*W, C). x and y must then have the same H and W (positions are matched one to one).
* ``"pool"``: one sample per image, the spatial mean of each channel its features, so X is
  (N, C). Blind to where a pattern sits; the one rule that compares maps of different sizes
  with few features per sample (CCA across layers, for example).

Whatever goes in (torch tensor or numpy array, any float dtype), the measures compute in
float64 on the CPU.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

MAPS = ("flatten", "positions", "pool")

Features = Tensor | np.ndarray
"""What the measures accept: a torch tensor or a numpy array of shape (N, C) or (N, C, H, W)."""


def as_matrix(x: Features, maps: str = "flatten", *, name: str = "x") -> Tensor:
    """Features as a float64 matrix of samples by features, by the rule of this module.

    Args:
        x: features (N, C) or (N, C, H, W), a torch tensor or a numpy array.
        maps: ``"flatten"`` -> (N, C*H*W), ``"positions"`` -> (N*H*W, C) or ``"pool"`` -> (N, C);
            ignored for (N, C).
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
        if maps == "flatten":
            m = t.flatten(1)
        elif maps == "pool":
            m = t.mean(dim=(2, 3))
        else:
            m = t.permute(0, 2, 3, 1).reshape(-1, t.shape[1])
    else:
        raise ValueError(f"{name} must have shape (N, C) or (N, C, H, W), got {tuple(t.shape)}")
    if m.shape[0] == 0 or m.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {tuple(t.shape)}")
    if not math.isfinite(float(m.sum())):  # one pass; NaN and inf propagate into the sum
        raise ValueError(f"{name} contains NaN or infinite values")
    return m


def pair(
    x: Features, y: Features, maps: str = "flatten", *, min_n: int = 2, center: bool = True
) -> tuple[Tensor, Tensor]:
    """Check a pair of features once and return both as float64 matrices.

    Args:
        x, y: features of the same N samples, each (N, C) or (N, C, H, W).
        maps: see :func:`as_matrix`.
        min_n: the fewest samples (rows, after ``maps``) the measure accepts.
        center: centre every column (mean zero over the samples); a measure that centres its
            n x n Gram matrices instead passes False.

    Returns:
        (X, Y), (n, d_x) and (n, d_y).

    Raises:
        ValueError: N differs, spatial sizes differ under ``"positions"``, too few samples,
            or either side has no variance at all (every sample identical).
    """
    sx, sy = tuple(np.shape(x)), tuple(np.shape(y))
    if sx and sy and sx[0] != sy[0]:
        raise ValueError(
            f"expected x and y with the same number of samples N, got {sx[0]} and {sy[0]}"
        )
    if maps == "positions" and len(sx) != len(sy):
        raise ValueError(
            "maps='positions' needs both x and y as maps (N, C, H, W) or both as (N, C), got "
            f"shapes {sx} and {sy}"
        )
    if maps == "positions" and len(sx) == 4 and sx[2:] != sy[2:]:
        raise ValueError(
            f"maps='positions' needs x and y with the same spatial size, got {sx[2:]} and {sy[2:]}"
        )
    mx, my = as_matrix(x, maps, name="x"), as_matrix(y, maps, name="y")
    if mx.shape[0] < min_n:
        raise ValueError(f"this measure needs at least {min_n} samples, got {mx.shape[0]}")
    for name, m in (("x", mx), ("y", my)):
        if torch.equal(m, m[:1].expand_as(m)):  # exits at the first differing value
            raise ValueError(
                f"{name} is constant across all {m.shape[0]} samples (zero variance): "
                "the similarity is undefined"
            )
    if center:
        mx, my = mx - mx.mean(0), my - my.mean(0)
    return mx, my
