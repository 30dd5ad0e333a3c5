"""Sec. 4.1's tables and claims: our numbers keyed like the paper's table ``"4.1"``, beside the
paper's, and the claims of the diagnosis checked on them.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from kc.studies.claims import Claim, gain_check, standard_error
from kc.studies.diagnosis.arms import ARMS
from kc.studies.paper import SEC41_ROWS, side_by_side

__all__ = [
    "compare_with_paper",
    "differing_roles",
    "mean_table",
    "pairs_table",
    "results_table",
    "sec41_claims",
]

_OURS = "diagnosis (not in the paper)"


def results_table(
    *,
    names: Mapping[str, str],
    net_accuracy: Mapping[str, float],
    arm_accuracy: Mapping[str, float],
    gain_se: Mapping[str, float],
    instability: Mapping[str, float],
) -> pd.DataFrame:
    """Our numbers of Sec. 4.1, keyed like the paper's table ``"4.1"``.

    Args:
        names: ``{"weak": label, "strong": label}``, e.g. ``"alexnet conv5"``.
        net_accuracy: ``{"weak": %, "strong": %}``, the networks' own test accuracies.
        arm_accuracy: ``{arm: %}`` for :data:`kc.studies.diagnosis.arms.ARMS`, the classifiers' test accuracies.
        gain_se: ``{"blind_spots_added": se, "unreliable_removed": se}``, paired standard
            errors (points) of each arm's gain over ``"raw"``.
        instability: ``{"blind_spots": Var(x_S^Delta)/Var(x_S), "unreliable": Var(x_W^Delta)/Var(x_W)}``.

    Returns:
        Columns ``setting, row, column, value, se, unit``; ``setting``/``row`` equal the paper's
        where the paper reports the number, ``column`` names our network and feature.
    """
    missing = [a for a in ARMS if a not in arm_accuracy]
    missing += [k for k in ("weak", "strong") if k not in names or k not in net_accuracy]
    missing += [k for k in ("blind_spots", "unreliable") if k not in instability]
    missing += [k for k in ARMS[1:] if k not in gain_se]
    if missing:
        raise ValueError(f"results_table is missing entries {missing}")
    weak, strong = names["weak"], names["strong"]
    gain_blind = arm_accuracy["blind_spots_added"] - arm_accuracy["raw"]
    gain_unrel = arm_accuracy["unreliable_removed"] - arm_accuracy["raw"]
    nan = float("nan")
    rows = [
        (*SEC41_ROWS["weak"], weak, net_accuracy["weak"], nan, "top-1 %"),
        (*SEC41_ROWS["strong"], strong, net_accuracy["strong"], nan, "top-1 %"),
        (*SEC41_ROWS["gain_blind"], weak, gain_blind, gain_se["blind_spots_added"], "points"),
        (*SEC41_ROWS["raw"], weak, arm_accuracy["raw"], nan, "top-1 %"),
        (
            *SEC41_ROWS["unreliable_removed"],
            weak,
            arm_accuracy["unreliable_removed"],
            nan,
            "top-1 %",
        ),
        (
            _OURS,
            "classifier on g(x_A) + blind spots (= x_B)",
            weak,
            arm_accuracy["blind_spots_added"],
            nan,
            "top-1 %",
        ),
        (
            _OURS,
            "accuracy gain when unreliable features removed",
            weak,
            gain_unrel,
            gain_se["unreliable_removed"],
            "points",
        ),
        (
            _OURS,
            "instability x_A -> x_B: Var(x_B^Delta) / Var(x_B) (blind spots)",
            f"{weak} -> {strong}",
            instability["blind_spots"],
            nan,
            "ratio",
        ),
        (
            _OURS,
            "instability x_B -> x_A: Var(x_A^Delta) / Var(x_A) (unreliable)",
            f"{strong} -> {weak}",
            instability["unreliable"],
            nan,
            "ratio",
        ),
    ]
    return pd.DataFrame(rows, columns=["setting", "row", "column", "value", "se", "unit"])


def pairs_table(tables: Mapping[int, pd.DataFrame]) -> pd.DataFrame:
    """:func:`results_table` of every pair of networks, keyed by seed, in one frame with a
    leading ``seed`` column."""
    if not tables:
        raise ValueError("pairs_table needs at least one pair's table")
    return pd.concat([t.assign(seed=int(s)) for s, t in tables.items()], ignore_index=True)[
        ["seed", *next(iter(tables.values())).columns]
    ]


def mean_table(per_pair: pd.DataFrame) -> pd.DataFrame:
    """:func:`pairs_table`'s rows averaged over the pairs, in :func:`results_table`'s layout.

    ``value`` is the mean over pairs; with two or more pairs ``se`` is its standard error over
    pairs (sample std / sqrt(n)) for every row, with one pair the pair's own (paired, over
    images) ``se``; ``column`` joins the networks the pairs put in that row (the roles can
    differ between pairs); ``n_pairs`` counts them.
    """
    rows = []
    for (setting, row), group in per_pair.groupby(["setting", "row"], sort=False):
        values = group["value"].to_numpy(dtype=float)
        n = len(values)
        se = standard_error(values) if n > 1 else float(group["se"].iloc[0])
        rows.append({
            "setting": setting, "row": row, "column": " / ".join(dict.fromkeys(group["column"])),
            "value": float(values.mean()), "se": se, "unit": group["unit"].iloc[0], "n_pairs": n,
        })  # fmt: skip
    return pd.DataFrame(rows)


def compare_with_paper(ours: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Our rows next to the paper's table ``"4.1"`` (:func:`kc.studies.paper.paper_table`).

    Args:
        ours: from :func:`results_table`.
        paper: the paper's rows with ``setting, row, value``.

    Returns:
        In the order of ``ours``: ``setting, row, network, ours, paper, difference, se, unit``;
        ``paper`` is NaN for our rows the paper does not report.
    """
    merged = side_by_side(ours, paper, on=["setting", "row"], how="left")
    merged.insert(2, "network", ours["column"].to_numpy())
    merged["se"] = ours["se"].to_numpy()
    merged["unit"] = ours["unit"].to_numpy()
    return merged


