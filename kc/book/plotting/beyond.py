"""Figures of the beyond-the-paper notebooks: baselines, grounding and planted relations.

Data in (the tables of :mod:`kc.studies.baselines`, :mod:`kc.studies.grounding.run` and
:mod:`kc.studies.planted.run`), matplotlib Figure out.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from kc.studies import baselines as bl
from kc.studies.grounding import run as gr
from kc.studies.planted import run as ps

__all__ = [
    "plot_baselines",
    "plot_grounding",
    "plot_planted_baselines",
    "plot_planted_case",
    "plot_recovery",
]


def plot_baselines(table: pd.DataFrame, corr: pd.DataFrame) -> Any:
    """Left: every measure per layer/pair row (oriented: higher = more similar; Procrustes
    negated). Right: Spearman correlations of the measures across the rows.

    Args:
        table: :attr:`kc.studies.baselines.Result.table`.
        corr: :func:`kc.studies.baselines.agreement` of it.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    measures = list(corr.index)
    vals = bl.oriented(table, measures)
    vals.index = [
        f"{r.arch} {r.layer} {'C1' if r.setting == bl.CASE1 else 'C2'} {i}"
        for i, r in enumerate(table.itertuples())
    ]
    fig, axes = plt.subplots(1, 2, figsize=(13, 0.35 * len(vals) + 2.5),
                             gridspec_kw={"width_ratios": [1.3, 1]})  # fmt: skip
    sns.heatmap(
        vals,
        annot=len(vals) <= 20,
        fmt=".2f",
        cmap="viridis",
        ax=axes[0],
        cbar_kws={"label": "value (Procrustes negated)"},
        annot_kws={"size": 7},
    )
    axes[0].set_title("measures per Table 1 pair and layer")
    sns.heatmap(corr, annot=True, fmt=".2f", vmin=-1, vmax=1, cmap="RdBu_r", ax=axes[1],
                annot_kws={"size": 7})  # fmt: skip
    axes[1].set_title("Spearman correlation across the rows")
    fig.tight_layout()
    return fig


def plot_planted_case(planted: pd.DataFrame) -> Any:
    """Each measure's :func:`kc.studies.baselines.detection` score on the nonlinear and the linear plant."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    det = bl.detection(planted).melt(id_vars="measure", value_vars=["nonlinear", "linear"],
                                  var_name="plant", value_name="score")  # fmt: skip
    fig, ax = plt.subplots(figsize=(8, 3.6))
    sns.barplot(det, x="measure", y="score", hue="plant", ax=ax)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_ylabel("0 = as unrelated, 1 = as identical")
    ax.set_title("planted relations: which measure sees them")
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    return fig


def plot_grounding(table: pd.DataFrame) -> Any:
    """One panel per score: each measure's value, knowledge consistency highlighted."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    names = [s for s in gr.SCORES if table[s].notna().any()]
    fig, axes = plt.subplots(1, max(1, len(names)), figsize=(2.6 * max(1, len(names)), 3.8),
                             sharey=True, squeeze=False)  # fmt: skip
    palette = {m: ("tab:red" if m in ("kc_consistency", "share_x0") else "tab:blue")
               for m in table["measure"]}  # fmt: skip
    for ax, score in zip(axes[0], names, strict=False):
        sns.barplot(table, y="measure", x=score, hue="measure", palette=palette, ax=ax,
                    legend=False)  # fmt: skip
        lower = gr.SCORES[score][1]
        ax.set_title(f"{score}\n({'lower' if lower else 'higher'} is better)", fontsize=9)
        ax.set_xlabel("")
    fig.tight_layout()
    return fig


def plot_recovery(table: pd.DataFrame) -> Any:
    """Recovered against planted share, one panel per part; colour = depth, marker = the
    varied factor; the diagonal is perfect recovery."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2), sharex=True, sharey=True)
    for ax, (part, (planted, got, _)) in zip(axes, ps.PART_COLUMNS.items(), strict=True):
        sns.scatterplot(table, x=planted, y=got, hue="depth", style="varied", palette="viridis",
                        s=60, ax=ax, legend=part == "noise")  # fmt: skip
        ax.plot([0, 1], [0, 1], color="k", lw=0.8, ls="--")
        ax.set_title(
            {
                "linear": "linear part vs Var(x(0))",
                "nonlinear": "nonlinear part vs orders >= 1",
                "noise": "noise vs instability",
            }[part]
        )
        ax.set_xlabel(f"planted {part} share")
        ax.set_ylabel("recovered share")
    if axes[-1].get_legend() is not None:
        sns.move_legend(axes[-1], "upper left", bbox_to_anchor=(1.02, 1), fontsize=8)
    fig.tight_layout()
    return fig


def plot_planted_baselines(long: pd.DataFrame) -> Any:
    """Left: each baseline and 1 - instability on the base cases against the planted depth.
    Right: how much each drops from the lowest to the highest noise share, per depth."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    base = long[long["varied"] == "base"]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    sns.pointplot(base, x="depth", y="value", hue="measure", ax=axes[0], dodge=0.3)
    axes[0].set_title(f"base case (noise {ps.BASE_NOISE}): measure by planted depth")
    axes[0].set_ylabel("value (Procrustes: distance)")
    axes[0].legend(fontsize=7)
    if long["noise"].nunique() >= 2:
        lo, hi = long["noise"].min(), long["noise"].max()
        sns.heatmap(ps.noise_drop(long), annot=True, fmt=".2f", cmap="RdBu_r", center=0,
                    ax=axes[1])  # fmt: skip
        axes[1].set_title(f"drop from noise {lo:g} to {hi:g}")
    else:
        axes[1].set_axis_off()
    fig.tight_layout()
    return fig
