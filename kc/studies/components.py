"""What the figure studies (Figs. 1, 3, 5) share: reading parameters, measuring components.

A fitted g splits a target feature x* into additive parts (Eq. 3-4),
x* = x(0) + ... + x(K) + x_Delta, all in the normalised units of footnote 2. The figures show
these parts over the images and quantify each by its part of Var(x*) (Sec. 4.2's Var, taken
over all images, channels and positions):

* ``var_ratio`` = Var(c) / Var(x*), the quantity of the paper's Tables 1-2. The parts are
  correlated, so these ratios do not add up to 1;
* ``share`` = Cov(c, x*) / Var(x*), the part of Var(x*) that c accounts for. Because the parts
  add up to x*, the shares add up to exactly 1 (they can be negative).

:class:`GFit`, :func:`net_fields` and :func:`pick` (reading the notebook's parameters) come
from :mod:`kc.studies.common` and are re-exported for the figure studies.
Everything here is pure: tensors and frames in, tensors, frames and figures out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from kc.core.normalize import Normalizer
from kc.engine import data
from kc.engine.experiments import DATA_SEED
from kc.engine.overlay import map_of
from kc.studies.common import GFit, net_fields, pick

__all__ = [
    "GFit",
    "Shown",
    "evaluation_images",
    "shown",
    "covariance",
    "channel_variances",
    "direction_maps",
    "direction_table",
    "net_fields",
    "pick",
    "pick_filter",
    "spatial_coherence",
    "spread_classes",
    "strongest_images",
    "variance_shares",
]

# ---------------------------------------------------------------------------- images


def evaluation_images(datasets: Sequence[str], input_size: int, limit: int | None):
    """The test images on which :func:`kc.engine.experiments.get_consistency` evaluates g.

    The same stratified subset (task ``"all"``, seeded by :data:`kc.engine.experiments.DATA_SEED`) and
    order as the test features, so image i belongs to row i of every result's components.
    """
    return data.make_task(
        "all", tuple(datasets), "test", image_size=input_size, limit=limit, seed=DATA_SEED
    )


@dataclass(frozen=True)
class Shown:
    """The images a figure shows: positions among the evaluation images, labels, pixels.

    Attributes:
        index: positions among the evaluation images (rows of the components).
        labels, class_names: their labels and class names (the column titles).
        images: (n, C, H, W) the images.
    """

    index: list[int]
    labels: list[int]
    class_names: list[str]
    images: Tensor


def shown(ds: Any, index: Sequence[int], n_features: int) -> Shown:
    """The images ``index`` of ``ds`` (from :func:`evaluation_images`), checked against the
    number of feature rows they must align with."""
    if len(ds) != n_features:
        raise ValueError(f"{n_features} test features but {len(ds)} test images: they must be "
                         "the same images in the same order")  # fmt: skip
    index = [int(i) for i in index]
    labels = [int(ds.labels[i]) for i in index]
    return Shown(
        index=index,
        labels=labels,
        class_names=[ds.class_names[y] for y in labels],
        images=torch.stack([ds[i][0] for i in index]),
    )


# ---------------------------------------------------------------------------- measuring


def covariance(a: Tensor, b: Tensor) -> float:
    """Cov(a, b) over all elements, E[(a - E a)(b - E b)] (Sec. 4.2's Var is Cov(t, t)).

    Example:
        >>> covariance(torch.tensor([1.0, 3.0]), torch.tensor([2.0, 6.0]))
        2.0
    """
    if a.shape != b.shape or a.numel() == 0:
        raise ValueError(
            f"expected two non-empty tensors of one shape, got {tuple(a.shape)} "
            f"and {tuple(b.shape)}"
        )
    a64, b64 = a.detach().double(), b.detach().double()
    return float(((a64 - a64.mean()) * (b64 - b64.mean())).mean())


def variance_shares(components: Mapping[str, Tensor], target: Tensor) -> pd.DataFrame:
    """Each component's variance ratio and its share of Var(x*).

    Args:
        components: name -> component with the shape of ``target``; they must add up to it
            (e.g. ``x0 .. xK`` and ``delta`` of Eq. 3-4).
        target: x*, (N, C, H, W) or any shape.

    Returns:
        One row per component: ``component, variance, var_ratio, share`` with
        ``var_ratio = Var(c) / Var(x*)`` and ``share = Cov(c, x*) / Var(x*)`` (the shares add
        up to 1).
    """
    if not components:
        raise ValueError("components must name at least one component")
    for name, c in components.items():
        if c.shape != target.shape:
            raise ValueError(
                f"component {name!r} has shape {tuple(c.shape)}, x* has {tuple(target.shape)}"
            )
    total = sum(c.double() for c in components.values())
    gap = float((total - target.double()).abs().max())
    scale = float(target.double().abs().max()) or 1.0
    if gap > 1e-4 * scale:
        raise ValueError(f"the components do not add up to x* (max gap {gap:.3g})")
    var = covariance(target, target)
    if var == 0.0:
        raise ValueError("x* has zero variance: its shares are undefined")
    rows = [
        {
            "component": name,
            "variance": covariance(c, c),
            "var_ratio": covariance(c, c) / var,
            "share": covariance(c, target) / var,
        }
        for name, c in components.items()
    ]
    return pd.DataFrame(rows)


def channel_variances(feature: Tensor) -> Tensor:
    """Var of each channel over images and positions: (N, C, H, W) -> (C,), float64."""
    if feature.dim() != 4:
        raise ValueError(f"expected a feature (N, C, H, W), got {tuple(feature.shape)}")
    return feature.detach().double().transpose(0, 1).flatten(1).var(dim=1, unbiased=False)


def pick_filter(feature: Tensor) -> int:
    """The filter shown in Fig. 1: the channel of x* with the largest variance on the images.

    Example:
        >>> f = torch.zeros(4, 3, 2, 2); f[:, 1] = torch.randn(4, 2, 2)
        >>> pick_filter(f)
        1
    """
    return int(channel_variances(feature).argmax())


def strongest_images(scores: Tensor, labels: Tensor, n: int) -> list[int]:
    """Indices of the ``n`` images with the highest scores, at most one per class first.

    Images are ranked by ``scores``; the best image of each class is taken in that order until
    ``n`` are chosen; if there are fewer classes than ``n``, the next best images fill up.

    Example:
        >>> strongest_images(torch.tensor([5.0, 4.0, 3.0, 1.0]), torch.tensor([0, 0, 1, 2]), 2)
        [0, 2]
    """
    if scores.dim() != 1 or labels.shape != scores.shape:
        raise ValueError(
            f"expected scores and labels of shape (N,), got {tuple(scores.shape)} "
            f"and {tuple(labels.shape)}"
        )
    if not 1 <= n <= scores.numel():
        raise ValueError(f"n must lie in [1, {scores.numel()}], got {n}")
    order = torch.argsort(scores, descending=True, stable=True).tolist()
    seen: set[int] = set()
    chosen = []
    for i in order:
        if int(labels[i]) not in seen:
            seen.add(int(labels[i]))
            chosen.append(i)
    chosen += [i for i in order if i not in chosen]
    return chosen[:n]


def spread_classes(labels: Tensor, n: int) -> list[int]:
    """``n`` images of classes spread evenly over the label range: the first image of each.

    The classes are ``linspace(0, n_classes - 1, n)`` of the sorted distinct labels, so a
    mixture task (garments 0-9, digits 10-19) shows images of both of its data sets.

    Example:
        >>> spread_classes(torch.tensor([0, 0, 1, 2, 3, 3]), 2)
        [0, 4]
    """
    classes = torch.unique(labels).tolist()
    if not 1 <= n <= len(classes):
        raise ValueError(f"n must lie in [1, {len(classes)}] (the number of classes), got {n}")
    picks = [classes[int(round(k))] for k in np.linspace(0, len(classes) - 1, n)]
    return [int(torch.nonzero(labels == c)[0]) for c in picks]


def spatial_coherence(feature: Tensor) -> float:
    """How smooth maps are: the correlation of horizontally and vertically adjacent positions.

    Each map (image, channel) is centred on its own mean; then
    ``sum(a_p a_q) / sum(a_p^2)`` over all pairs of neighbours (p, q) (and the squares over the
    same positions). Noise gives ~0, smooth blobs ~1, a checkerboard -1.

    Args:
        feature: (N, C, H, W) with H >= 2 or W >= 2.

    Example:
        >>> spatial_coherence(torch.tensor([[[[1.0, -1.0], [-1.0, 1.0]]]]))
        -1.0
    """
    if feature.dim() != 4 or max(feature.shape[-2:]) < 2:
        raise ValueError(f"expected maps (N, C, H, W) with H or W >= 2, got {tuple(feature.shape)}")
    t = feature.detach().double()
    t = t - t.mean(dim=(-2, -1), keepdim=True)
    num = den = 0.0
    if t.shape[-1] >= 2:
        num += float((t[..., :, 1:] * t[..., :, :-1]).sum())
        den += float(((t[..., :, 1:] ** 2 + t[..., :, :-1] ** 2) / 2).sum())
    if t.shape[-2] >= 2:
        num += float((t[..., 1:, :] * t[..., :-1, :]).sum())
        den += float(((t[..., 1:, :] ** 2 + t[..., :-1, :] ** 2) / 2).sum())
    return num / den if den > 0 else float("nan")


#: The three parts of one direction of a diagnosis (Fig. 3) or cross-task (Fig. 5) figure.
DIRECTION_PARTS = ("raw feature", "reconstructable g(x)", "residual x^Delta")


def direction_maps(
    target: Tensor, delta: Tensor, to_raw: Normalizer | None, index: Sequence[int]
) -> dict[str, Tensor]:
    """Channel-averaged |.| maps of x*, g(x) = x* - x_Delta and x_Delta in x*'s raw units.

    Args:
        target: normalised x* (N, C, H, W), as in :class:`kc.ConsistencyResult`.
        delta: x_Delta (N, C, H, W) in the same units.
        to_raw: x*'s footnote-2 normaliser (``g.normalizer("x_star")``); None keeps the
            normalised units. x* and g(x) are mapped back with it, x_Delta is scaled by its std
            (a difference has no offset), so the maps show where the network's feature fires.
        index: the images to show.

    Returns:
        ``{part: (n, H, W)}`` for the parts of :data:`DIRECTION_PARTS`.
    """
    if target.shape != delta.shape or target.dim() != 4:
        raise ValueError(
            f"expected x* and x_Delta of one shape (N, C, H, W), got "
            f"{tuple(target.shape)} and {tuple(delta.shape)}"
        )
    idx = torch.as_tensor(list(index), dtype=torch.long)
    t, d = target[idx], delta[idx]
    if to_raw is None:
        raw, consistent, residual = t, t - d, d
    else:
        raw, consistent, residual = to_raw.inverse(t), to_raw.inverse(t - d), d * to_raw.std
    return dict(
        zip(DIRECTION_PARTS, (map_of(raw), map_of(consistent), map_of(residual)), strict=True)
    )


def direction_table(target: Tensor, delta: Tensor) -> pd.DataFrame:
    """Variance ratio, share of Var(x*) and spatial coherence of x*, g(x) and x_Delta.

    Returns:
        One row per part of :data:`DIRECTION_PARTS`: ``part, var_ratio, share, coherence``
        (x*'s own row has ratio and share 1).
    """
    shares = variance_shares({"consistent": target - delta, "delta": delta}, target)
    s = shares.set_index("component")
    size_ok = max(target.shape[-2:]) >= 2
    parts = (target, target - delta, delta)
    rows = [
        {
            "part": part,
            "var_ratio": ratio,
            "share": share,
            "coherence": spatial_coherence(t) if size_ok else float("nan"),
        }
        for part, ratio, share, t in zip(
            DIRECTION_PARTS,
            (1.0, s.loc["consistent", "var_ratio"], s.loc["delta", "var_ratio"]),
            (1.0, s.loc["consistent", "share"], s.loc["delta", "share"]),
            parts,
            strict=True,
        )
    ]
    return pd.DataFrame(rows)
