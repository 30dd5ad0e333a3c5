"""kc.studies.instability (Table 1, Sec. 4.2): fits, tables, claims; fast, no training."""

from __future__ import annotations

import itertools

import matplotlib
import pandas as pd
import pytest

from kc import experiments as ex
from kc import zoo
from kc.paper import paper_table
from kc.studies import instability as ins

matplotlib.use("Agg")


# ---------------------------------------------------------------------------- columns


@pytest.mark.parametrize("arch", list(ins.ARCH_NAMES))
def test_paper_column_round_trips_for_every_layer(arch: str) -> None:
    for layer in zoo.layers(arch):
        assert ins.parse_column(ins.paper_column(arch, layer)) == (arch, layer)


@pytest.mark.parametrize("table", [1, 2])
def test_every_paper_column_of_tables_1_and_2_parses(table: int) -> None:
    parsed = {ins.parse_column(c) for c in paper_table(table)["column"]}
    assert parsed == {(a, layer) for a, ls in ins.PAPER_LAYERS.items() for layer in ls}


def test_unknown_columns_and_layers_raise() -> None:
    with pytest.raises(ValueError, match="not a layer column"):
        ins.parse_column("conv9 @ AlexNet")
    with pytest.raises(ValueError, match="unknown layer 'conv9'"):
        ins.paper_column("alexnet", "conv9")


# ---------------------------------------------------------------------------- settings


def test_study_validates_its_parameters() -> None:
    with pytest.raises(ValueError, match="unknown arch 'lenet'"):
        ins.InstabilityStudy(layers={"lenet": ["conv1"]})
    with pytest.raises(ValueError, match=r"unknown layers \['conv9'\] of alexnet"):
        ins.InstabilityStudy(layers={"alexnet": ["conv4", "conv9"]})
    with pytest.raises(ValueError, match=r"at least two distinct values, got \[3\]"):
        ins.InstabilityStudy(seeds=[3])
    with pytest.raises(ValueError, match=r"got \[1, 1\]"):
        ins.InstabilityStudy(seeds=[1, 1])
    with pytest.raises(ValueError, match="at least one layer"):
        ins.InstabilityStudy(layers={"alexnet": []})


@pytest.mark.parametrize("seeds", [[0, 1], [0, 1, 2], [5, 2, 9, 4]])
def test_case1_pairs_cover_every_pair_once_or_in_both_directions(seeds: list[int]) -> None:
    one = ins.InstabilityStudy(seeds=seeds).case1_pairs()
    assert one == list(itertools.combinations(seeds, 2))
    both = ins.InstabilityStudy(seeds=seeds, both_directions=True).case1_pairs()
    assert sorted(both) == sorted(itertools.permutations(seeds, 2))


def test_specs_follow_the_shared_convention_and_halve_case2_images() -> None:
    study = ins.InstabilityStudy(seeds=[0, 1, 2], train_limit=600)
    expected = ex.NetSpec(
        "vgg16", datasets=("fashion-mnist",), task="all", seed=2, epochs=1, width=0.125,
        input_size=32, train_limit=600, optimizer="adam", lr=1e-3, batch_size=64,
    )  # fmt: skip
    assert study.spec("vgg16", 2) == expected
    half = study.spec("vgg16", 0, "half1")
    assert (half.task, half.train_limit, half.seed) == ("half1", 300, 0)
    assert ins.InstabilityStudy(train_limit=None).spec("alexnet", 0, "half0").train_limit is None
    specs = study.specs()
    assert len(specs) == 3 * 3 + 3 * 2 and len(set(specs)) == len(specs)
    # EVAL_LIMIT limits the test images of every network's accuracy, halves included
    limited = ins.InstabilityStudy(seeds=[0, 1], eval_limit=500).specs()
    assert {s.test_limit for s in limited} == {500}
    assert {s.test_limit for s in specs} == {None}


def test_lambda_is_the_alexnet_one_only_for_alexnet() -> None:
    study = ins.InstabilityStudy(lam=0.1, lam_alexnet=8.0)
    assert study.lam_for("alexnet") == 8.0
    assert study.lam_for("vgg16") == study.lam_for("resnet34") == 0.1