def _gain_claim(
    cid: str,
    claim: str,
    raws: list[float],
    gains: list[float],
    ses: list[float],
    *,
    paper: str,
    roles_note: str = "",
) -> Claim:
    """A Sec. 4.1 claim that a classifier input raises accuracy over raw x_W, one gain per pair:
    :func:`kc.studies.claims.gain_check` (one pair: "not testable: no spread"), the paired SE
    over test images of each pair in the evidence; ``roles_note`` (when the pairs' weak networks
    differ) starts it."""
    within = ", ".join(f"{g:+.2f} ({_in_se(g, se)})" for g, se in zip(gains, ses, strict=True))
    lead = f"{roles_note}; " if roles_note else ""
    context = (f"{lead}raw x_W {np.mean(raws):.2f}% -> {np.mean(raws) + np.mean(gains):.2f}%; "
               f"per pair {within} (paired SE over test images)")  # fmt: skip
    return gain_check(cid, "Sec. 4.1", claim, gains, paper=paper, context=context)


def _value(group: pd.DataFrame, seed: object, setting: str, row: str) -> tuple[float, float, str]:
    """(value, se, column) of the one row ``setting`` / ``row`` of one pair's table."""
    hit = group[(group["setting"] == setting) & (group["row"] == row)]
    if len(hit) != 1:
        raise ValueError(f"pair {seed} has {len(hit)} rows for {setting!r} / {row!r}")
    return float(hit["value"].iloc[0]), float(hit["se"].iloc[0]), str(hit["column"].iloc[0])


def _in_se(gain: float, se: float) -> str:
    """``"+2.1 SE"``: a gain in units of its standard error (``"SE 0"`` when se is 0)."""
    return f"{gain / se:+.1f} SE" if se > 0 else "SE 0"


def differing_roles(weak_per_pair: Mapping[Any, str]) -> str:
    """The sentence naming each pair's weak network when they are not all the same, else "".

    Example:
        >>> differing_roles({0: "alexnet conv5", 1: "resnet34 last14"})
        'the roles differ between pairs, weak network per pair (seed): 0: alexnet conv5, 1: resnet34 last14'
        >>> differing_roles({0: "alexnet conv5", 1: "alexnet conv5"})
        ''
    """
    if len(set(weak_per_pair.values())) < 2:
        return ""
    return "the roles differ between pairs, weak network per pair (seed): " + ", ".join(
        f"{seed}: {weak}" for seed, weak in weak_per_pair.items()
    )


