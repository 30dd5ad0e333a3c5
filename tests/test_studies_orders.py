"""kc.studies.orders (Table 2, Sec. 4.2): variances of the orders, units, claims; no training."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest

from kc.paper import paper_table
from kc.studies import instability as ins
from kc.studies import orders

matplotlib.use("Agg")


def test_order_variances_in_three_units(faked_fits) -> None:
    _, rows, _ = faked_fits
    table = orders.order_variances(rows, 2)
    assert set(table["units"]) == {"normalised", "raw", "fraction"}
    assert len(table) == 5 * 3 * 5 and set(table["n_fits"]) == {3}
    pick = table.set_index(["column", "units", "row"])["value"]
    key = "conv4-3 @ VGG-16"
    assert pick[key, "raw", "Var(x1)"] == pytest.approx(9 * pick[key, "normalised", "Var(x1)"])
    assert pick[key, "fraction", "Var(x*)"] == pytest.approx(1.0)
    # Case 1 targets are seeds 1, 2, 2: mean instability 0.2 + 0.01 * 5 / 3
    assert pick[key, "fraction", "Var(xDelta)"] == pytest.approx(0.2 + 0.01 * 5 / 3)
    with pytest.raises(ValueError, match="ORDER=3"):
        orders.order_variances(rows, 3)
    with pytest.raises(ValueError, match="needs Case 1 fits"):
        orders.order_variances(rows[rows["setting"] == ins.CASE2], 2)


def test_order_claims_on_the_paper_and_on_a_planted_failure() -> None:
    paper = paper_table(2)
    claims = orders.order_claims(paper, 2).set_index("claim")
    assert claims.loc["Var(x0) > ... > Var(x2) in every layer", "holds"]
    majority = claims.loc["the 0-order component holds most of the variance"]
    assert not majority["holds"] and "fails for last conv @ ResNet-34" in majority["evidence"]
    bad = paper.copy()
    bad.loc[(bad["column"] == "conv4 @ AlexNet") & (bad["row"] == "Var(x2)"), "value"] = 50.0
    bad_claims = orders.order_claims(bad, 2).set_index("claim")["evidence"]
    assert bad_claims.iloc[0].startswith("fails for conv4 @ AlexNet;")


def test_paper_units_check_finds_raw_units_in_the_paper() -> None:
    units = orders.paper_units_check(paper_table(1), paper_table(2)).set_index("column")
    np.testing.assert_allclose(units["ratio"], 1.0, atol=0.02)
    assert units.loc["conv4 @ AlexNet", "implied_var_x_star"] == pytest.approx(11.14 / 0.086)
    fractions = orders.paper_fractions(paper_table(2), units.reset_index())
    sums = fractions.groupby("column")["value"].sum()
    np.testing.assert_allclose(sums, 1.0, atol=0.02)


def test_magnitude_claim() -> None:
    frame = pd.DataFrame({"column": ["a", "b"], "value": [0.5, 40.0]})
    claim, holds, evidence = orders.magnitude_claim(frame)
    assert holds and "x80" in evidence
    assert not orders.magnitude_claim(frame.assign(value=[1.0, 2.0]))[1]
    with pytest.raises(ValueError, match="positive variances"):
        orders.magnitude_claim(frame.assign(value=[0.0, 2.0]))


def test_table2_vs_paper_and_figures(faked_fits) -> None:
    _, rows, _ = faked_fits
    table = orders.order_variances(rows, 2)
    paper = paper_table(2)
    units = orders.paper_units_check(paper_table(1), paper)
    both = orders.table2_vs_paper(table, paper, units)
    assert len(both) == 2 * 4 * 5 and both["paper"].notna().all()
    assert list(both.columns) == ["units", "row", "column", "ours", "paper", "difference"]
    fig1 = ins.plot_table1(ins.instability_table(rows), paper_table(1))
    fig2 = orders.plot_table2(
        table[table["units"] == "fraction"], orders.paper_fractions(paper, units), 2
    )
    assert len(fig1.axes) == 2 and len(fig2.axes) == 1
