"""Tables 3-4 from the rows of :func:`kc.studies.refinement.run.table_runs`: means over seed pairs,
gains over the better baseline, our numbers beside the paper's, and the claims.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from kc.studies.claims import Claim, check, untestable
from kc.studies.paper import BASELINES, side_by_side

__all__ = [
    "gains",
    "paper_as_runs",
    "pivot_text",
    "refinement_claims",
    "scale_probe",
    "scale_probe_reading",
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
        Columns ``*keys, row, gain`` (mean), ``gain_spread`` (std over pairs), ``best_baseline``
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
    """Does ``row`` beat the better of A and B, as in the paper? One claim per cell and more.

    Args:
        gain_table: :func:`gains` on our runs.
        paper_gains: :func:`gains` on the paper's table (a single "pair"), to quote its gain.
        keys: the cell's key columns.
        row: the refined row judged, e.g. ``"x0+x1+x2"``.
        table: 3 or 4.

    Returns:
        One claim per cell (reproduced when the mean gain over pairs is positive; the evidence
        says whether it also exceeds the seed spread), one for all cells together, and one on
        the gain exceeding the seed spread in most cells, "not testable" with fewer than two
        seed pairs.
    """
    ours = gain_table[gain_table["row"] == row]
    if ours.empty:
        raise ValueError(
            f"no row {row!r} in the gains; rows are {sorted(gain_table['row'].unique())}"
        )
    item = f"Table {table}"
    theirs = paper_gains[paper_gains["row"] == row].set_index(list(keys))["gain"]
    out = []
    for _, r in ours.iterrows():
        cell = tuple(r[k] for k in keys)
        where = ", ".join(str(c) for c in cell)
        paper_gain = theirs.get(cell if len(cell) > 1 else cell[0], math.nan)
        paper_text = "" if np.isnan(paper_gain) else f"gain {paper_gain:+.2f}"
        if r["n_pairs"] > 1:
            beyond = "a positive gain above" if r["exceeds_spread"] else "no positive gain above"
            noise = (
                f"{beyond} the spread {r['spread']:.2f}, improved in "
                f"{r['pairs_improved']}/{r['n_pairs']} pairs"
            )
        else:
            noise = "one pair, no spread"
        slug = "_".join(str(c) for c in cell).replace(" ", "_")
        out.append(
            check(
                f"table{table}.{slug}.gain",
                item,
                f"{where}: {row} beats the better of networks A and B",
                bool(r["gain"] > 0),
                evidence=f"{r['best_baseline'] + r['gain']:.2f} vs {r['best_baseline']:.2f}, "
                f"gain {r['gain']:+.2f} ({noise})",
                paper=paper_text,
                numbers={
                    "gain": r["gain"],
                    "best_baseline": r["best_baseline"],
                    "spread": r["spread"],
                    "n_pairs": r["n_pairs"],
                },
            )  # fmt: skip
        )
    improved = int((ours["gain"] > 0).sum())
    listing = ", ".join(f"{g:+.2f}" for g in ours["gain"])
    paper_improved = int((theirs > 0).sum())
    out.append(
        check(
            f"table{table}.every_cell",
            item,
            f"{row} beats the better of A and B in every cell",
            improved == len(ours),
            evidence=f"{improved}/{len(ours)} cells improved; gains {listing}",
            paper=f"{paper_improved}/{len(theirs)} cells improved",
            numbers={"cells_improved": improved, "cells": len(ours)},
        )
    )
    claim = f"the gain of {row} exceeds the seed spread in most cells"
    few = int(ours["n_pairs"].min())
    if few < 2:
        out.append(
            untestable(
                f"table{table}.beyond_spread",
                item,
                claim,
                f"needs two or more seed pairs to measure the spread, got {few} (SEEDS, PAIRS)",
            )
        )
    else:
        beyond = int(ours["exceeds_spread"].sum())
        out.append(
            check(
                f"table{table}.beyond_spread",
                item,
                claim,
                beyond > len(ours) / 2,
                evidence=f"{beyond}/{len(ours)} cells with mean gain > largest row spread over "
                f"{few} pairs",
                numbers={"cells_beyond_spread": beyond, "cells": len(ours), "pairs": few},
            )
        )
    return out


def paper_as_runs(paper: pd.DataFrame) -> pd.DataFrame:
    """The paper's table in the shape of our runs (one pseudo-pair), for :func:`gains`."""
    return paper.rename(columns={"value": "accuracy"}).assign(pair="paper")


def scale_probe(
    main: pd.DataFrame,
    probe: pd.DataFrame,
    *,
    keys: Sequence[str],
    row: str,
    n_main: int | None,
    n_probe: int,
) -> pd.DataFrame:
    """Gains of ``row`` with many and with few labelled images, cell by cell.

    The paper fine-tunes on a few dozen images per class (CUB-200-2011: about 30), where a
    head over-fits and dropping inconsistent components can pay; the ``small`` profile
    fine-tunes on ``FIT_LIMIT`` images. This puts :func:`gains` of the same cells under the two
    image counts side by side.

    Args:
        main, probe: :func:`gains` with ``n_main`` and ``n_probe`` fitting images.
        keys: the cell's key columns. row: the refined row compared, e.g. ``"x0+x1+x2"``.

    Returns:
        Columns ``*keys, images, gain, best_baseline, pairs_improved, n_pairs`` for both image
        counts (``images`` is ``n_main`` or ``n_probe``; ``None`` prints as "all").
    """
    keys = list(keys)
    parts = []
    for images, table in ((n_main, main), (n_probe, probe)):
        part = table[table["row"] == row]
        if part.empty:
            rows = sorted(table["row"].unique())
            raise ValueError(f"no row {row!r} in the gains with {images} images; rows are {rows}")
        parts.append(
            part[[*keys, "gain", "best_baseline", "pairs_improved", "n_pairs"]]
            .assign(images="all" if images is None else int(images))
        )
    both = pd.concat(parts, ignore_index=True)
    missing = set(map(tuple, parts[0][keys].values)) ^ set(map(tuple, parts[1][keys].values))
    if missing:
        raise ValueError(f"the two runs do not cover the same cells: {sorted(missing)}")
    return both[[*keys, "images", "gain", "best_baseline", "pairs_improved", "n_pairs"]]


def scale_probe_reading(probe_table: pd.DataFrame, keys: Sequence[str]) -> str:
    """One computed sentence on the scale probe: does the refined row gain with fewer images?

    Counts the cells with a positive gain under each image count and the mean change of the
    gain from the larger to the smaller count (positive: fewer images favour the refined row).
    """
    keys = list(keys)
    counts = list(dict.fromkeys(probe_table["images"]))
    if len(counts) != 2:
        raise ValueError(f"need exactly two image counts, got {counts}")
    big, few = counts
    wide = probe_table.pivot_table(index=keys, columns="images", values="gain", sort=False)
    change = float((wide[few] - wide[big]).mean())
    n = len(wide)
    up_big, up_few = int((wide[big] > 0).sum()), int((wide[few] > 0).sum())
    if up_few > up_big and change > 0:
        reading = "fewer images favour the refined features, as the over-fitting account predicts"
    elif change > 0:
        reading = ("fewer images raise the gains but do not turn more cells positive; scale "
                   "explains part of the difference at most")
    else:
        reading = ("fewer images do not favour the refined features: the scale of the profile "
                   "does not explain the difference")
    return (f"with {big} images {up_big}/{n} cells gain, with {few} images {up_few}/{n}; the gain "
            f"changes by {change:+.2f} points on average: {reading}.")
