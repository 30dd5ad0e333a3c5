"""kc.studies.instability.run (Table 1, Sec. 4.2): fits, tables, claims; fast, no training."""

from __future__ import annotations

import itertools

import pandas as pd
import pytest
from conftest import notebook_params

from kc.engine import experiments as ex
from kc.studies.instability import run as ins
from kc.studies.paper import CASE1, CASE2, paper_table


def study_of(**overrides) -> ins.InstabilityStudy:
    return ins.InstabilityStudy.from_params(notebook_params("table1_instability", **overrides))


# ---------------------------------------------------------------------------- settings


def test_study_validates_its_parameters() -> None:
    with pytest.raises(ValueError, match="unknown arch 'lenet'"):
        study_of(LAYERS={"lenet": ["conv1"]})
    with pytest.raises(ValueError, match=r"unknown layers \['conv9'\] of alexnet"):
        study_of(LAYERS={"alexnet": ["conv4", "conv9"]})
    with pytest.raises(ValueError, match=r"at least two distinct values, got \[3\]"):
        study_of(SEEDS=[3])
    with pytest.raises(ValueError, match=r"got \[1, 1\]"):
        study_of(SEEDS=[1, 1])
    with pytest.raises(ValueError, match="at least one layer"):
        study_of(LAYERS={"alexnet": []})
    with pytest.raises(ValueError, match=r"lack \['LAYERS'\]"):
        params = notebook_params("table1_instability")
        del params["LAYERS"]
        ins.InstabilityStudy.from_params(params)


@pytest.mark.parametrize("seeds", [[0, 1], [0, 1, 2], [5, 2, 9, 4]])
def test_case1_pairs_cover_every_pair_once_or_in_both_directions(seeds: list[int]) -> None:
    one = study_of(SEEDS=seeds).case1_pairs()
    assert one == list(itertools.combinations(seeds, 2))
    both = study_of(SEEDS=seeds, BOTH_DIRECTIONS=True).case1_pairs()
    assert sorted(both) == sorted(itertools.permutations(seeds, 2))


def test_specs_follow_the_shared_convention_and_halve_case2_images() -> None:
    study = study_of(SEEDS=[0, 1, 2], TRAIN_LIMIT=600, EVAL_LIMIT=None, WIDTH=0.125, INPUT_SIZE=32)
    expected = ex.NetSpec(
        "vgg16", datasets=("fashion-mnist",), task="all", seed=2, epochs=1, width=0.125,
        input_size=32, train_limit=600, optimizer="adam", lr=1e-3, batch_size=64,
    )  # fmt: skip
    assert study.spec("vgg16", 2) == expected
    half = study.spec("vgg16", 0, "half1")
    assert (half.task, half.train_limit, half.seed) == ("half1", 300, 0)
    assert study_of(TRAIN_LIMIT=None).spec("alexnet", 0, "half0").train_limit is None
    specs = study.specs()
    assert len(specs) == 3 * 3 + 3 * 2 and len(set(specs)) == len(specs)
    # EVAL_LIMIT limits the test images of every network's accuracy, halves included
    limited = study_of(SEEDS=[0, 1], EVAL_LIMIT=500).specs()
    assert {s.test_limit for s in limited} == {500}
    assert {s.test_limit for s in specs} == {None}


def test_lambda_is_the_alexnet_one_only_for_alexnet() -> None:
    study = study_of(LAMBDA=0.1, LAMBDA_ALEXNET=8.0)
    assert study.g.lam_for("alexnet") == 8.0
    assert study.g.lam_for("vgg16") == study.g.lam_for("resnet34") == 0.1
    assert study.g.kwargs("vgg16", "alexnet")["lam"] == 8.0


# ---------------------------------------------------------------------------- fits (faked g)


def test_fits_make_one_row_per_pair_and_layer_with_the_study_settings(faked_fits) -> None:
    study, rows, calls = faked_fits
    n_layers = len(study.layer_list())
    assert len(rows) == n_layers * (3 + 2)
    assert rows.groupby("setting").size().to_dict() == {
        CASE1: 3 * n_layers,
        CASE2: 2 * n_layers,
    }
    for x_spec, x_layer, t_spec, t_layer, kwargs in calls:
        assert x_layer == t_layer and x_spec.arch == t_spec.arch
        assert kwargs["lam"] == (8.0 if x_spec.arch == "alexnet" else 0.1)
        settings = {k: v for k, v in kwargs.items() if k not in ("device", "progress")}
        assert settings == study.g.kwargs(x_spec.arch) and kwargs["order"] == 2
    case2 = rows[rows["setting"] == CASE2]
    assert set(case2["x"].str.split("/").str[2]) == {"half0", "half1"}
    assert {"Var(xDelta)", "Var(xDelta) raw", "from_cache", "seconds"} <= set(rows.columns)


