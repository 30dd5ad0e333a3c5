"""Tables 3-4 from the rows of :func:`kc.studies.refinement.run.table_runs`: means over seed pairs,
gains over the better baseline, our numbers beside the paper's, and the claims.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from kc.studies.claims import Claim, check, no_spread, spread_check, standard_error
from kc.studies.paper import BASELINES, side_by_side

__all__ = [
    "gains",
    "paper_as_runs",
    "pivot_text",
    "refinement_claims",
    "regime_reading",
    "regimes",
    "summarize",
    "timings",
    "vs_paper",
]


def timings(runs: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Wall seconds per cell and pair: training A and B, fitting g, the fine-tunes (summed).

    Returns:
        Columns ``*keys, pair, net_a_seconds, net_b_seconds, g_seconds, ft_seconds, rows``.
    """
    by = [*keys, "pair"]
    first = runs.groupby(by, sort=False)[["net_a_seconds", "net_b_seconds", "g_seconds"]].first()
    ft = runs.groupby(by, sort=False).agg(ft_seconds=("ft_seconds", "sum"), rows=("row", "count"))
    return first.join(ft).reset_index()


def _spread(values: pd.Series) -> float:
    """Sample standard deviation over pairs (NaN for a single pair)."""
    return float(values.std(ddof=1)) if len(values) > 1 else math.nan


