"""Table 1's claims and the pairs of networks they rest on (issue 24: no verdict without a spread).

A Table 1 setting whose fits compare one pair of networks per layer (Case 2 by construction: the
two halves of ``SEEDS[0]``) cannot tell an ordering of instabilities from what the seed alone
moves. :func:`without_spread` turns such a setting's tested claims into "not testable: no spread"
(:func:`kc.studies.claims.no_spread`), keeping what the one pair shows in the evidence.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from kc.studies.claims import REPRODUCED, Claim, no_spread
from kc.studies.paper import SETTINGS

__all__ = ["n_pairs", "without_spread"]


def n_pairs(fit_rows: pd.DataFrame) -> dict[str, int]:
    """``{setting: pairs}``: the fewest pairs of networks any layer of the setting compares.

    Args:
        fit_rows: :func:`kc.studies.instability.run.fits`' rows (``setting, column, x, target``);
            a fit and its reverse direction are one pair.
    """
    out: dict[str, int] = {}
    for (setting, _), group in fit_rows.groupby(["setting", "column"], sort=False):
        pairs = len({frozenset(p) for p in zip(group["x"], group["target"], strict=True)})
        out[str(setting)] = min(out.get(str(setting), pairs), pairs)
    return out


def without_spread(claims: Iterable[Claim], fit_rows: pd.DataFrame) -> list[Claim]:
    """``claims`` (:func:`kc.studies.instability.run.table1_claims`, ids ``table1.case<N>.*``)
    with those of a setting on one pair of networks per layer marked "not testable: no spread".

    Claims the parameters could not test stay as they are; so do settings with two or more pairs.
    """
    pairs = {f"case{SETTINGS.index(s) + 1}": n for s, n in n_pairs(fit_rows).items()}
    out = []
    for c in claims:
        n = pairs.get(c.id.split(".")[1]) if c.id.count(".") >= 2 else None
        if c.tested and n is not None and n < 2:
            on_it = "holds" if c.status == REPRODUCED else "fails"
            what = f"one pair of networks per layer; on it the ordering {on_it}: {c.evidence}"
            c = no_spread(c.id, c.item, c.claim, what, paper=c.paper, numbers=c.numbers,
                          needs="telling an ordering from seed noise needs two or more pairs")
        out.append(c)
    return out
