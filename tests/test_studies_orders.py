"""kc.studies.orders (Table 2, Sec. 4.2): variances of the orders, units, claims; no training."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest

from kc import plotting
from kc.paper import CASE2, paper_table
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
        orders.order_variances(rows[rows["setting"] == CASE2], 2)


def test_order_checks_on_the_paper_and_on_a_planted_failure() -> None:
    paper = paper_table(2)
    checks = orders.order_checks(paper, 2)
    assert checks["table2.orders_decrease"]["holds"]
    majority = checks["table2.x0_majority"]
    assert not majority["holds"] and "fails for last conv @ ResNet-34" in majority["evidence"]
    bad = paper.copy()
    bad.loc[(bad["column"] == "conv4 @ AlexNet") & (bad["row"] == "Var(x2)"), "value"] = 50.0
    evidence = orders.order_checks(bad, 2)["table2.orders_decrease"]["evidence"]
    assert evidence.startswith("fails for conv4 @ AlexNet;")


def test_order_zero_cannot_test_the_decrease_of_the_orders() -> None:
    table = pd.DataFrame(
        {"column": ["c", "c"], "row": ["Var(x0)", "Var(xDelta)"], "value": [0.9, 0.1]}
    )
    checks = orders.order_checks(table, 0)
    assert checks["table2.orders_decrease"]["holds"] is None
    assert "ORDER >= 1, got 0" in checks["table2.orders_decrease"]["evidence"]
    assert checks["table2.x0_majority"]["holds"]


def test_paper_units_check_finds_raw_units_in_the_paper() -> None:
    units = orders.paper_units_check(paper_table(1), paper_table(2)).set_index("column")
    np.testing.assert_allclose(units["ratio"], 1.0, atol=0.02)
    assert units.loc["conv4 @ AlexNet", "implied_var_x_star"] == pytest.approx(11.14 / 0.086)
    fractions = orders.paper_fractions(paper_table(2), units.reset_index())
    sums = fractions.groupby("column")["value"].sum()
    np.testing.assert_allclose(sums, 1.0, atol=0.02)


def test_magnitude_check() -> None:
    frame = pd.DataFrame({"column": ["a", "b"], "value": [0.5, 40.0]})
    check = orders.magnitude_check(frame)["table2.magnitudes"]
    assert check["holds"] and "x80" in check["evidence"]
    assert not orders.magnitude_check(frame.assign(value=[1.0, 2.0]))["table2.magnitudes"]["holds"]
    with pytest.raises(ValueError, match="positive variances"):
        orders.magnitude_check(frame.assign(value=[0.0, 2.0]))


def test_one_layer_makes_the_magnitude_claim_not_testable(faked_fits) -> None:
    _, rows, _ = faked_fits
    one = rows[rows["column"] == "conv4 @ AlexNet"]
    table = orders.order_variances(one, 2)
    paper = paper_table(2)
    units = orders.paper_units_check(paper_table(1), paper)
    claims = {c.id: c for c in orders.table2_claims(table, paper, units, 2)}
    assert claims["table2.magnitudes"].status == "not testable"
    assert (
        "needs two or more layers, got ['conv4 @ AlexNet']" in claims["table2.magnitudes"].evidence
    )
    assert claims["table2.magnitudes"].paper  # the paper's own check is quoted
    assert claims["table2.orders_decrease"].status == "reproduced"


def test_table2_vs_paper_and_figures(faked_fits) -> None:
    _, rows, _ = faked_fits
    table = orders.order_variances(rows, 2)
    paper = paper_table(2)
    units = orders.paper_units_check(paper_table(1), paper)
    both = orders.table2_vs_paper(table, paper, units)
    assert len(both) == 2 * 4 * 5 and both["paper"].notna().all()
    assert list(both.columns) == ["units", "row", "column", "ours", "paper", "difference"]
    fig1 = plotting.plot_table1(ins.instability_table(rows), paper_table(1))
    fig2 = plotting.plot_table2(
        table[table["units"] == "fraction"], orders.paper_fractions(paper, units), 2
    )
    assert len(fig1.axes) == 2 and len(fig2.axes) == 1
