"""Figures of the table notebooks: data in, matplotlib Figure out (nothing is written to disk).

Each function draws one figure of one notebook:
Table 1 (:func:`plot_table1`, :func:`plot_convergence`), Table 2 (:func:`plot_table2`), Tables 3-4
(:func:`plot_refinement`), Sec. 4.1 (:func:`component_figure`), the toy notebook
(:func:`plot_toy_cases`, :func:`plot_toy_components`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from kc.core.measure import ConsistencyResult
from kc.core.normalize import Normalizer
from kc.studies.paper import SETTINGS

__all__ = [
    "channel_maps",
    "component_figure",
    "plot_convergence",
    "plot_refinement",
    "plot_table1",
    "plot_table2",
    "plot_toy_cases",
    "plot_toy_components",
]


def plot_table1(ours: pd.DataFrame, paper: pd.DataFrame) -> Any:
    """Bars of our instability (with min-max range) next to the paper's, per layer and case.

    Args:
        ours: :func:`kc.studies.instability.run.instability_table`.
        paper: :func:`kc.studies.paper.paper_table` (1).

    Returns:
        The matplotlib figure.
    """
    import matplotlib.pyplot as plt

    settings = [s for s in SETTINGS if s in set(ours["setting"])]
    fig, axes = plt.subplots(1, len(settings), figsize=(5.5 * len(settings), 3.8), squeeze=False)
    for ax, setting in zip(axes[0], settings, strict=True):
        mine = ours[ours["setting"] == setting]
        theirs = paper[paper["setting"] == setting].set_index("column")["value"]
        x = np.arange(len(mine))
        err = np.vstack([mine["instability"] - mine["min"], mine["max"] - mine["instability"]])
        ax.bar(x - 0.2, mine["instability"], 0.4, yerr=err, capsize=3, label="ours")
        ax.bar(x + 0.2, theirs.reindex(mine["column"]).to_numpy(), 0.4, label="paper")
        ax.set_xticks(x, [c.replace(" @ ", "\n") for c in mine["column"]], fontsize=8)
        ax.set_title(f"Case {SETTINGS.index(setting) + 1}: {setting}")
        ax.set_ylabel("Var(x_Delta) / Var(x*)")
        ax.legend()
    fig.tight_layout()
    return fig


def plot_convergence(budgets: pd.DataFrame, stops: pd.DataFrame, history: pd.DataFrame) -> Any:
    """Is Table 1's g converged? Held-out instability against g's step budget, per layer.

    Left: one line per layer of the instability of g fitted with each fixed budget (the
    plateau rule off), log steps; a star marks the profile's own fit (the plateau rule on) at
    the steps it took. Right: the monitored loss (Eq. 2) of the profile's fits at each check.

    Args:
        budgets: :func:`kc.studies.instability.convergence.budget_table`.
        stops, history: :func:`kc.studies.instability.convergence.profile_fits`.

    Returns:
        The matplotlib figure.
    """
    import matplotlib.pyplot as plt

    fig, (ax, ax_loss) = plt.subplots(
        1, 2, figsize=(10.0, 3.8), gridspec_kw={"width_ratios": [2, 1]}
    )
    colors = plt.get_cmap("tab10")
    for i, column in enumerate(dict.fromkeys(budgets["column"])):
        color = colors(i % 10)
        curve = budgets[budgets["column"] == column].sort_values("steps")
        ax.plot(curve["steps"], curve["instability"], "o-", color=color, label=column)
        stop = stops[stops["column"] == column]
        ax.plot(stop["steps"], stop["instability"], "*", color=color, markersize=14,
                markeredgecolor="black")  # fmt: skip
        hist = history[history["column"] == column]
        hist = hist[hist["step"] > 0]  # log axis; step 0 is the warm start, if any
        ax_loss.plot(hist["step"], hist["loss"], "-", color=color, label=column)
    ax.plot([], [], "*", color="grey", markersize=12, markeredgecolor="black",
            label="profile's fit (plateau rule)")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("g's optimiser steps (plateau rule off)")
    ax.set_ylabel("held-out Var(x_Delta) / Var(x*)")
    ax.set_title("Table 1's instability against g's budget (first Case 1 pair)")
    ax.legend(fontsize=7)
    ax_loss.set_xscale("log")
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("monitored loss (Eq. 2)")
    ax_loss.set_title("the profile's fits", fontsize=9)
    fig.tight_layout()
    return fig


def plot_table2(ours: pd.DataFrame, paper: pd.DataFrame, order: int) -> Any:
    """Stacked bars of Var(x0..xK), Var(xDelta) as fractions of Var(x*), ours vs the paper's.

    Args:
        ours: :func:`kc.studies.orders.run.order_variances` rows with ``units == "fraction"``.
        paper: :func:`kc.studies.orders.run.paper_fractions`.
        order: K.
    """
    import matplotlib.pyplot as plt

    names = [f"Var(x{k})" for k in range(order + 1)] + ["Var(xDelta)"]
    columns = list(dict.fromkeys(ours["column"]))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(columns)), 3.8))
    x = np.arange(len(columns))
    for shift, frame, label, hatch in ((-0.2, ours, "ours", ""), (0.2, paper, "paper", "//")):
        wide = frame.pivot_table(index="column", columns="row", values="value").reindex(columns)
        bottom = np.zeros(len(columns))
        for k, name in enumerate(names):
            vals = wide[name].to_numpy() if name in wide else np.full(len(columns), np.nan)
            ax.bar(
                x + shift,
                vals,
                0.38,
                bottom=bottom,
                color=f"C{k}",
                hatch=hatch,
                edgecolor="white",
                label=f"{name} ({label})" if shift < 0 or k == 0 else None,
            )
            bottom = bottom + np.nan_to_num(vals)
    ax.set_xticks(x, [c.replace(" @ ", "\n") for c in columns], fontsize=8)
    ax.set_ylabel("fraction of Var(x*)")
    ax.set_title("Table 2 as fractions of Var(x*): ours (left bars) vs paper (hatched)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def plot_refinement(summary: pd.DataFrame, keys: Sequence[str], title: str) -> Any:
    """Tables 3-4: one group of bars per cell (``keys``), one bar per row, error bars = spread.

    Args:
        summary: :func:`kc.studies.refinement.tables.summarize`'s frame.
        keys: its cell columns, e.g. ``["column"]``.
        title: the axes' title.

    Returns:
        The matplotlib figure.
    """
    import matplotlib.pyplot as plt

    keys = list(keys)
    cells = summary[keys].astype(str).agg(" | ".join, axis=1)
    frame = summary.assign(cell=cells)
    means = frame.pivot_table(index="cell", columns="row", values="accuracy", sort=False)
    errs = frame.pivot_table(index="cell", columns="row", values="spread", sort=False, dropna=False)
    rows = list(dict.fromkeys(frame["row"]))
    means, errs = means[rows], errs.reindex(columns=rows)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.4 * len(means)), 3.6))
    means.plot.bar(ax=ax, yerr=errs.fillna(0.0), capsize=2, width=0.8, colormap="viridis")
    low = float(np.nanmin(means.to_numpy()))
    ax.set_ylim(max(0.0, low - 10.0), min(100.0, float(np.nanmax(means.to_numpy())) + 3.0))
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_xlabel("")
    ax.set_title(title)
    ax.legend(bbox_to_anchor=(1, 1), fontsize=8)
    plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
    fig.tight_layout()
    return fig


def channel_maps(t: Tensor) -> Tensor:
    """Mean absolute value over channels: (N, C, H, W) -> (N, H, W)."""
    if t.dim() != 4:
        raise ValueError(f"expected (N, C, H, W), got {tuple(t.shape)}")
    return t.abs().mean(1)


def component_figure(
    images: Tensor,
    directions: Sequence[tuple[str, ConsistencyResult]],
    *,
    to_raw: Sequence[Normalizer | None] | None = None,
):
    """Fig. 3 analogue: raw feature, reconstructed part and residual for a few images.

    Args:
        images: (n, C, H, W) input images (the first channel is shown).
        directions: ``(title, result)`` pairs, e.g. ``("blind spots: x_A -> x_B", res_ab)``;
            each result's ``target``, ``consistent`` and ``components["delta"]`` must hold at
            least n images, in the order of ``images``.
        to_raw: per direction the target's normaliser (``g.normalizer("x_star")``), to show
            the maps in the target network's raw units; None (for all, or for one direction)
            keeps normalised units.

    Returns:
        A matplotlib Figure with one row per image and ``1 + 3 * len(directions)`` panels per
        row, channel-averaged |.| maps; the three panels of a direction share a colour scale.
    """
    import matplotlib.pyplot as plt

    n = images.shape[0]
    norms = list(to_raw) if to_raw is not None else [None] * len(directions)
    if len(norms) != len(directions):
        raise ValueError(f"got {len(norms)} to_raw normalisers for {len(directions)} directions")
    identity = Normalizer(torch.tensor(0.0), torch.tensor(1.0), "global")
    norms = [identity if nm is None else nm for nm in norms]
    cols = 1 + 3 * len(directions)
    fig, axes = plt.subplots(n, cols, figsize=(1.6 * cols, 1.7 * n), squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(images[i, 0].numpy(), cmap="gray")
        for d, ((title, res), norm) in enumerate(zip(directions, norms, strict=True)):
            panels = [
                ("raw feature", norm.inverse(res.target[i : i + 1])),
                ("reconstructed g(x)", norm.inverse(res.consistent[i : i + 1])),
                ("residual x^Delta", res.components["delta"][i : i + 1] * norm.std),
            ]
            maps = [channel_maps(t)[0] for _, t in panels]
            vmax = max(float(m.max()) for m in maps) or 1.0
            for j, ((label, _), m) in enumerate(zip(panels, maps, strict=True)):
                ax = axes[i, 1 + 3 * d + j]
                ax.imshow(m.numpy(), cmap="viridis", vmin=0.0, vmax=vmax)
                if i == 0:
                    ax.set_title(f"{title}\n{label}" if j == 0 else label, fontsize=7, loc="left")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_title("image", fontsize=7)
    fig.tight_layout()
    return fig


def plot_toy_cases(table: pd.DataFrame, order: int) -> Any:
    """Stacked bars of Var(x0..xK), Var(delta) per planted case of the toy notebook.

    Args:
        table: one row per case with columns ``Var(x0) .. Var(xK), Var(delta)``.
        order: K.
    """
    import matplotlib.pyplot as plt

    orders = [f"Var(x{k})" for k in range(order + 1)] + ["Var(delta)"]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    table[orders].plot.bar(stacked=True, ax=ax, colormap="viridis", width=0.7)
    ax.set_ylabel("variance (x* normalised)")
    ax.set_title("Where the variance of x* goes, per planted case (held-out samples)")
    ax.legend([o[4:-1] for o in orders], bbox_to_anchor=(1, 1))
    plt.setp(ax.get_xticklabels(), rotation=0)
    fig.tight_layout()
    return fig


def plot_toy_components(
    maps: Mapping[str, Tensor], samples: Sequence[int] = (0, 1), title: str = ""
) -> Any:
    """Channel 0 of a few samples of x* and of each component, one panel per component.

    Args:
        maps: ``{name: (N, C, H, W)}``, e.g. ``{"target": x*, "x0": ..., "delta": ...}``.
        samples: the samples shown (one row each).
        title: the figure's title.
    """
    import matplotlib.pyplot as plt

    names = list(maps)
    fig, axes = plt.subplots(
        len(samples), len(names), figsize=(2.1 * len(names), 2.1 * len(samples)), squeeze=False
    )
    for row, sample in enumerate(samples):
        for col, name in enumerate(names):
            ax = axes[row, col]
            ax.imshow(maps[name][sample, 0].numpy(), cmap="RdBu_r", vmin=-2.5, vmax=2.5)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(name)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