def test_table2_makes_the_same_calls_as_table1(monkeypatch, faked_fits, fake_consistency) -> None:
    study, _, calls = faked_fits
    again: list = []
    monkeypatch.setattr(ex, "get_consistency", fake_consistency(again))
    ins.fits(study, cases=[CASE1])
    case1 = [c for c in calls if c[0].task == "all"]
    assert [(repr(c[0]), c[1], repr(c[2]), c[4]) for c in case1] == [
        (repr(c[0]), c[1], repr(c[2]), c[4]) for c in again
    ]
    with pytest.raises(ValueError, match="unknown cases"):
        ins.fits(study, cases=["case 3"])


def test_instability_table_means_case1_and_two_way_averages_case2(faked_fits) -> None:
    _, rows, _ = faked_fits
    table = ins.instability_table(rows)
    assert len(table) == 2 * 5 and set(table["n_fits"]) == {3, 2}
    c1 = table[(table["setting"] == CASE1) & (table["column"] == "conv4 @ AlexNet")].iloc[0]
    assert c1["instability"] == pytest.approx(0.1 + 0.01 * (1 + 2 + 2) / 3)
    assert c1["min"] == pytest.approx(0.11) and c1["max"] == pytest.approx(0.12)
    c2 = table[(table["setting"] == CASE2) & (table["column"] == "conv5 @ AlexNet")].iloc[0]
    assert c2["instability"] == pytest.approx(0.15 + 0.001)
    with pytest.raises(ValueError, match="exactly two fits"):
        ins.instability_table(rows[~((rows["setting"] == CASE2) & rows["x"].str.contains("half1"))])


# ---------------------------------------------------------------------------- claims


def test_the_paper_satisfies_its_own_table1_claims() -> None:
    checks = ins.instability_checks(ins.paper_frame(paper_table(1)), "value")
    # per case: AlexNet layers, VGG-16 layers, ResNet-34 layers (one: untestable), depth, deepest
    assert len(checks) == 2 * 5
    held = {cid: c["holds"] for cid, c in checks.items()}
    assert held.pop("table1.case1.resnet34_layers") is None
    assert held.pop("table1.case2.resnet34_layers") is None
    assert all(held.values())


def test_instability_claims_fail_where_the_planted_order_is_reversed() -> None:
    paper = paper_table(1)
    ours = ins.paper_frame(paper).rename(columns={"value": "instability"})
    ours.loc[ours["column"] == "conv5 @ AlexNet", "instability"] = 0.01  # conv5 below conv4
    ours.loc[ours["column"] == "last conv @ ResNet-34", "instability"] = 0.15  # not the worst
    status = {c.id: c.status for c in ins.table1_claims(ours, paper)}
    failed = {cid for cid, s in status.items() if s == "not reproduced"}
    assert failed == {
        f"table1.{case}.{what}"
        for case in ("case1", "case2")
        for what in ("alexnet_layers", "network_depth", "deepest")
    }
    assert status["table1.case1.vgg16_layers"] == "reproduced"


@pytest.mark.parametrize("layers", [{"vgg16": ["conv4_3"]}, {"alexnet": ["conv5"]}])
def test_claims_a_single_layer_cannot_test_are_not_testable_not_failed(layers) -> None:
    """One architecture with one layer: no claim of Table 1 can be tested."""
    arch, (layer,) = next(iter(layers.items()))
    ours = pd.DataFrame(
        {"setting": [CASE1], "arch": [arch], "layer": [layer], "instability": [0.2]}
    )
    claims = ins.table1_claims(ours, paper_table(1))
    assert len(claims) == 2 * 4 and {c.status for c in claims} == {"not testable"}
    by_id = {c.id: c for c in claims}
    assert "needs two or more layers" in by_id[f"table1.case1.{arch}_layers"].evidence
    assert "needs two or more architectures" in by_id["table1.case1.network_depth"].evidence
    # claims of a setting our numbers lack entirely are not testable either, and quote the paper
    assert by_id["table1.case2.alexnet_layers"].paper == "conv4 0.089, conv5 0.155"


def test_pairwise_support_counts_matched_fits(faked_fits) -> None:
    _, rows, _ = faked_fits
    support = ins.pairwise_support(rows).set_index(["setting", "arch"])
    assert support.loc[(CASE1, "alexnet"), ["n_holds", "n_fits"]].tolist() == [3, 3]
    assert support.loc[(CASE2, "vgg16"), ["shallow", "deep"]].tolist() == ["conv4_3", "conv5_3"]
    assert "resnet34" not in support.index.get_level_values("arch")
