"""Table 2 (Sec. 4.2): the variances of the orders x(0), ..., x(K) and of x_Delta.

``table2_order_variances`` reads the Case 1 fits of :mod:`kc.studies.instability` (the same
cache keys as Table 1) and summarises them here: :func:`order_variances` per layer in three
units, :func:`order_claims` for the paper's claims, and :func:`paper_units_check`, which
infers from the paper's own Tables 1 and 2 that its Table 2 is in raw feature units.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from kc.studies.instability import CASE1


def order_rows(order: int) -> list[str]:
    """``["Var(x0)", ..., "Var(xK)", "Var(xDelta)"]``, the rows of Table 2."""
    if order < 0:
        raise ValueError(f"order must be >= 0, got {order}")
    return [f"Var(x{k})" for k in range(order + 1)] + ["Var(xDelta)"]


def order_variances(fit_rows: pd.DataFrame, order: int) -> pd.DataFrame:
    """Table 2 from the Case 1 rows of :func:`fits`: mean variances per layer and order.

    Three units: ``normalised`` (x and x* at zero mean and unit variance on the fitting images,
    footnote 2), ``raw`` (the raw units of x*), and ``fraction`` (divided by Var(x*) of the same
    fit; the same in both units because the normalisation is one global scale).

    Returns:
        Long format: ``arch, layer, column, units, row, value, std, n_fits`` with ``row`` in
        :func:`order_rows` plus ``Var(x*)``.
    """
    case1 = fit_rows[fit_rows["setting"] == CASE1]
    if case1.empty:
        raise ValueError("order_variances needs Case 1 fits; got none")
    names = [*order_rows(order), "Var(x*)"]
    missing = [n for n in names if n not in case1.columns]
    if missing:
        raise ValueError(f"fits lack columns {missing} (was ORDER={order} used for them?)")
    rows = []
    for column, group in case1.groupby("column", sort=False):
        for units in ("normalised", "raw", "fraction"):
            for name in names:
                if units == "fraction":
                    series = group[name] / group["Var(x*)"]
                else:
                    series = group[name if units == "normalised" else f"{name} raw"]
                rows.append(
                    {
                        "arch": group["arch"].iloc[0],
                        "layer": group["layer"].iloc[0],
                        "column": column,
                        "units": units,
                        "row": name,
                        "value": float(series.mean()),
                        "std": float(series.std(ddof=0)),
                        "n_fits": len(series),
                    }
                )
    return pd.DataFrame(rows)


def order_claims(table: pd.DataFrame, order: int, value: str = "value") -> pd.DataFrame:
    """Check Table 2's claims on a long table with ``column, row`` and ``value`` (one unit).

    (a) Var(x0) > Var(x1) > ... > Var(xK) in every layer; (b) the 0-order component holds most
    of the variance, Var(x0) > Var(x1) + ... + Var(xK) + Var(xDelta), in every layer.

    Returns:
        Columns ``claim, holds, evidence``; the evidence names the layers where a claim fails.
    """
    orders = order_rows(order)[:-1]
    wide = table.pivot_table(index="column", columns="row", values=value, sort=False)
    decreasing = {
        c: bool(all(x > y for x, y in itertools.pairwise(wide.loc[c, orders]))) for c in wide.index
    }
    rest = wide[orders[1:] + ["Var(xDelta)"]].sum(axis=1)
    share = wide["Var(x0)"] / (wide["Var(x0)"] + rest)
    majority = {c: bool(share[c] > 0.5) for c in wide.index}

    def evidence(ok: Mapping[str, bool], detail: str) -> str:
        failed = [c for c, v in ok.items() if not v]
        return (f"fails for {', '.join(failed)}; " if failed else "every layer; ") + detail

    seqs = "; ".join(
        f"{c}: " + " > ".join(f"{v:.3g}" for v in wide.loc[c, orders]) for c in wide.index
    )
    shares = ", ".join(f"{c} {share[c]:.2f}" for c in wide.index)
    return pd.DataFrame(
        [
            (
                f"Var(x0) > ... > Var(x{order}) in every layer",
                all(decreasing.values()),
                evidence(decreasing, seqs),
            ),
            (
                "the 0-order component holds most of the variance",
                all(majority.values()),
                evidence(majority, f"Var(x0) / (sum of all rows): {shares}"),
            ),
        ],
        columns=["claim", "holds", "evidence"],
    )


def paper_units_check(table1: pd.DataFrame, table2: pd.DataFrame) -> pd.DataFrame:
    """What units are the paper's Table 2 in? Computed from its own numbers.

    If the components are nearly uncorrelated, Var(x*) ~ Var(x0) + ... + Var(xDelta); and by
    Table 1, Var(x*) = Var(xDelta) / instability (Case 1). With unit-variance features (footnote
    2) both would be ~1.

    Args:
        table1, table2: :func:`kc.paper.paper_table` of tables 1 and 2.

    Returns:
        Columns ``column, sum_of_rows, instability, implied_var_x_star, ratio`` where
        ``implied_var_x_star = Var(xDelta) / instability`` and ``ratio`` = sum / implied.
    """
    t1 = table1[table1["setting"] == CASE1].set_index("column")["value"]
    wide = table2.pivot_table(index="column", columns="row", values="value", sort=False)
    out = pd.DataFrame(
        {
            "column": wide.index,
            "sum_of_rows": wide.sum(axis=1).to_numpy(),
            "instability": t1.reindex(wide.index).to_numpy(),
        }
    )
    out["implied_var_x_star"] = wide["Var(xDelta)"].to_numpy() / out["instability"]
    out["ratio"] = out["sum_of_rows"] / out["implied_var_x_star"]
    return out


def paper_fractions(table2: pd.DataFrame, units: pd.DataFrame) -> pd.DataFrame:
    """The paper's Table 2 divided by the implied Var(x*) of :func:`paper_units_check`.

    Returns:
        ``table2``'s rows with ``value`` replaced by the fraction (comparable with our
        ``fraction`` units).
    """
    implied = units.set_index("column")["implied_var_x_star"]
    out = table2.copy()
    out["value"] = out["value"] / out["column"].map(implied)
    return out


def magnitude_claim(variances: pd.DataFrame, value: str = "value", factor: float = 10.0):
    """Table 2's caption: features of different layers have very different variance magnitudes.

    Args:
        variances: rows ``column, value`` holding Var(x*) of each layer in raw units (ours:
            :func:`order_variances` with ``units == "raw"`` and ``row == "Var(x*)"``; the
            paper: ``implied_var_x_star`` of :func:`paper_units_check`).
        value: the value column.
        factor: the largest Var(x*) must exceed the smallest by this factor.

    Returns:
        ``(claim, holds, evidence)``.
    """
    v = variances.set_index("column")[value].astype(float)
    if v.empty or (v <= 0).any():
        raise ValueError(f"need positive variances, got {v.to_dict()}")
    ratio = float(v.max() / v.min())
    evidence = (
        f"Var(x*) from {v.min():.3g} ({v.idxmin()}) to {v.max():.3g} ({v.idxmax()}), x{ratio:.3g}"
    )
    return f"Var(x*) differs across layers by more than x{factor:g}", bool(ratio > factor), evidence


def table2_vs_paper(ours: pd.DataFrame, paper: pd.DataFrame, units: pd.DataFrame) -> pd.DataFrame:
    """Our Table 2 beside the paper's, in raw units and as fractions of Var(x*).

    Args:
        ours: :func:`order_variances`.
        paper: :func:`kc.paper.paper_table` (2).
        units: :func:`paper_units_check`.

    Returns:
        Columns ``units, row, column, ours, paper, difference``. Raw values are not comparable
        across implementations (different networks, images and scales); fractions are.
    """
    from kc.report import side_by_side

    parts = []
    for name, theirs in (("raw", paper), ("fraction", paper_fractions(paper, units))):
        mine = ours[(ours["units"] == name) & (ours["row"] != "Var(x*)")]
        both = side_by_side(mine, theirs, on=["row", "column"], how="left")
        both.insert(0, "units", name)
        parts.append(both)
    return pd.concat(parts, ignore_index=True)


# ---------------------------------------------------------------------------- figure


def plot_table2(ours: pd.DataFrame, paper: pd.DataFrame, order: int) -> Any:
    """Stacked bars of Var(x0..xK), Var(xDelta) as fractions of Var(x*), ours vs the paper's.

    Args:
        ours: :func:`order_variances` rows with ``units == "fraction"``.
        paper: :func:`paper_fractions`.
        order: K.
    """
    import matplotlib.pyplot as plt

    names = order_rows(order)
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
