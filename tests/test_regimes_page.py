"""kc.book.regimes: the claims of two regimes paired, counted and read; the networks' gaps."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from kc.book import regimes
from kc.studies.claims import gain_check


def _verdicts(folder, name, claims):
    (folder / name).mkdir(parents=True, exist_ok=True)
    data = {"notebook": name, "profile": "small", "parameters": {},
            "claims": [dict(c.__dict__) for c in claims]}  # fmt: skip
    (folder / name / "verdicts.json").write_text(json.dumps(data))


def test_claims_are_paired_and_read_by_regime(tmp_path):
    _verdicts(tmp_path, "table3_refinement", [
        gain_check("table3.a.gain", "Table 3", "a helps", [0.5, 0.6, 0.4]),
        gain_check("table3.b.gain", "Table 3", "b helps", [-0.5, 0.1, -0.2]),
        gain_check("table3.c.gain", "Table 3", "c helps", [1.0]),
        gain_check("table3.a.gain.overfit", "Table 3", "a helps [overfit regime]", [0.5, 0.7, 0.6]),
        gain_check("table3.b.gain.overfit", "Table 3", "b helps [overfit regime]", [2.0, 1.5, 1.8]),
        gain_check("table3.c.gain.overfit", "Table 3", "c helps [overfit regime]", [1.0]),
    ])  # fmt: skip
    _verdicts(tmp_path, "table1_instability", [gain_check("table1.x", "Table 1", "x", [1.0, 2.0])])
    pairs = regimes.regime_pairs(tmp_path)
    assert [(p.claim, p.current, p.other) for p in pairs] == [
        ("a helps", "reproduced", "reproduced"),
        ("b helps", "not reproduced", "reproduced"),
        ("c helps", "not testable: no spread", "not testable: no spread"),
    ]
    read = [regimes.reading(p.current, p.other, p.regime) for p in pairs]
    assert read == ["in both", "only in the overfit regime", "not testable in both"]
    gaps = pd.DataFrame({"network": ["n0", "n1", "n0/pc40", "n1/pc40"], "arch": ["vgg16"] * 4,
                         "datasets": ["fashion-mnist"] * 4, "train_accuracy": [95, 97, 100, 100],
                         "test_accuracy": [90, 92, 74, 76], "gap": [5, 5, 26, 24],
                         "regime": ["current"] * 2 + ["overfit"] * 2})  # fmt: skip
    gaps.to_csv(tmp_path / "table3_refinement" / "table3_gaps.csv", index=False)
    table = regimes.gap_table(tmp_path)
    assert table.set_index("regime").loc["overfit", "gap"] == 25.0
    assert table["networks"].tolist() == [2, 2]
    page = regimes.regime_page(pairs, table)
    assert "**3 claims checked in both regimes** (current vs overfit)" in page
    assert "Current regime: 1 reproduced, 1 not reproduced, 1 not testable: no spread." in page
    assert "Overfit regime: 2 reproduced, 1 not testable: no spread." in page
    assert "| overfit | vgg16 | fashion-mnist | 2 | 100.0 | 75.0 | +25.0 | 100.0 |" in page
    assert "In the overfit regime, every network fits its training images: the lowest" in page
    assert "In the current regime" not in page  # the comparison is about the second regime
    assert "| {doc}`Table 3 <table3_refinement>` | b helps | not reproduced | reproduced |" in page
    assert "What the second regime costs" not in page
    cost = tmp_path / "table3_refinement" / "overfit_cost.csv"
    cost.write_text("notebook,regime,seconds\ntable3_refinement,overfit,123.4\n")
    (tmp_path / "table3_refinement" / "run.json").write_text(json.dumps({"seconds": 600.0}))
    page = regimes.page_for(tmp_path)
    assert "| {doc}`table3_refinement <table3_refinement>` | overfit | 123 | 600 |" in page


def test_a_page_without_a_second_regime_says_so(tmp_path):
    page = regimes.page_for(tmp_path)
    assert page.startswith("# Where the paper's claims hold")
    assert "No notebook has checked a claim in a second regime yet" in page


def test_networks_that_do_not_fit_their_images_are_named():
    gaps = pd.DataFrame({"network": ["a0/pc40", "a1/pc40", "v0/pc40"], "arch": ["alexnet"] * 2 + ["vgg16"],
                         "datasets": ["fashion-mnist"] * 3, "train_accuracy": [99.5, 84.0, 100.0],
                         "test_accuracy": [70, 71, 72], "gap": [29.5, 13.0, 28.0],
                         "regime": ["overfit"] * 3})  # fmt: skip
    table = regimes.gap_table_from(gaps)
    assert table.set_index("arch").loc["alexnet", "lowest_train"] == 84.0
    sentence = regimes.fit_sentence(table, "overfit")
    assert "not every network fits" in sentence and "alexnet (fashion-mnist) down to 84.0%" in sentence
    assert "vgg16" not in sentence
    assert "every network fits" in regimes.fit_sentence(table, "overfit", threshold=80.0)
    with pytest.raises(ValueError, match="no networks of regime 'paper'"):
        regimes.fit_sentence(table, "paper")
