"""Table 1's claims on one pair of networks are "not testable: no spread" (issue 24)."""

from __future__ import annotations

import pandas as pd

from kc.studies.claims import NOT_TESTABLE
from kc.studies.instability import pairs
from kc.studies.instability import run as ins
from kc.studies.paper import CASE1, CASE2, paper_table


def test_n_pairs_counts_a_fit_and_its_reverse_as_one_pair(faked_fits) -> None:
    _, rows, _ = faked_fits  # seeds 0, 1, 2: three pairs in Case 1; Case 2 fits both directions
    assert pairs.n_pairs(rows) == {CASE1: 3, CASE2: 1}
    both = pd.concat([rows, rows[rows["setting"] == CASE1].rename(columns={"x": "target", "target": "x"})])
    assert pairs.n_pairs(both)[CASE1] == 3


def test_a_layer_with_fewer_pairs_sets_the_settings_count() -> None:
    rows = pd.DataFrame({
        "setting": [CASE1] * 3, "column": ["a", "a", "b"],
        "x": ["s0", "s1", "s0"], "target": ["s1", "s2", "s1"],
    })  # fmt: skip
    assert pairs.n_pairs(rows) == {CASE1: 1}


def test_claims_on_one_pair_of_networks_are_not_testable_no_spread(faked_fits) -> None:
    _, rows, _ = faked_fits
    claims = ins.table1_claims(ins.instability_table(rows), paper_table(1))
    marked = {c.id: c for c in pairs.without_spread(claims, rows)}
    assert [c.id for c in claims] == list(marked)
    case2 = [c for cid, c in marked.items() if cid.startswith("table1.case2.")]
    assert case2 and all(c.shown_status == "not testable: no spread" for c in case2)
    alex = marked["table1.case2.alexnet_layers"]
    assert alex.evidence.startswith("no spread: one pair of networks per layer; on it the ordering holds: conv4 ")
    assert alex.evidence.endswith("; telling an ordering from seed noise needs two or more pairs")
    assert "gain" not in alex.evidence  # an ordering, not a gain
    assert alex.paper == "conv4 0.089, conv5 0.155" and alex.numbers
    # Case 1 rests on three pairs: its verdicts are those of table1_claims
    before = {c.id: c.status for c in claims if c.id.startswith("table1.case1.")}
    assert before == {cid: c.status for cid, c in marked.items() if cid.startswith("table1.case1.")}
    assert NOT_TESTABLE not in {before["table1.case1.alexnet_layers"], before["table1.case1.deepest"]}


def test_a_failed_ordering_on_one_pair_says_so_and_untestable_claims_keep_their_reason(faked_fits) -> None:
    _, rows, _ = faked_fits
    table = ins.instability_table(rows)
    flipped = table.copy()
    case2_alex5 = (flipped["setting"] == CASE2) & (flipped["column"] == "conv5 @ AlexNet")
    flipped.loc[case2_alex5, "instability"] = 0.0
    marked = {c.id: c for c in pairs.without_spread(ins.table1_claims(flipped, paper_table(1)), rows)}
    assert "on it the ordering fails" in marked["table1.case2.alexnet_layers"].evidence
    one_layer = table[table["arch"] == "alexnet"].head(1)
    kept = pairs.without_spread(ins.table1_claims(one_layer, paper_table(1)), rows)
    assert all("needs two or more" in c.evidence or "do not include" in c.evidence for c in kept)
