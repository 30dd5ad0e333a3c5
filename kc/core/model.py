"""The consistency network g of Eq. 1 (Liang et al., ICLR 2020, Sec. 3).

g reconstructs a target feature x* of one network from a feature x of another through
K + 1 branches. Block k computes

    h(K) = W(K) x
    h(k) = W(k) [x + p(k+1) ReLU(Sigma(k+1)^{-1/2} h(k+1))],   k = K-1, ..., 0

and g(x) = h(0). The W(k) are bias-free convolutions (1x1 maps for vector features), the
p(k) positive scalars and Sigma(k)^{-1/2} a diagonal normalisation of h(k).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kc.core.normalize import Normalizer

SIGMA_MODES = ("batch", "instance")


def as_map(x: Tensor) -> tuple[Tensor, bool]:
    """View a vector feature (N, C) as a 1x1 map (N, C, 1, 1); leave maps unchanged.

    Returns:
        (the map, whether ``x`` was a vector feature).
    """
    if x.dim() == 2:
        return x[:, :, None, None], True
    if x.dim() == 4:
        return x, False
    raise ValueError(
        f"expected a feature of shape (N, C) or (N, C, H, W), got shape {tuple(x.shape)}"
    )


class _ResizableBuffers(nn.Module):
    """A module whose buffers take the shape found in a loaded state dict.

    Buffers that are created lazily (per-element statistics, normalisers set after a fit)
    have no fixed shape at construction; loading a fitted state dict must still work on a
    freshly constructed module.
    """

    def _load_from_state_dict(self, state_dict, prefix, *args: Any, **kwargs: Any) -> None:  # type: ignore[override]
        for name in list(self._buffers):
            key = prefix + name
            if key in state_dict:
                incoming = state_dict[key]
                current = self._buffers[name]
                if current is None or current.shape != incoming.shape:
                    self._buffers[name] = torch.empty_like(incoming)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class SigmaNorm(_ResizableBuffers):
    """The scale Sigma^{-1/2} of Eq. 1, returned as a tensor broadcastable to h.

    Two modes, neither subtracting a mean (only the scale of h changes):

    * ``"batch"`` (the paper's text): sigma_m^2 is the variance of element m of h (one per
      channel and position) over the images of the batch. A running estimate (exponential,
      ``momentum``) is kept in training and used in eval mode; :meth:`calibrate` replaces it
      by the exact average over a data set after fitting.
    * ``"instance"`` (the authors' released code): the standard deviation of each channel of
      each sample over its H x W positions. For 1x1 maps (vector features) a single position
      has no spread, so the standard deviation of the sample over its channels is used.

    The scale is detached from the graph in both modes: it acts as a normalising constant.
    """

    def __init__(self, mode: str = "batch", *, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        if mode not in SIGMA_MODES:
            raise ValueError(f"sigma must be one of {SIGMA_MODES}, got {mode!r}")
        self.mode = mode
        self.momentum = momentum
        self.eps = eps
        self.register_buffer("running_var", None)
        self.update = True  # switched off through ConsistencyNet.frozen_sigma()

    def forward(self, h: Tensor) -> Tensor:
        """Args: h (N, C, H, W). Returns the scale, shape (1, C, H, W) or (N, C, 1, 1)."""
        h = h.detach()
        if self.mode == "instance":
            if h.shape[-2:] == (1, 1):
                var = h.var(dim=1, keepdim=True, unbiased=False)
            else:
                var = h.var(dim=(2, 3), keepdim=True, unbiased=False)
            return torch.rsqrt(var + self.eps)
        # two passes over h: several times faster on the CPU than Tensor.var over dim 0
        batch_var = (h - h.mean(0, keepdim=True)).square().mean(0, keepdim=True)
        if self.training:
            if self.update:
                if self.running_var is None or self.running_var.shape != batch_var.shape:
                    self.running_var = batch_var.clone()
                else:
                    self.running_var.mul_(1 - self.momentum).add_(self.momentum * batch_var)
            return torch.rsqrt(batch_var + self.eps)
        if self.running_var is None:
            # Never fitted: the best available estimate is the batch itself.
            return torch.rsqrt(batch_var + self.eps)
        if self.running_var.shape[1:] != batch_var.shape[1:]:
            raise ValueError(
                f"this g was fitted on maps of shape {tuple(self.running_var.shape[1:])}, "
                f"got {tuple(batch_var.shape[1:])}"
            )
        return torch.rsqrt(self.running_var + self.eps)


class ConsistencyNet(_ResizableBuffers):
    """The network g of Eq. 1 with K = ``order`` (K + 1 branches).

    Args:
        in_channels: channels C of the input feature x, shape (N, C, H, W) or (N, C).
        out_channels: channels C* of the target feature x*, shape (N, C*, H, W) or (N, C*).
        order: K >= 0, the highest order (number of ReLU layers on the longest branch).
        kernel_size: odd side of the bias-free convolutions W(k) ('same' zero padding).
        sigma: ``"batch"`` (the paper's text) or ``"instance"`` (the released code); see
            :class:`SigmaNorm`.
        p_init: initial value of every p(k) in (0, 1). p(k) = sigmoid(q(k)) with learnable
            q(k), so p stays positive (as in the released code); Eq. 2 penalises p itself.

    The feature normalisers of footnote 2 (set by :func:`kc.fit_consistency` through
    :meth:`set_normalizers`) live in the buffers ``x_mean``, ``x_std``, ``x_star_mean``,
    ``x_star_std`` so that a saved state dict restores a fitted g completely:
    ``ConsistencyNet(**g.config).load_state_dict(sd)``. ``forward`` itself works on already
    normalised features. ``fit_report`` holds the :class:`kc.core.fit.FitReport` of the fit that
    produced g (None for an unfitted g).

    Example:
        >>> g = ConsistencyNet(8, 4, order=2)
        >>> g(torch.randn(5, 8, 6, 6)).shape
        torch.Size([5, 4, 6, 6])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        order: int = 2,
        kernel_size: int = 3,
        sigma: str = "batch",
        p_init: float = 0.5,
    ) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(order, int) or order < 0:
            raise ValueError(f"order must be an integer >= 0, got {order!r}")
        if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size!r}")
        if sigma not in SIGMA_MODES:
            raise ValueError(f"sigma must be one of {SIGMA_MODES}, got {sigma!r}")
        if not 0.0 < p_init < 1.0:
            raise ValueError(f"p_init must lie in (0, 1), got {p_init!r}")
        self.config = dict(
            in_channels=in_channels,
            out_channels=out_channels,
            order=order,
            kernel_size=kernel_size,
            sigma=sigma,
            p_init=p_init,
        )
        self.order = order
        pad = kernel_size // 2
        # W(0) maps to the target's channels; W(k >= 1) feed x + x_higher, so keep C channels.
        self.weights = nn.ModuleList(
            nn.Conv2d(in_channels, out_channels if k == 0 else in_channels, kernel_size,
                      padding=pad, bias=False)
            for k in range(order + 1)
        )
        self.sigmas = nn.ModuleList(SigmaNorm(sigma) for _ in range(order))
        self.p_logit = nn.Parameter(torch.full((order,), math.log(p_init / (1 - p_init))))
        for name in ("x_mean", "x_std", "x_star_mean", "x_star_std"):
            self.register_buffer(name, None)
        self.fit_report: Any = None

    def set_normalizers(self, x: Normalizer | None, x_star: Normalizer | None) -> None:
        """Store the footnote-2 statistics of ``x`` and ``x_star`` (None: not normalised).

        Example:
            >>> from kc.core.normalize import fit_normalizer
            >>> g = ConsistencyNet(3, 2)
            >>> g.set_normalizers(fit_normalizer(torch.ones(4, 3) * 2), None)
            >>> float(g.normalizer("x").mean), g.normalizer("x_star")
            (2.0, None)
        """
        for which, stats in (("x", x), ("x_star", x_star)):
            if stats is not None and not isinstance(stats, Normalizer):
                raise ValueError(f"{which} must be a Normalizer or None, got {type(stats).__name__}")
            setattr(self, which + "_mean", None if stats is None else stats.mean.detach().clone())
            setattr(self, which + "_std", None if stats is None else stats.std.detach().clone())

    @contextmanager
    def frozen_sigma(self) -> Iterator[ConsistencyNet]:
        """Context in which no forward pass changes the running Sigma statistics.

        Used by :func:`kc.decompose` so that measuring never alters g. Restores the previous
        setting on exit, also after an exception.

        Example:
            >>> g = ConsistencyNet(3, 3, order=1).train()
            >>> with g.frozen_sigma():
            ...     _ = g(torch.randn(4, 3, 5, 5))
            >>> g.sigmas[0].running_var is None
            True
        """
        previous = [s.update for s in self.sigmas]
        for s in self.sigmas:
            s.update = False
        try:
            yield self
        finally:
            for s, u in zip(self.sigmas, previous, strict=True):
                s.update = u

    def normalizer(self, which: str) -> Normalizer | None:
        """The footnote-2 statistics stored by the fit for ``"x"`` or ``"x_star"``.

        Returns None when that feature was not normalised (or g was never fitted).
        """
        if which not in ("x", "x_star"):
            raise ValueError(f"which must be 'x' or 'x_star', got {which!r}")
        mean, std = getattr(self, which + "_mean"), getattr(self, which + "_std")
        if mean is None or std is None:
            return None
        return Normalizer(mean, std, "global" if mean.dim() == 0 else "channel")

    @property
    def p(self) -> Tensor:
        """p(1), ..., p(K) of Eq. 1 as a tensor of shape (K,)."""
        return torch.sigmoid(self.p_logit)

    def forward(self, x: Tensor) -> Tensor:
        """g(x) = h(0) of Eq. 1. Args: x (N, C, H, W) or (N, C). Returns (N, C*, ...)."""
        return self.trace(x)[0]

    def trace(self, x: Tensor) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]:
        """Forward pass that also returns what Eq. 4 needs.

        Returns:
            g(x) with the shape of the target, and for k = 1..K (index k-1) the pair
            (scale Sigma(k)^{-1/2}, ReLU gate A(k) as a bool mask), both broadcastable to
            h(k) of shape (N, C, H, W).
        """
        xm, is_vector = as_map(x)
        p = self.p
        record: list[tuple[Tensor, Tensor]] = [None] * self.order  # type: ignore[list-item]
        h = self.weights[self.order](xm)
        for k in range(self.order - 1, -1, -1):  # h currently holds h(k+1)
            scale = self.sigmas[k](h)
            v = h * scale
            gate = v > 0
            record[k] = (scale, gate)
            h = self.weights[k](xm + p[k] * F.relu(v))
        out = h[:, :, 0, 0] if is_vector else h
        return out, record

    @torch.no_grad()
    def calibrate(self, batches: Sequence[Tensor] | Any) -> None:
        """Set the ``"batch"`` running variances to their exact average over ``batches``.

        Calibrates Sigma(K) first, since h(k) depends on the scales of deeper branches.
        ``batches`` is a re-iterable of normalised inputs (N_i, C, H, W). No-op in
        ``"instance"`` mode.
        """
        if self.config["sigma"] != "batch" or self.order == 0:
            return
        was_training = self.training
        self.eval()
        for level in range(self.order - 1, -1, -1):  # sigma index `level` normalises h(level+1)
            total, count = None, 0
            for xb in batches:
                xm, _ = as_map(xb)
                h = self.weights[self.order](xm)
                for k in range(self.order - 1, level, -1):
                    v = h * self.sigmas[k](h)
                    h = self.weights[k](xm + self.p[k] * F.relu(v))
                # h holds h(level+1); accumulate sums for the per-element variance
                s1 = h.sum(0, keepdim=True)
                s2 = (h * h).sum(0, keepdim=True)
                total = (s1, s2) if total is None else (total[0] + s1, total[1] + s2)
                count += h.shape[0]
            if total is None:
                raise ValueError("calibrate() got no batches")
            mean = total[0] / count
            self.sigmas[level].running_var = (total[1] / count - mean * mean).clamp_min(0.0)
        self.train(was_training)
