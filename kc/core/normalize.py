"""Feature normalisation of footnote 2: zero mean and unit variance.

Statistics are estimated on the training features and applied unchanged to held-out
features, so that a held-out set keeps whatever shift it has relative to training.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor

NORM_MODES = ("global", "channel")


@dataclass(frozen=True)
class Normalizer:
    """An affine map x -> (x - mean) / std with fixed statistics.

    ``mean`` and ``std`` are scalars (mode ``"global"``) or have shape (1, C, 1, 1) for maps
    and (1, C) for vectors (mode ``"channel"``).
    """

    mean: Tensor
    std: Tensor
    mode: str = "global"

    def __call__(self, x: Tensor) -> Tensor:
        return (x - self.mean.to(x)) / self.std.to(x)

    def inverse(self, z: Tensor) -> Tensor:
        """Map normalised values back to the raw scale."""
        return z * self.std.to(z) + self.mean.to(z)


def _reduce_dims(x: Tensor, mode: str) -> tuple[int, ...]:
    if mode == "global":
        return tuple(range(x.dim()))
    return (0,) + tuple(range(2, x.dim()))


def fit_normalizer(x: Tensor | Iterable[Tensor], mode: str = "global") -> Normalizer:
    """Estimate the statistics of footnote 2 from training features.

    Args:
        x: features (N, C, H, W) or (N, C), or an iterable of such batches (streamed in
            float64, for features that do not fit in memory).
        mode: ``"global"``: one mean and std over all elements (rescales magnitude only,
            so a ratio of variances such as the instability is the same in raw and
            normalised units); ``"channel"``: one mean and std per channel.

    Returns:
        A :class:`Normalizer`. A constant channel (or feature) gets std 1, never NaN.
    """
    if mode not in NORM_MODES:
        raise ValueError(f"norm mode must be one of {NORM_MODES}, got {mode!r}")
    batches = [x] if isinstance(x, Tensor) else x
    s1 = s2 = None
    count = 0
    for b in batches:
        if b.dim() not in (2, 4):
            raise ValueError(f"expected (N, C) or (N, C, H, W) features, got shape {tuple(b.shape)}")
        dims = _reduce_dims(b, mode)
        b64 = b.detach().to(torch.float64)
        t1, t2 = b64.sum(dims, keepdim=True), (b64 * b64).sum(dims, keepdim=True)
        s1, s2 = (t1, t2) if s1 is None else (s1 + t1, s2 + t2)
        count += b.numel() // t1.numel()
    if s1 is None or count == 0:
        raise ValueError("cannot fit a normaliser on zero samples")
    mean = s1 / count
    var = (s2 / count - mean * mean).clamp_min(0.0)
    std = var.sqrt()
    std = torch.where(std > 1e-12 * (1 + mean.abs()), std, torch.ones_like(std))
    if mode == "global":
        mean, std = mean.reshape(()), std.reshape(())
    return Normalizer(mean.float(), std.float(), mode)


def normalize(
    x: Tensor, stats: Normalizer | None = None, *, mode: str = "global"
) -> tuple[Tensor, Normalizer]:
    """Normalise features to zero mean and unit variance (footnote 2).

    Args:
        x: features (N, C, H, W) or (N, C).
        stats: statistics to apply (for held-out features); fitted on ``x`` when None.
        mode: ``"global"`` or ``"channel"`` when fitting.

    Returns:
        (normalised x, the statistics used).

    Example:
        >>> z, stats = normalize(torch.randn(100, 3) * 5 + 2)
        >>> round(abs(float(z.mean())), 4), round(float(z.std(unbiased=False)), 4)
        (0.0, 1.0)
    """
    if stats is None:
        stats = fit_normalizer(x, mode)
    return stats(x), stats
