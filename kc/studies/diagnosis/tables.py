"""Sec. 4.1's tables and claims: our numbers keyed like the paper's table ``"4.1"``, beside the
paper's, and the claims of the diagnosis checked on them.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from kc.studies.claims import Claim, check
from kc.studies.diagnosis.arms import ARMS
from kc.studies.paper import SEC41_ROWS, side_by_side

__all__ = ["compare_with_paper", "results_table", "sec41_claims"]

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


def _gain_claim(cid: str, claim: str, raw: float, gain: float, se: float, *, paper: str) -> Claim:
    """A Sec. 4.1 claim that a classifier input raises accuracy over raw x_W by ``gain`` +/- ``se``."""
    return check(
        cid,
        "Sec. 4.1",
        claim,
        bool(gain > 0),
        evidence=f"{raw:.2f}% -> {raw + gain:.2f}%, gain {gain:+.2f} +/- {se:.2f} points "
        f"(paired SE, {_in_se(gain, se)})",
        paper=paper,
        numbers={"raw": raw, "gain": gain, "se": se},
    )


def _in_se(gain: float, se: float) -> str:
    """``"+2.1 SE"``: a gain in units of its standard error (``"SE 0"`` when se is 0)."""
    return f"{gain / se:+.1f} SE" if se > 0 else "SE 0"


def sec41_claims(
    table: pd.DataFrame, paper: pd.DataFrame, paper_names: Mapping[str, str]
) -> list[Claim]:
    """The claims of Sec. 4.1 checked on :func:`results_table`'s numbers.

    Args:
        table: from :func:`results_table`.
        paper: the paper's table ``"4.1"`` (:func:`kc.studies.paper.paper_table`), quoted as evidence.
        paper_names: ``{"weak": ..., "strong": ...}``: the labels of the paper's weak and
            strong networks in ``table["column"]`` (to tell whether the roles held).
    """

    def value(setting: str, row: str) -> tuple[float, float, str]:
        hit = table[(table["setting"] == setting) & (table["row"] == row)]
        if len(hit) != 1:
            raise ValueError(f"table has {len(hit)} rows for {setting!r} / {row!r}")
        return float(hit["value"].iloc[0]), float(hit["se"].iloc[0]), str(hit["column"].iloc[0])

    acc_weak, _, weak = value(*SEC41_ROWS["weak"])
    acc_strong, _, strong = value(*SEC41_ROWS["strong"])
    gain_b, se_b, _ = value(*SEC41_ROWS["gain_blind"])
    raw, _, _ = value(*SEC41_ROWS["raw"])
    gain_u, se_u, _ = value(_OURS, "accuracy gain when unreliable features removed")
    kept = weak == paper_names["weak"]
    roles_text = f"{strong} {acc_strong:.2f}% vs {weak} {acc_weak:.2f}%" + (
        ""
        if kept
        else f"; on our data {paper_names['weak']} is the stronger network, so the "
        f"diagnosis below treats {weak} as the weak one"
    )
    item = "Sec. 4.1"
    theirs = paper.set_index(["setting", "row"])["value"]
    p_gain, p_raw, p_removed = (
        float(theirs[SEC41_ROWS[k]]) for k in ("gain_blind", "raw", "unreliable_removed")
    )
    return [
        check(
            "sec41.roles",
            item,
            f"the strong network ({paper_names['strong']}) is more accurate than the weak one "
            f"({paper_names['weak']})",
            bool(kept and acc_strong > acc_weak),
            evidence=roles_text,
            numbers={"weak": acc_weak, "strong": acc_strong},
        ),
        _gain_claim(
            "sec41.blind_spots",
            f"adding the blind spots of the weak network ({weak}) back raises accuracy",
            raw,
            gain_b,
            se_b,
            paper=f"gain {p_gain:+.1f} points",
        ),
        _gain_claim(
            "sec41.unreliable",
            f"removing the unreliable features of the weak network ({weak}) raises accuracy",
            raw,
            gain_u,
            se_u,
            paper=f"{p_raw:.1f}% -> {p_removed:.1f}%",
        ),
    ]
