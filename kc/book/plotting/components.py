"""Figures of the component studies (Figs. 1, 3 and 5): a target feature split into its parts.

Every figure here is a :func:`kc.engine.overlay.component_grid` of channel-averaged maps over test
images (one colour scale per row), drawn from a study's result: data in, matplotlib Figure out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from torch import Tensor

from kc.engine.overlay import component_grid
from kc.studies import cross_task as ct
from kc.studies.components import DIRECTION_PARTS
from kc.studies.diagnosis import figure as dfig
from kc.studies.orders import figure as of

__all__ = [
    "cross_task_figures",
    "cross_task_instability",
    "diagnosis_figures",
    "direction_figure",
    "orders_figure",
]


def direction_figure(
    images: Tensor,
    maps: Mapping[str, Tensor],
    table: pd.DataFrame,
    *,
    labels: Mapping[str, str],
    title: str,
    titles: Sequence[str] | None = None,
) -> Any:
    """One direction of Fig. 3 / Fig. 5: x*, its part reconstructable from x and x_Delta.

    Args:
        images: (n, C, H, W) input images.
        maps: :func:`kc.studies.components.direction_maps` of the same n images.
        table: :func:`kc.studies.components.direction_table`, for the variance shares written
            beside each row.
        labels: part of :data:`kc.studies.components.DIRECTION_PARTS` -> the row's name (e.g.
            "blind spots").
        title: the figure's title. titles: optional column titles.

    Returns:
        A :func:`kc.engine.overlay.component_grid` figure (one colour scale and bar per row).
    """
    shares = table.set_index("part")
    rows = {}
    for part in DIRECTION_PARTS:
        share = shares.loc[part, "share"]
        rows[f"{labels.get(part, part)}\n{100 * share:.0f}% of Var(x*)"] = maps[part]
    fig = component_grid(images, rows, titles=None if titles is None else list(titles))
    fig.suptitle(title, fontsize=8)
    return fig


def _direction_figures(
    result: Any, tables: Mapping[str, pd.DataFrame], rows: Mapping[str, tuple[dict, str]]
) -> dict[str, Any]:
    """``{direction: direction_figure}`` for ``rows`` = direction -> (labels, title)."""
    return {
        direction: direction_figure(
            result.shown.images,
            result.maps[direction],
            tables[direction],
            labels=labels,
            title=title,
            titles=result.shown.class_names,
        )
        for direction, (labels, title) in rows.items()
    }


def diagnosis_figures(result: dfig.DiagnosisFigureResult) -> dict[str, Any]:
    """Fig. 3 left (``"blind spots"``) and right (``"unreliable"``), one figure each.

    Channel-averaged |.| maps in the target network's raw units, upsampled over the images;
    one colour scale per row, the share of Var(x*) beside each row.

    Args:
        result: :func:`kc.studies.diagnosis.figure.run`.
    """
    names = dfig.network_names(result)
    rows = {}
    for direction, (src, dst, residual) in dfig.DIRECTIONS.items():
        labels = {
            DIRECTION_PARTS[0]: f"x_{dst} ({names[dst]})",
            DIRECTION_PARTS[1]: f"from x_{src}",
            DIRECTION_PARTS[2]: residual,
        }
        title = (
            f"{direction}: g rebuilds the {dst} network's {names[dst]} from the {src} "
            f"network's {names[src]}"
        )
        rows[direction] = (labels, title)
    return _direction_figures(result, result.tables, rows)


def cross_task_figures(result: ct.CrossTaskResult) -> dict[str, Any]:
    """Fig. 5: both directions for the first seed, one component grid each.

    Rows: the target's raw feature, its part consistent with the other network (g(x)) and its
    inconsistent part x^Delta; channel-averaged |.| in the target's raw units.

    Args:
        result: :func:`kc.studies.cross_task.run`.
    """
    s = result.settings
    seed = s.seeds[0]
    rows = {}
    for direction, (src, dst) in ct.DIRECTIONS.items():
        labels = {
            DIRECTION_PARTS[0]: f"x_{dst} ({ct.TASKS[dst]})",
            DIRECTION_PARTS[1]: f"consistent with {src}",
            DIRECTION_PARTS[2]: "inconsistent x^Delta",
        }
        title = (
            f"{direction}: {s.arch} {s.layer} of {dst} (task {ct.TASKS[dst]}) rebuilt from "
            f"{src} (task {ct.TASKS[src]}), seed {seed}"
        )
        rows[direction] = (labels, title)
    tables = {direction: result.tables[seed, direction] for direction in ct.DIRECTIONS}
    return _direction_figures(result, tables, rows)


def cross_task_instability(fits: pd.DataFrame) -> Any:
    """Fig. 5's numbers: Var(x^Delta) / Var(x*) per direction, one point per seed and the mean.

    Args:
        fits: :attr:`kc.studies.cross_task.CrossTaskResult.fits`.
    """
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3.6, 3.0))
    for i, direction in enumerate(ct.DIRECTIONS):
        v = fits.loc[fits["direction"] == direction, "instability"].to_numpy(dtype=float)
        ax.scatter(
            np.full(len(v), i), v, color="grey", s=14, zorder=3, label="seeds" if i == 0 else None
        )
        ax.bar(i, v.mean(), 0.5, color="tab:blue", alpha=0.6, label="mean" if i == 0 else None)
    ax.set_xticks(
        range(len(ct.DIRECTIONS)),
        [f"{d}\n(x^Delta of {ct.DIRECTIONS[d][1]})" for d in ct.DIRECTIONS],
        fontsize=8,
    )
    ax.set_ylabel("Var(x^Delta) / Var(x*)")
    ax.set_title("inconsistent part of the target", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def orders_figure(result: of.OrdersResult) -> Any:
    """Fig. 1: the filter's x*, x(0) .. x(K) and x_Delta over the images; the shares beside.

    The maps are in x*'s normalised units (signed, a diverging scale per row, one colour bar per
    row); the rows below x* add up to it. The bar chart on the right gives each component's
    share of Var(x*) over all channels of the layer and over the shown filter.

    Args:
        result: :func:`kc.studies.orders.figure.run`.

    Returns:
        A matplotlib Figure.
    """
    s = result.settings
    fig = component_grid(
        result.shown.images, result.maps, titles=result.shown.class_names, diverging=True
    )
    ax = fig.add_axes((1.02, 0.2, 0.32, 0.6))
    layer = result.layer_shares.set_index("component")["share"]
    filt = result.filter_shares.set_index("component")["share"]
    pos = range(len(layer))
    ax.barh([p + 0.2 for p in pos], layer.to_numpy(), 0.4, label="all channels")
    ax.barh(
        [p - 0.2 for p in pos],
        filt.reindex(layer.index).to_numpy(),
        0.4,
        label=f"filter {result.channel}",
    )
    ax.set_yticks(list(pos), [n.replace("delta", "x_Delta") for n in layer.index], fontsize=7)
    ax.invert_yaxis()
    ax.axvline(0, color="black", lw=0.5)
    ax.set_xlabel("share of Var(x*)  (Cov(c, x*) / Var(x*))", fontsize=7)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)
    fig.suptitle(
        f"{s.arch} {s.layer}: filter {result.channel} of seed {s.seeds[1]} rebuilt from "
        f"seed {s.seeds[0]} (K = {s.g.order})",
        fontsize=8,
    )
    return fig
