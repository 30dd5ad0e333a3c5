"""The additive decomposition of g(x) into consistent components of each order (Eq. 3-4)."""

from __future__ import annotations

import torch
from torch import Tensor

from kc.core.model import ConsistencyNet, as_map


def decompose(g: ConsistencyNet, x: Tensor) -> Tensor:
    """Split g(x) into its order-k components x(0), ..., x(K) (Eq. 4).

    .. math::
        x^{(k)} = W^{(0)} \\Big(\\prod_{k'=1}^{k} p^{(k')} A^{(k')} \\Sigma_{(k')}^{-1/2}
        W^{(k')}\\Big) x

    The ReLU gates A(k') and the scales Sigma(k')^{-1/2} are those recorded in one forward
    pass on the same ``x`` (per sample in ``"instance"`` mode), so every branch is linear
    in x and ``decompose(g, x).sum(0)`` equals ``g(x)`` up to float rounding. The residual
    of Eq. 3 is ``x_star - g(x)``. Running statistics of g are left untouched.

    Args:
        g: a consistency network with K = ``g.order``.
        x: normalised input feature, (N, C, H, W) or (N, C).

    Returns:
        Tensor of shape (K + 1, N, C*, H, W) (or (K + 1, N, C*) for vector features).

    Example:
        >>> g = ConsistencyNet(3, 2, order=2).eval()
        >>> x = torch.randn(4, 3, 5, 5)
        >>> torch.allclose(decompose(g, x).sum(0), g(x), atol=1e-5)
        True
    """
    xm, is_vector = as_map(x)
    with g.frozen_sigma():
        _, record = g.trace(xm)
    p = g.p
    components = []
    for k in range(g.order + 1):
        z = g.weights[k](xm)
        for j in range(k, 0, -1):  # apply p(j) A(j) Sigma(j)^{-1/2}, then W(j-1)
            scale, gate = record[j - 1]
            z = g.weights[j - 1](p[j - 1] * gate * (scale * z))
        components.append(z[:, :, 0, 0] if is_vector else z)
    return torch.stack(components)
