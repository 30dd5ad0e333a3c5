"""The training loss of the consistency network (Eq. 2)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from kc.core.model import ConsistencyNet


def consistency_loss(g: ConsistencyNet, x: Tensor, x_star: Tensor, lam: float) -> Tensor:
    """Eq. 2: reconstruction error plus a penalty on the high-order branches.

    .. math::
        L(\\theta) = \\lVert g_\\theta(x) - x^* \\rVert^2 + \\lambda \\sum_{k=1}^{K} (p^{(k)})^2

    The squared error is averaged over elements (so lambda does not scale with feature
    size). Penalising p pushes whatever a low order can explain into the low branches.

    Args:
        g: the consistency network.
        x: normalised input feature (N, C, H, W) or (N, C).
        x_star: normalised target feature with the shape of ``g(x)``.
        lam: lambda >= 0 (the paper: 0.1; 8.0 for AlexNet features).

    Returns:
        A scalar tensor.
    """
    if lam < 0:
        raise ValueError(f"lam must be >= 0, got {lam}")
    out = g(x)
    if out.shape != x_star.shape:
        raise ValueError(f"g(x) has shape {tuple(out.shape)} but x_star has {tuple(x_star.shape)}")
    return F.mse_loss(out, x_star) + lam * (g.p ** 2).sum()
