"""Fig. 4's figures: compression (Sec. 4.4, left) and born-again networks (Sec. 4.5, right).

Curves over seeds (:func:`seed_curves`) and grids of x-Delta over test images, drawn from the
results of :mod:`kc.studies.fig4.compression` and :mod:`kc.studies.fig4.born_again`: data in,
matplotlib Figure out.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from kc.engine.overlay import component_grid
from kc.studies.fig4 import born_again as ba
from kc.studies.fig4 import compression as co
from kc.studies.fig4.common import spread

__all__ = [
    "plot_blind_spots",
    "plot_discarded",
    "plot_discarding",
    "plot_generations",
    "seed_curves",
]


def seed_curves(ax: Any, frame: pd.DataFrame, x: str, y: str, *, label: str = "mean") -> None:
    """Draw one faint line per seed and the mean over seeds with a min-max band on ``ax``.

    Args:
        frame: rows with columns ``seed``, ``x`` and ``y``.
    """
    for _, rows in frame.groupby("seed"):
        rows = rows.sort_values(x)
        ax.plot(rows[x], rows[y], "o-", color="grey", alpha=0.35, lw=1, ms=3)
    stat = spread(frame, x, y)
    ax.plot(stat[x], stat["mean"], "o-", color="C0", lw=2, label=f"{label} over seeds")
    ax.fill_between(stat[x], stat["min"], stat["max"], color="C0", alpha=0.2, label="min-max")
    ax.set_xlabel(x)
    ax.set_ylabel(y)


def plot_discarding(runs: pd.DataFrame) -> Any:
    """Fig. 4 (left), curves: discarded knowledge against fraction removed and accuracy drop.

    Three panels, each with one grey line per seed and the mean over seeds with its min-max band:
    raw Var(x_Delta) (the paper's quantity, units of the feature) and Var(x_Delta)/Var(x*)
    against the fraction of weights removed, and Var(x_Delta)/Var(x*) against the accuracy drop
    (points per run).

    Args:
        runs: :attr:`kc.studies.fig4.compression.CompressionResult.runs`.

    Returns:
        The matplotlib figure.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    frame = runs.rename(columns={"amount": "fraction removed"})
    seed_curves(axes[0], frame, "fraction removed", "Var(xDelta) raw")
    axes[0].set_ylabel("Var(x_Delta) (raw units)")
    seed_curves(axes[1], frame, "fraction removed", "instability")
    axes[1].set_ylabel("Var(x_Delta) / Var(x*)")
    for seed, rows in runs.groupby("seed"):
        rows = rows.sort_values("accuracy_drop")
        axes[2].plot(rows["accuracy_drop"], rows["instability"], "o", alpha=0.8,
                     label=f"seed {seed}")  # fmt: skip
        for a, x, y in zip(rows["amount"], rows["accuracy_drop"], rows["instability"], strict=True):
            axes[2].annotate(co.pct(a), (x, y), fontsize=7, xytext=(3, 3),
                             textcoords="offset points")  # fmt: skip
    axes[2].set_xlabel("accuracy drop (percentage points)")
    axes[2].set_ylabel("Var(x_Delta) / Var(x*)")
    for ax in axes:
        ax.legend(fontsize=7)
    axes[0].set_title("discarded knowledge vs. pruning", fontsize=9)
    axes[1].set_title("relative to the original's feature", fontsize=9)
    axes[2].set_title("vs. accuracy drop (one point per run)", fontsize=9)
    fig.tight_layout()
    return fig


def plot_discarded(result: co.CompressionResult) -> Any:
    """Fig. 4 (left), images: the original's feature and what pruning discarded, over images.

    Rows (:func:`kc.engine.overlay.component_grid`, mean |.| over channels, one colour scale per row):
    the original's x*, g(x) at the largest rate, then x_Delta at every rate (seed ``seeds[0]``).
    """
    return component_grid(result.images, result.maps, titles=result.image_names)


def plot_generations(networks: pd.DataFrame, fits: pd.DataFrame) -> Any:
    """Fig. 4 (right), curves: blind spots per earlier generation, and accuracy per generation.

    Panels (grey: one line per seed; blue: mean over seeds with its min-max band):
    Var(x_Delta)/Var(x*) and raw Var(x_Delta) against the generation of x, each with the
    independent network's mean as a dashed line; the accuracy of every generation.

    Args:
        networks, fits: :attr:`kc.studies.fig4.born_again.BornAgainResult.networks`, ``.fits``.

    Returns:
        The matplotlib figure.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    lineage = fits[fits["source"] != ba.INDEPENDENT]
    independent = fits[fits["source"] == ba.INDEPENDENT]
    newest = int(networks["generation"].max())
    for ax, value, label in (
        (axes[0], "instability", "Var(x_Delta) / Var(x*)"),
        (axes[1], "Var(xDelta) raw", "Var(x_Delta) (raw units)"),
    ):
        seed_curves(ax, lineage, "generation", value)
        if len(independent):
            ax.axhline(independent[value].mean(), color="C3", ls="--", label="independent net")
        ax.set_xlabel(f"generation of x (x* = generation {newest})")
        ax.set_ylabel(label)
        ax.set_xticks(sorted(lineage["generation"].unique()))
    seed_curves(axes[2], networks, "generation", "accuracy")
    axes[2].set_ylabel("top-1 accuracy (%)")
    axes[2].set_xticks(sorted(networks["generation"].unique()))
    axes[0].set_title("blind spots of each generation", fontsize=9)
    axes[1].set_title("the same in raw units", fontsize=9)
    axes[2].set_title("accuracy (0 = teacher)", fontsize=9)
    for ax in axes:
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_blind_spots(result: ba.BornAgainResult) -> Any:
    """Fig. 4 (right), images: the newest generation's feature and each earlier one's blind spots.

    Rows (:func:`kc.engine.overlay.component_grid`, mean |.| over channels, one colour scale per row):
    the newest's x*, then x_Delta from each earlier generation (seed ``seeds[0]``).
    """
    return component_grid(result.images, result.maps, titles=result.image_names)