def sec41_claims(
    table: pd.DataFrame, paper: pd.DataFrame, paper_names: Mapping[str, str]
) -> list[Claim]:
    """The claims of Sec. 4.1 checked over pairs of networks (issue 24: no verdict without a
    spread).

    Each claim is a difference per pair: the paper's strong network's accuracy minus its weak
    one's (``roles``), and the two classifiers' gains over raw x_W. It is reproduced when the
    mean over pairs is positive and above its standard error over pairs
    (:func:`kc.studies.claims.gain_check`); on one pair it is "not testable: no spread".

    Args:
        table: :func:`pairs_table` (a ``seed`` per pair), or one :func:`results_table` (one pair).
        paper: the paper's table ``"4.1"`` (:func:`kc.studies.paper.paper_table`), quoted as evidence.
        paper_names: ``{"weak": ..., "strong": ...}``: the labels of the paper's weak and
            strong networks in ``table["column"]`` (to tell whether the roles held).
    """
    per_pair = table if "seed" in table else table.assign(seed=0)
    pairs = []
    for seed, group in per_pair.groupby("seed", sort=False):
        value = functools.partial(_value, group, seed)
        acc_weak, _, weak = value(*SEC41_ROWS["weak"])
        acc_strong, _, strong = value(*SEC41_ROWS["strong"])
        gain_b, se_b, _ = value(*SEC41_ROWS["gain_blind"])
        raw, _, _ = value(*SEC41_ROWS["raw"])
        gain_u, se_u, _ = value(_OURS, "accuracy gain when unreliable features removed")
        kept = weak == paper_names["weak"]
        pairs.append({
            "seed": seed, "weak": weak, "kept": kept, "raw": raw,
            "roles": acc_strong - acc_weak if kept else acc_weak - acc_strong,
            "accs": f"{strong} {acc_strong:.2f}% vs {weak} {acc_weak:.2f}%",
            "gain_b": gain_b, "se_b": se_b, "gain_u": gain_u, "se_u": se_u,
        })  # fmt: skip
    weak_names = list(dict.fromkeys(p["weak"] for p in pairs))
    weak = " / ".join(weak_names)
    swapped = [str(p["seed"]) for p in pairs if not p["kept"]]
    roles_text = "per pair (seed): " + "; ".join(f"{p['seed']}: {p['accs']}" for p in pairs)
    roles_note = ""
    if swapped and len(swapped) == len(pairs):
        where = "in every pair" if len(pairs) > 1 else "in this pair"
        roles_text += (f"; {where} {paper_names['weak']} is the stronger network, and the "
                       f"diagnosis treats {paper_names['strong']} as the weak one")  # fmt: skip
    elif swapped:
        roles_text += (f"; the roles differ between pairs: in pair(s) {', '.join(swapped)} "
                       f"{paper_names['weak']} is the stronger network, and the diagnosis there "
                       f"treats {paper_names['strong']} as the weak one")  # fmt: skip
        roles_note = differing_roles({p["seed"]: p["weak"] for p in pairs})
    item = "Sec. 4.1"
    theirs = paper.set_index(["setting", "row"])
    p_gain, p_raw, p_removed = (
        float(theirs.loc[SEC41_ROWS[k], "value"]) for k in ("gain_blind", "raw", "unreliable_removed")
    )
    p_nets = " vs ".join(
        f"{theirs.loc[SEC41_ROWS[k], 'column']} {float(theirs.loc[SEC41_ROWS[k], 'value']):.2f}%"
        for k in ("strong", "weak")
    )
    raws = [p["raw"] for p in pairs]
    return [
        gain_check(
            "sec41.roles",
            item,
            f"the strong network ({paper_names['strong']}) is more accurate than the weak one "
            f"({paper_names['weak']})",
            [p["roles"] for p in pairs],
            paper=p_nets,
            context=f"accuracy of {paper_names['strong']} minus {paper_names['weak']}, {roles_text}",
            quantity="difference",
        ),
        _gain_claim(
            "sec41.blind_spots",
            f"adding the blind spots of the weak network ({weak}) back raises accuracy",
            raws,
            [p["gain_b"] for p in pairs],
            [p["se_b"] for p in pairs],
            paper=f"gain {p_gain:+.1f} points",
            roles_note=roles_note,
        ),  # fmt: skip
        _gain_claim(
            "sec41.unreliable",
            f"removing the unreliable features of the weak network ({weak}) raises accuracy",
            raws,
            [p["gain_u"] for p in pairs],
            [p["se_u"] for p in pairs],
            paper=f"{p_raw:.1f}% -> {p_removed:.1f}%",
            roles_note=roles_note,
        ),  # fmt: skip
    ]
