"""kc.studies.orders.run (Table 2, Sec. 4.2): variances of the orders, units, claims; no training."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import notebook_params

import kc
from kc.book import plotting
from kc.studies.instability import run as ins
from kc.studies.orders import run as orders
from kc.studies.paper import CASE1, CASE2, paper_table

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


# ---------------------------------------------------------------- the centre of Var

OFFSETS = torch.tensor([-2.0, -0.5, 1.0, 3.0], dtype=torch.float64) * 0.3


def _planted_components(seed: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """x* = x0 + x1 + x2 + delta on (24, 4, 3, 3), float64, where x1 is a constant per channel:
    Var(x1) > Var(x2) about the global mean, Var(x1) = 0 < Var(x2) about the channel means."""
    gen = torch.Generator().manual_seed(seed)
    noise = [torch.randn(24, 4, 3, 3, generator=gen, dtype=torch.float64) for _ in range(3)]
    target = noise[0] + OFFSETS.view(1, -1, 1, 1)
    x1 = (0.4 * OFFSETS).view(1, -1, 1, 1).expand_as(target).clone()
    x2, delta = 0.05 * noise[1], 0.2 * noise[2]
    return {"x0": target - x1 - x2 - delta, "x1": x1, "x2": x2, "delta": delta}, target


def test_component_variances_about_each_centre() -> None:
    comps, target = _planted_components(0)
    glob = orders.component_variances(comps, target, "global", scale=3.0)
    chan = orders.component_variances(comps, target, "channel", scale=3.0)
    assert glob["Var(x1)"] == pytest.approx(0.16 * float(OFFSETS.var(unbiased=False)))
    assert chan["Var(x1)"] == pytest.approx(0.0, abs=1e-24)
    assert glob["Var(xDelta)"] == pytest.approx(kc.variance(comps["delta"]))
    assert chan["Var(x*)"] == pytest.approx(kc.variance(target, "channel"))
    for name in ("Var(x0)", "Var(x2)", "Var(xDelta)", "Var(x*)"):
        assert glob[f"{name} raw"] == pytest.approx(9.0 * glob[name])
        assert chan[f"{name} raw"] == pytest.approx(9.0 * chan[name])
    with pytest.raises(ValueError, match=r"must be x0..xK and delta, got \['delta', 'x0', 'x2'\]"):
        orders.component_variances({"x0": target, "x2": target, "delta": target}, target, "global")
    with pytest.raises(ValueError, match=r"x\*'s shape \(24, 4, 3, 3\), got \{'delta'"):
        orders.component_variances({"x0": target, "delta": target[:2]}, target, "global")
    with pytest.raises(ValueError, match="unknown center"):
        orders.component_variances(comps, target, "pixel")


@pytest.fixture
def planted_study(monkeypatch):
    """The smoke Table 1 study with g faked: every fit returns :func:`_planted_components`,
    x*'s scale growing 10x per architecture (so Var(x*) differs by 100x across them)."""
    from kc.core.normalize import Normalizer
    from kc.engine import experiments as ex
    from kc.studies.paper import ARCH_DEPTH

    def fake(x_spec, x_layer, t_spec, t_layer, **kwargs):
        seed = 10 * list(ARCH_DEPTH).index(x_spec.arch) + len(x_layer) + t_spec.seed
        comps, target = _planted_components(seed)
        std = torch.tensor(10.0 ** list(ARCH_DEPTH).index(x_spec.arch))
        model = SimpleNamespace(normalizer=lambda which: Normalizer(torch.tensor(0.0), std))
        names = ["x0", "x1", "x2", "delta"]
        index = ["Var(x0)", "Var(x1)", "Var(x2)", "Var(delta)", "Var(x*)"]
        tensors = [comps[n] for n in names] + [target]
        v = pd.Series([kc.variance(t) for t in tensors], index=index)
        return SimpleNamespace(
            components=comps, target=target, model=model, variances=v,
            variances_raw=pd.Series([kc.variance(t * std) for t in tensors], index=index),
            instability=float(v["Var(delta)"] / v["Var(x*)"]), info={"from_cache": True},
        )  # fmt: skip

    monkeypatch.setattr(ex, "get_consistency", fake)
    return ins.InstabilityStudy.from_params(notebook_params("table2_order_variances"))


def test_centred_fits_global_equals_table2s_fits(planted_study) -> None:
    centred = orders.centred_fits(planted_study)
    assert len(centred) == 5 * 2 and list(centred["center"].unique()) == ["global", "channel"]
    fits = ins.fits(planted_study, cases=[CASE1])
    glob = centred[centred["center"] == "global"].reset_index(drop=True)
    names = [*orders.order_rows(2), "Var(x*)"]
    cols = names + [f"{n} raw" for n in names] + ["instability", "column", "x", "target"]
    pd.testing.assert_frame_equal(glob[cols], fits[cols], check_exact=False, rtol=1e-12)
    chan = centred[centred["center"] == "channel"]
    assert (chan["Var(x1)"] < 1e-24).all() and (glob["Var(x1)"] > 0.01).all()
    with pytest.raises(ValueError, match=r"centers must be some of \['global', 'channel'\]"):
        orders.centred_fits(planted_study, ["mean"])


def test_centre_table_and_a_planted_flip(planted_study) -> None:
    by_centre = orders.order_variances_by_centre(orders.centred_fits(planted_study), 2)
    table = orders.centre_table(by_centre)
    assert list(table.columns) == [
        "arch", "layer", "column", "units", "row", "global", "channel", "difference"
    ]  # fmt: skip
    assert len(table) == 5 * 3 * 5
    np.testing.assert_allclose(table["difference"], table["channel"] - table["global"])
    x1 = table[(table["row"] == "Var(x1)") & (table["units"] == "normalised")]
    assert (x1["channel"] < 1e-24).all() and (x1["difference"] < -0.01).all()

    paper = paper_table(2)
    units = orders.paper_units_check(paper_table(1), paper)
    claims = {
        c: orders.table2_claims(by_centre[by_centre["center"] == c], paper, units, 2)
        for c in ("global", "channel")
    }
    verdicts = orders.centre_verdicts(claims).set_index("id")
    assert list(verdicts["flips"]) == [True, False, False]
    assert verdicts.loc["table2.orders_decrease", ["global", "channel"]].tolist() == [
        "reproduced", "not reproduced"
    ]  # fmt: skip
    sentence = orders.centre_sentence(verdicts.reset_index(), table)
    assert sentence.startswith("Under the released code's per-channel centre 1 of Table 2's 3")
    assert "table2.orders_decrease" in sentence and "reproduced -> not reproduced" in sentence
    same = orders.centre_verdicts({"global": claims["global"], "channel": claims["global"]})
    assert "none of Table 2's 3 verdicts changes" in orders.centre_sentence(same, table)
    with pytest.raises(ValueError, match=r"needs both centres .* missing \['channel'\]"):
        orders.centre_table(by_centre[by_centre["center"] == "global"])
    with pytest.raises(ValueError, match=r"missing \['channel'\]"):
        orders.centre_verdicts({"global": claims["global"]})
