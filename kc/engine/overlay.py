"""Feature maps shown over the images they were computed on (Figs. 1, 3-5 of the paper).

A feature map of a convolutional layer is coarser than its input image. To let a reader see
*where* a component fires, each map is upsampled to the image's size and drawn semi-transparent
over the (grey) image. Every row of a grid is one component (x*, x(0), x(1), ..., x-Delta) and
shares one colour scale and one colour bar, so the magnitudes of a row can be compared across
images; the first row is the input image itself.

The functions are pure: tensors in, a tensor or a matplotlib Figure out; nothing is written.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch.nn.functional as F
from torch import Tensor

__all__ = ["component_grid", "map_of", "upsample"]


def map_of(feature: Tensor, channel: int | None = None) -> Tensor:
    """One 2-D map per image from a feature (n, C, h, w).

    Args:
        feature: (n, C, h, w) feature maps.
        channel: the channel (filter) to show; None averages |feature| over the channels.

    Returns:
        (n, h, w) maps (signed for a single channel, non-negative for the average).
    """
    if feature.dim() != 4:
        raise ValueError(f"expected a feature of shape (n, C, h, w), got {tuple(feature.shape)}")
    if channel is None:
        return feature.abs().mean(dim=1)
    if not 0 <= channel < feature.shape[1]:
        raise ValueError(f"channel must lie in [0, {feature.shape[1]}), got {channel}")
    return feature[:, channel]


def upsample(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinear upsampling of maps (n, h, w) to the image size (H, W): returns (n, H, W)."""
    if maps.dim() != 3:
        raise ValueError(f"expected maps of shape (n, h, w), got {tuple(maps.shape)}")
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"size must be (H, W) with positive sides, got {size}")
    out = F.interpolate(maps[:, None].float(), size=tuple(size), mode="bilinear",
                        align_corners=False)
    return out[:, 0]


def _grey(images: Tensor) -> Tensor:
    """(n, C, H, W) images to (n, H, W) grey values in [0, 1] (per-image min-max)."""
    if images.dim() != 4:
        raise ValueError(f"expected images of shape (n, C, H, W), got {tuple(images.shape)}")
    g = images.float().mean(dim=1)
    lo = g.flatten(1).min(1).values[:, None, None]
    hi = g.flatten(1).max(1).values[:, None, None]
    return (g - lo) / (hi - lo).clamp_min(1e-12)


def component_grid(
    images: Tensor,
    rows: Mapping[str, Tensor],
    *,
    titles: list[str] | None = None,
    cmap: str = "magma",
    alpha: float = 0.6,
    diverging: bool = False,
):
    """A grid of components over images: one row per component, one column per image.

    Args:
        images: (n, C, H, W) input images, shown in grey in the first row and under every map.
        rows: component name -> (n, h, w) maps of the same n images (see :func:`map_of`),
            in the order to draw; each is upsampled to (H, W).
        titles: optional column titles (one per image).
        cmap: colour map of the overlays (a diverging map is used when ``diverging``).
        alpha: opacity of the overlay.
        diverging: centre each row's scale at 0 (for signed single-channel maps).

    Returns:
        A matplotlib Figure with ``1 + len(rows)`` rows and n columns; each component row has
        one shared colour scale and a colour bar.
    """
    import matplotlib.pyplot as plt

    grey = _grey(images)
    n, size = grey.shape[0], tuple(grey.shape[-2:])
    if not rows:
        raise ValueError("rows must name at least one component")
    for name, maps in rows.items():
        if maps.dim() != 3 or maps.shape[0] != n:
            raise ValueError(
                f"row {name!r}: expected maps of shape ({n}, h, w), got {tuple(maps.shape)}"
            )
    if titles is not None and len(titles) != n:
        raise ValueError(f"got {len(titles)} titles for {n} images")
    fig, axes = plt.subplots(1 + len(rows), n, figsize=(1.5 * n + 1.0, 1.5 * (1 + len(rows))),
                             squeeze=False)
    for j in range(n):
        axes[0, j].imshow(grey[j].numpy(), cmap="gray", vmin=0, vmax=1)
        if titles is not None:
            axes[0, j].set_title(titles[j], fontsize=7)
    axes[0, 0].set_ylabel("image", fontsize=7)
    for i, (name, maps) in enumerate(rows.items(), start=1):
        up = upsample(maps.detach().cpu(), size)
        if diverging:
            vmax = float(up.abs().max()) or 1.0
            vmin, cm = -vmax, "RdBu_r"
        else:
            vmin, vmax, cm = float(up.min()), float(up.max()), cmap
            if vmax <= vmin:
                vmax = vmin + 1.0
        image = None
        for j in range(n):
            axes[i, j].imshow(grey[j].numpy(), cmap="gray", vmin=0, vmax=1)
            image = axes[i, j].imshow(up[j].numpy(), cmap=cm, vmin=vmin, vmax=vmax, alpha=alpha)
        axes[i, 0].set_ylabel(name, fontsize=7)
        fig.colorbar(image, ax=list(axes[i]), fraction=0.02, pad=0.01)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig

