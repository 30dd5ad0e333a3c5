"""Grounding the measures: the scores of the three tests and their claims (beyond the paper).

The scores of :mod:`kc.studies.grounding.run` (layer monotonicity, functional difference,
augmentation), computed from its pairs: violation rates over triplets, Spearman correlations,
the AUPRC of "same noise level", and the claims on knowledge consistency against linear CKA.
Pure: frames in, frames and claims out.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from torch import Tensor

from kc.core.similarity import PROPERTIES
from kc.studies.baselines import BEYOND, oriented
from kc.studies.claims import Claim, check, untestable

__all__ = [
    "MEASURES",
    "SCORES",
    "auprc",
    "by_position",
    "claims",
    "js_divergence",
    "scores",
    "spearman",
    "violation_rate",
    "winners",
]

#: The measures that take part: every baseline, then knowledge consistency.
MEASURES = (*PROPERTIES, "kc_consistency", "share_x0")
#: Score name -> (test, True if lower is better).
SCORES = {
    "layer_violation": ("layer monotonicity", True),
    "layer_spearman": ("layer monotonicity", False),
    "func_acc_spearman": ("functional difference", False),
    "func_jsd_spearman": ("functional difference", False),
    "aug_violation": ("augmentation", True),
    "aug_auprc": ("augmentation", False),
}


# ---------------------------------------------------------------------------- scores


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation (average ranks for ties); NaN if either side is constant.

    Example:
        >>> spearman([1, 2, 3], [10, 20, 30]), spearman([1, 2, 3], [3, 2, 1])
        (1.0, -1.0)
    """
    ra, rb = pd.Series(a, dtype=float).rank(), pd.Series(b, dtype=float).rank()
    if len(ra) != len(rb) or len(ra) < 2:
        raise ValueError(f"need two sequences of equal length >= 2, got {len(ra)} and {len(rb)}")
    if ra.nunique() < 2 or rb.nunique() < 2:
        return math.nan
    return float(np.corrcoef(ra, rb)[0, 1])


def violation_rate(sim: Mapping[tuple[int, int], float], n: int) -> float:
    """Share of violated comparisons over the triplets i < j < k of positions 0..n-1.

    Each triplet makes two comparisons, s(i, k) <= s(i, j) and s(i, k) <= s(j, k) (the far
    pair should be the least similar); a strict violation counts 1, a tie 1/2.

    Args:
        sim: similarity (higher = more similar) of each pair (i, j), i < j.
        n: number of positions (layers or noise levels), >= 3.

    Example:
        >>> s = {(0, 1): 0.9, (0, 2): 0.5, (1, 2): 0.8}
        >>> violation_rate(s, 3)
        0.0
    """
    if n < 3:
        raise ValueError(f"violation rates need at least 3 positions, got {n}")
    bad, total = 0.0, 0
    for i, j, k in itertools.combinations(range(n), 3):
        far = sim[i, k]
        for near in (sim[i, j], sim[j, k]):
            bad += 1.0 if far > near else 0.5 if far == near else 0.0
            total += 1
    return bad / total


def auprc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Area under the precision-recall curve (average precision) of ``scores`` for ``labels``.

    Tied scores are ranked pessimistically (negatives first within a tie), so a measure that
    cannot tell the groups apart gets no credit for the order of its ties.

    Example:
        >>> auprc([0.9, 0.8, 0.1, 0.2], [True, True, False, False])
        1.0
    """
    s, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=bool)
    if s.shape != y.shape or not y.any():
        raise ValueError(f"need equal lengths and at least one positive, got {s.shape} {y.sum()}")
    order = np.lexsort((y, -s))  # by score descending, negatives first among ties
    hits = y[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision[hits].mean())


def js_divergence(p: Tensor, q: Tensor) -> float:
    """Mean over samples of the Jensen-Shannon divergence (base 2, in [0, 1]) of two
    probability vectors per sample, ``p`` and ``q`` of shape (N, classes)."""
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same shape, got {tuple(p.shape)} {tuple(q.shape)}")
    p, q = p.double().clamp_min(1e-12), q.double().clamp_min(1e-12)
    m = (p + q) / 2
    kl = lambda a, b: (a * (a / b).log2()).sum(1)  # noqa: E731
    return float(((kl(p, m) + kl(q, m)) / 2).mean())


# ---------------------------------------------------------------------------- tables


def _sim(group: pd.DataFrame, measure: str) -> dict[tuple[int, int], float]:
    vals = oriented(group, [measure])[measure]
    return {(int(i), int(j)): float(v)
            for i, j, v in zip(group["i"], group["j"], vals, strict=True)}  # fmt: skip


def scores(pairs: pd.DataFrame, measures: Sequence[str] = MEASURES) -> pd.DataFrame:
    """The six scores of :data:`SCORES` for every measure (NaN where a test lacks the data:
    fewer than 3 layers, networks or noise levels).

    Layer scores are averaged over the networks; augmentation violations use the mean
    similarity of two levels over their noise draws (within a level: excluded).

    Returns:
        One row per measure, one column per score.
    """
    out = {m: dict.fromkeys(SCORES, math.nan) for m in measures}
    layer = pairs[pairs["test"] == "layer"]
    func = pairs[pairs["test"] == "functional"]
    aug = pairs[pairs["test"] == "augmentation"].copy()
    if len(aug):
        aug["same_group"] = aug["same_group"].astype(bool)
    for m in measures:
        viol, rho = [], []
        for _, g in layer.groupby("network"):
            n = int(max(g["j"].max(), g["i"].max())) + 1
            if n < 3:  # fewer than 3 layers: no triplet, no ranking of distances
                continue
            sim = _sim(g, m)
            rho.append(spearman(list(sim.values()), [-(j - i) for i, j in sim]))
            viol.append(violation_rate(sim, n))
        out[m]["layer_violation"] = float(np.mean(viol)) if viol else math.nan
        out[m]["layer_spearman"] = float(np.nanmean(rho)) if np.isfinite(rho).any() else math.nan
        if len(func) >= 3:
            sim = oriented(func, [m])[m]
            out[m]["func_acc_spearman"] = spearman(sim, -func["acc_diff"])
            out[m]["func_jsd_spearman"] = spearman(sim, -func["jsd"])
        if len(aug) and aug["same_group"].any():
            cross = aug[~aug["same_group"]].assign(s=oriented(aug, [m])[m])
            levels = int(max(aug["i"].max(), aug["j"].max())) + 1
            if levels >= 3:
                mean = cross.groupby(["i", "j"])["s"].mean()
                sim = {(int(i), int(j)): float(v) for (i, j), v in mean.items()}
                out[m]["aug_violation"] = violation_rate(sim, levels)
            out[m]["aug_auprc"] = auprc(oriented(aug, [m])[m], aug["same_group"])
    return pd.DataFrame(out).T.rename_axis("measure").reset_index()


def by_position(
    pairs: pd.DataFrame, test: str, measures: Sequence[str] = ("kc_consistency", "linear_cka")
) -> pd.DataFrame:
    """Mean similarity for every pair of positions of one test: layers (``"layer"``, averaged
    over the networks) or noise levels (``"augmentation"``, averaged over the draws).

    Returns:
        Rows: the first position (x), columns: (measure, second position), labelled by layer
        name or noise level; every measure oriented so that higher means more similar.
    """
    sub = pairs[pairs["test"] == test]
    if sub.empty:
        raise ValueError(f"no pairs of test {test!r}; the pairs hold {sorted(set(pairs['test']))}")
    unknown = [m for m in measures if m not in pairs.columns]
    if unknown:
        raise ValueError(f"unknown measures {unknown}; the pairs hold {list(pairs.columns)}")
    frame = oriented(sub, measures)
    frame["x"] = sub["a"].astype(str).str.split("#").str[0]
    frame["target"] = sub["b"].astype(str).str.split("#").str[0]
    order = list(dict.fromkeys([*frame["x"], *frame["target"]]))
    if test == "augmentation":
        order = sorted(order, key=float)
    table = frame.pivot_table(index="x", columns="target", values=list(measures), aggfunc="mean")
    table = table.reindex(index=[o for o in order if o in set(frame["x"])])
    return table.reindex(columns=[(m, o) for m in measures for o in order
                                  if (m, o) in table.columns])  # fmt: skip


def winners(table: pd.DataFrame) -> pd.DataFrame:
    """The best measure of each score of :func:`scores` (ties: all best measures, joined).

    Returns:
        Columns ``score, test, better, best, value, kc_consistency, share_x0, linear_cka``.
    """
    rows = []
    t = table.set_index("measure")
    for score, (test, lower) in SCORES.items():
        col = t[score].dropna()
        if col.empty:
            continue
        best_val = col.min() if lower else col.max()
        best = ", ".join(col.index[np.isclose(col, best_val)])
        rows.append(
            {
                "score": score,
                "test": test,
                "better": "lower" if lower else "higher",
                "best": best,
                "value": float(best_val),
                **{
                    m: float(t.loc[m, score])
                    for m in ("kc_consistency", "share_x0", "linear_cka")
                    if m in t.index
                },
            }
        )
    return pd.DataFrame(rows)


def claims(table: pd.DataFrame) -> list[Claim]:
    """Per test: knowledge consistency (1 - instability) scores at least as well as linear
    CKA, the most used baseline, on both of the test's scores. "not testable" when the test
    lacks the data (NaN scores)."""
    t = table.set_index("measure")
    out = []
    for test in dict.fromkeys(test for test, _ in SCORES.values()):
        names = [s for s, (tt, _) in SCORES.items() if tt == test]
        cid = "grounding." + test.split()[0]
        text = f"{test}: 1 - instability scores at least as well as linear CKA"
        kc = {s: float(t.loc["kc_consistency", s]) for s in names}
        cka = {s: float(t.loc["linear_cka", s]) for s in names}
        if any(math.isnan(v) for v in [*kc.values(), *cka.values()]):
            undefined = [s for s in names if math.isnan(kc[s]) or math.isnan(cka[s])]
            out.append(untestable(cid, BEYOND, text,
                                  f"{', '.join(undefined)} undefined: too few layers, networks "
                                  "or noise levels, or the measure or the functional difference "
                                  "is constant over the pairs (e.g. networks all at chance)"))  # fmt: skip
            continue
        holds = all(kc[s] <= cka[s] + 1e-12 if SCORES[s][1] else kc[s] >= cka[s] - 1e-12
                    for s in names)  # fmt: skip
        best = {s: t[s].idxmin() if SCORES[s][1] else t[s].idxmax() for s in names}
        evidence = "; ".join(f"{s}: KC {kc[s]:.2f} vs CKA {cka[s]:.2f} (best {best[s]})"
                             for s in names)  # fmt: skip
        numbers = {f"kc_{s}": kc[s] for s in names} | {f"cka_{s}": cka[s] for s in names}
        out.append(check(cid, BEYOND, text, bool(holds), evidence=evidence, numbers=numbers))
    return out