# ---------------------------------------------------------------------------- fits (faked g)


def test_fits_make_one_row_per_pair_and_layer_with_the_study_settings(faked_fits) -> None:
    study, rows, calls = faked_fits
    n_layers = len(study.layer_list())
    assert len(rows) == n_layers * (3 + 2)
    assert rows.groupby("setting").size().to_dict() == {
        ins.CASE1: 3 * n_layers,
        ins.CASE2: 2 * n_layers,
    }
    for x_spec, x_layer, t_spec, t_layer, kwargs in calls:
        assert x_layer == t_layer and x_spec.arch == t_spec.arch
        assert kwargs["lam"] == (8.0 if x_spec.arch == "alexnet" else 0.1)
        assert kwargs["g_epochs"] == 7 and kwargs["order"] == 2
    case2 = rows[rows["setting"] == ins.CASE2]
    assert set(case2["x"].str.split("/").str[2]) == {"half0", "half1"}
    assert {"Var(xDelta)", "Var(xDelta) raw", "from_cache", "seconds"} <= set(rows.columns)


def test_table2_makes_the_same_calls_as_table1(monkeypatch, faked_fits, fake_consistency) -> None:
    study, _, calls = faked_fits
    again: list = []
    monkeypatch.setattr(ex, "get_consistency", fake_consistency(again))
    ins.fits(study, cases=[ins.CASE1])
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
    c1 = table[(table["setting"] == ins.CASE1) & (table["column"] == "conv4 @ AlexNet")].iloc[0]
    assert c1["instability"] == pytest.approx(0.1 + 0.01 * (1 + 2 + 2) / 3)
    assert c1["min"] == pytest.approx(0.11) and c1["max"] == pytest.approx(0.12)
    c2 = table[(table["setting"] == ins.CASE2) & (table["column"] == "conv5 @ AlexNet")].iloc[0]
    assert c2["instability"] == pytest.approx(0.15 + 0.001)
    with pytest.raises(ValueError, match="exactly two fits"):
        ins.instability_table(
            rows[~((rows["setting"] == ins.CASE2) & rows["x"].str.contains("half1"))]
        )


# ---------------------------------------------------------------------------- claims


def test_the_paper_satisfies_its_own_table1_claims() -> None:
    claims = ins.instability_claims(ins.paper_frame(paper_table(1)), "value")
    assert len(claims) == 2 * 4
    assert claims["holds"].all()


def test_instability_claims_fail_where_the_planted_order_is_reversed() -> None:
    frame = ins.paper_frame(paper_table(1))
    frame.loc[frame["column"] == "conv5 @ AlexNet", "value"] = 0.01  # conv5 now below conv4
    frame.loc[frame["column"] == "last conv @ ResNet-34", "value"] = 0.15  # not the worst
    claims = ins.instability_claims(frame, "value").set_index(["setting", "claim"])["holds"]
    failed = {claim for (_, claim), ok in claims.items() if not ok}
    assert failed == {
        "AlexNet: the deeper layer is less stable (conv4 < conv5)",
        "deeper networks are less stable (AlexNet < VGG-16 < ResNet-34, mean over layers)",
        "ResNet-34 is the least stable",
    }
    assert claims[ins.CASE1, "VGG-16: the deeper layer is less stable (conv4_3 < conv5_3)"]


def test_claims_needing_absent_layers_are_skipped() -> None:
    frame = pd.DataFrame(
        {"setting": [ins.CASE1], "arch": ["vgg16"], "layer": ["conv4_3"], "instability": [0.2]}
    )
    assert ins.instability_claims(frame).empty


def test_pairwise_support_counts_matched_fits(faked_fits) -> None:
    _, rows, _ = faked_fits
    support = ins.pairwise_support(rows).set_index(["setting", "arch"])
    assert support.loc[(ins.CASE1, "alexnet"), ["n_holds", "n_fits"]].tolist() == [3, 3]
    assert support.loc[(ins.CASE2, "vgg16"), ["shallow", "deep"]].tolist() == ["conv4_3", "conv5_3"]
    assert "resnet34" not in support.index.get_level_values("arch")