def summarize(runs: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Mean and spread over pairs of every row's accuracy.

    Args:
        runs: concatenated :func:`refinement_run` frames (with any extra key columns).
        keys: columns identifying a cell besides ``row`` and ``pair``, e.g. ``["column"]``
            (Table 3) or ``["setting", "column"]`` (Table 4).

    Returns:
        Columns ``*keys, row, accuracy`` (mean over pairs), ``spread`` (sample std over pairs,
        NaN for one pair), ``min``, ``max``, ``n_pairs``; rows in first-seen order.
    """
    keys = list(keys)
    missing = [c for c in [*keys, "row", "pair", "accuracy"] if c not in runs.columns]
    if missing:
        raise ValueError(f"runs lacks columns {missing}; it has {list(runs.columns)}")
    grouped = runs.groupby([*keys, "row"], sort=False)["accuracy"]
    out = grouped.agg(accuracy="mean", spread=_spread, min="min", max="max", n_pairs="count")
    return out.reset_index()


def gains(runs: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Gain of every refined row over the better of A and B, pair by pair, then over pairs.

    For each pair, ``gain = accuracy(row) - max(accuracy(Network A), accuracy(Network B))`` of
    that same pair. The gain *exceeds the spread* when its mean over pairs is larger than the
    largest seed spread (sample std over pairs) of the three rows compared; with one pair the
    spread is unknown (NaN) and ``exceeds_spread`` is False.

    Returns:
        Columns ``*keys, row, gain`` (mean), ``gain_spread`` (std over pairs), ``gain_se`` (its
        standard error, ``gain_spread / sqrt(n_pairs)``; NaN for one pair), ``best_baseline``
        (mean over pairs of the better baseline), ``spread``, ``exceeds_spread``,
        ``pairs_improved`` (pairs with gain > 0), ``n_pairs``.
    """
    keys = list(keys)
    base = runs[runs["row"].isin(BASELINES)]
    best = base.groupby([*keys, "pair"], sort=False)["accuracy"].max().rename("best_baseline")
    refined = runs[~runs["row"].isin(BASELINES)].merge(best.reset_index(), on=[*keys, "pair"])
    refined = refined.assign(gain=refined["accuracy"] - refined["best_baseline"])
    summary = summarize(runs, keys).set_index([*keys, "row"])["spread"]
    records = []
    for (*cell, row), part in refined.groupby([*keys, "row"], sort=False):
        spreads = [summary.get((*cell, r), math.nan) for r in (row, *BASELINES)]
        spread = math.nan if any(math.isnan(s) for s in spreads) else max(spreads)
        gain = float(part["gain"].mean())
        records.append(
            {
                **dict(zip(keys, cell, strict=True)),
                "row": row,
                "gain": gain,
                "gain_spread": _spread(part["gain"]),
                "gain_se": standard_error(part["gain"]),
                "best_baseline": float(part["best_baseline"].mean()),
                "spread": spread,
                "exceeds_spread": bool(not math.isnan(spread) and gain > spread),
                "pairs_improved": int((part["gain"] > 0).sum()),
                "n_pairs": len(part),
            }
        )
    return pd.DataFrame.from_records(records)


def vs_paper(summary: pd.DataFrame, paper: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Our mean accuracies beside the paper's (an outer join: cells only one side has stay NaN).

    Args:
        summary: :func:`summarize`'s frame.
        paper: :func:`kc.studies.paper.paper_table` ``(3)`` or ``(4)``.
        keys: the key columns of ``summary`` besides ``row`` that the paper also has.

    Returns:
        Columns ``*keys, row, ours, spread, n_pairs, paper, difference``.
    """
    on = [*keys, "row"]
    merged = side_by_side(summary, paper, on=on, ours_value="accuracy", how="outer")
    extra = summary[[*on, "spread", "n_pairs"]]
    merged = merged.merge(extra, on=on, how="left")
    # our cells and rows first, in our order, then what only the paper has, in its order
    cells = [tuple(c) for c in pd.concat([summary[list(keys)], paper[list(keys)]]).to_numpy()]
    cell_rank = {c: i for i, c in enumerate(dict.fromkeys(cells))}
    row_rank = {r: i for i, r in enumerate(dict.fromkeys([*summary["row"], *paper["row"]]))}
    rank = [
        (cell_rank[tuple(c)], row_rank[r])
        for c, r in zip(merged[list(keys)].to_numpy(), merged["row"], strict=True)
    ]
    merged = merged.iloc[sorted(range(len(merged)), key=rank.__getitem__)]
    columns = [*on, "ours", "spread", "n_pairs", "paper", "difference"]
    return merged[columns].reset_index(drop=True)


def pivot_text(table: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """:func:`vs_paper`'s frame as the paper lays it out: ``"ours ± spread (paper)"`` per cell.

    Returns:
        A frame of strings indexed by ``row`` (in first-seen order) with one column per cell
        (the ``keys`` values joined by ``" | "``); ``-`` marks a missing number or cell.
    """

    def num(value: float) -> str:
        return "-" if pd.isna(value) else f"{value:.2f}"

    text = [
        f"{num(o)} ± {num(s)} ({num(p)})" if not pd.isna(o) else f"- ({num(p)})"
        for o, s, p in zip(table["ours"], table["spread"], table["paper"], strict=True)
    ]
    cells = table[list(keys)].astype(str).agg(" | ".join, axis=1)
    frame = table.assign(cell=cells, text=text)
    out = frame.pivot(index="row", columns="cell", values="text").fillna("-")
    return out.loc[list(dict.fromkeys(frame["row"])), list(dict.fromkeys(cells))]


def refinement_claims(
    gain_table: pd.DataFrame,
    paper_gains: pd.DataFrame,
    *,
    keys: Sequence[str],
    row: str,
    table: int,
) -> list[Claim]:
    """Does ``row`` beat the better of A and B beyond seed noise? One claim per cell, one for all.

    A cell is reproduced when its mean gain over pairs is positive and exceeds its standard
    error over pairs (:func:`kc.studies.claims.spread_check`); a cell measured on one pair is
    "not testable: no spread", and so is the claim on every cell while any cell has one pair.

    Args:
        gain_table: :func:`gains` on our runs.
        paper_gains: :func:`gains` on the paper's table (a single "pair"), to quote its gain.
        keys: the cell's key columns.
        row: the refined row judged, e.g. ``"x0+x1+x2"``.
        table: 3 or 4.

    Returns:
        One claim per cell and one on every cell.
    """
    ours = gain_table[gain_table["row"] == row]
    if ours.empty:
        raise ValueError(
            f"no row {row!r} in the gains; rows are {sorted(gain_table['row'].unique())}"
        )
    item = f"Table {table}"
    theirs = paper_gains[paper_gains["row"] == row].set_index(list(keys))["gain"]
    out = []
    held = []
    for _, r in ours.iterrows():
        cell = tuple(r[k] for k in keys)
        where = ", ".join(str(c) for c in cell)
        paper_gain = theirs.get(cell if len(cell) > 1 else cell[0], math.nan)
        paper_text = "" if np.isnan(paper_gain) else f"gain {paper_gain:+.2f}"
        slug = "_".join(str(c) for c in cell).replace(" ", "_")
        claim = spread_check(
            f"table{table}.{slug}.gain",
            item,
            f"{where}: {row} beats the better of networks A and B",
            mean=float(r["gain"]),
            se=float(r["gain_se"]),
            n=int(r["n_pairs"]),
            improved=int(r["pairs_improved"]),
            context=f"{r['best_baseline'] + r['gain']:.2f} vs {r['best_baseline']:.2f}",
            paper=paper_text,
        )
        out.append(claim)
        held.append(claim.status == "reproduced")
    listing = ", ".join(f"{g:+.2f}" for g in ours["gain"])
    paper_improved = int((theirs > 0).sum())
    claim = f"{row} beats the better of A and B beyond seed noise in every cell"
    paper_text = f"{paper_improved}/{len(theirs)} cells improved"
    few = int(ours["n_pairs"].min())
    if few < 2:
        out.append(no_spread(f"table{table}.every_cell", item, claim,
                             f"{int((ours['n_pairs'] < 2).sum())}/{len(ours)} cells on one pair; "
                             f"mean gains {listing}", paper=paper_text))  # fmt: skip
    else:
        out.append(
            check(
                f"table{table}.every_cell",
                item,
                claim,
                all(held),
                evidence=f"{sum(held)}/{len(ours)} cells with a mean gain above its standard "
                f"error over {few}+ pairs; mean gains {listing}",
                paper=paper_text,
                numbers={"cells_held": sum(held), "cells": len(ours), "pairs": few},
            )
        )
    return out


def paper_as_runs(paper: pd.DataFrame) -> pd.DataFrame:
    """The paper's table in the shape of our runs (one pseudo-pair), for :func:`gains`."""
    return paper.rename(columns={"value": "accuracy"}).assign(pair="paper")


def regimes(
    gain_tables: Mapping[str, pd.DataFrame], *, keys: Sequence[str], row: str
) -> pd.DataFrame:
    """Gains of ``row`` in two or more regimes of the networks, cell by cell.

    Args:
        gain_tables: regime name (e.g. ``"current"``, ``"overfit"``) -> :func:`gains` of the
            same cells with that regime's networks.
        keys: the cell's key columns. row: the refined row compared, e.g. ``"x0+x1+x2"``.

    Returns:
        Columns ``*keys, regime, gain, gain_se, best_baseline, pairs_improved, n_pairs, holds``
        (``holds``: mean gain positive and above its standard error, the rule of the claims;
        False with one pair), in the order of ``gain_tables``.
    """
    keys = list(keys)
    if len(gain_tables) < 2:
        raise ValueError(f"need two or more regimes, got {list(gain_tables)}")
    columns = [*keys, "gain", "gain_se", "best_baseline", "pairs_improved", "n_pairs"]
    parts = []
    for name, table in gain_tables.items():
        part = table[table["row"] == row]
        if part.empty:
            rows = sorted(table["row"].unique())
            raise ValueError(f"no row {row!r} in the gains of regime {name!r}; rows are {rows}")
        holds = (part["gain"] > 0) & (part["gain"] > part["gain_se"]) & (part["n_pairs"] > 1)
        parts.append(part[columns].assign(regime=name, holds=holds.to_numpy()))
    cells = [set(map(tuple, p[keys].to_numpy())) for p in parts]
    if any(c != cells[0] for c in cells[1:]):
        raise ValueError(f"the regimes do not cover the same cells: {[sorted(c) for c in cells]}")
    both = pd.concat(parts, ignore_index=True)
    return both[[*keys, "regime", *columns[len(keys):], "holds"]]


def regime_reading(table: pd.DataFrame, keys: Sequence[str]) -> str:
    """One computed sentence on :func:`regimes`' first two regimes: in how many cells the gain
    holds in each, and how the mean gain moves from the first to the second."""
    keys = list(keys)
    names = list(dict.fromkeys(table["regime"]))[:2]
    first, second = (table[table["regime"] == n].set_index(keys) for n in names)
    second = second.loc[first.index]
    change = float((second["gain"] - first["gain"]).mean())
    n = len(first)
    held = [int(t["holds"].sum()) for t in (first, second)]
    if held[1] > held[0]:
        reading = f"more cells hold in the {names[1]} regime"
    elif held[1] == held[0]:
        reading = "the regime does not change how many cells hold"
    else:
        reading = f"fewer cells hold in the {names[1]} regime"
    return (f"the gain holds beyond its standard error in {held[0]}/{n} cells in the {names[0]} "
            f"regime and in {held[1]}/{n} in the {names[1]} regime; the mean gain moves by "
            f"{change:+.2f} points from the first to the second: {reading}.")  # fmt: skip
