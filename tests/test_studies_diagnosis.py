"""kc.studies.diagnosis.run: Sec. 4.1's classifier inputs, heads, tables and verdicts."""

import math

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch
from conftest import notebook_params
from torch import nn

from kc import evaluate_consistency, fit_consistency
from kc.book import plotting
from kc.engine import finetune as ft
from kc.engine import zoo
from kc.studies.diagnosis import arms as da
from kc.studies.diagnosis import run as dg
from kc.studies.diagnosis import tables as dt
from kc.studies.paper import SEC41_ROWS, paper_table

matplotlib.use("Agg")


def _pair(seed: int, n: int = 96, c: int = 4, size: tuple[int, int] = (5, 5)):
    """x_weak >= 0 (like a ReLU output) and x_strong a scaled, shifted channel permutation."""
    gen = torch.Generator().manual_seed(seed)
    x_weak = torch.relu(torch.randn(n, c, *size, generator=gen)) * 3.0
    x_strong = 0.5 * x_weak[:, torch.randperm(c, generator=gen)] - 1.0
    return x_weak, x_strong


def _fit(x, x_star, **kw):
    return fit_consistency(x, x_star, order=1, max_steps=400, lr=3e-2, progress=False, **kw)


@pytest.fixture(scope="module")
def fitted():
    x_w, x_s = _pair(0)
    return x_w, x_s, _fit(x_w, x_s), _fit(x_s, x_w)


# ---------------------------------------------------------------------------- small helpers


def test_study_from_the_notebooks_parameters():
    study = dg.DiagnosisStudy.from_params(notebook_params("sec41_diagnosis", SEEDS=[3, 1], TRAIN_LIMIT=600))
    assert study.seed == 3 and study.head_init == "fresh"
    assert study.paper_names == {"weak": "alexnet conv5", "strong": "resnet34 last14"}
    spec = study.spec("alexnet")
    assert (spec.task, spec.seed, spec.datasets, spec.train_limit) == (
        "all", 3, ("fashion-mnist",), 600,
    )  # fmt: skip
    # both directions of a diagnosis fit touch AlexNet: both use AlexNet's lambda
    assert study.g.lam_for("alexnet", "resnet34") == study.g.lam_for("resnet34", "alexnet") == 8.0
    assert study.g.lam_for("vgg16", "resnet34") == 0.1
    with pytest.raises(ValueError, match="HEAD_INIT must be one of .*, got 'warm'"):
        dg.DiagnosisStudy.from_params(notebook_params("sec41_diagnosis", HEAD_INIT="warm"))


def test_one_pair_of_networks_per_seed():
    study = dg.DiagnosisStudy.from_params(notebook_params("sec41_diagnosis", SEEDS=[3, 1, 4]))
    assert study.seeds == (3, 1, 4)
    pairs = study.pairs()
    assert [p.seed for p in pairs] == [3, 1, 4] and all(p.seeds == (3, 1, 4) for p in pairs)
    assert pairs[1].spec("alexnet").seed == pairs[1].spec("resnet34").seed == 1
    assert pairs[0] == study  # the first pair is the study itself (its cache keys unchanged)
    with pytest.raises(ValueError, match="distinct"):
        dg.DiagnosisStudy.from_params(notebook_params("sec41_diagnosis", SEEDS=[1, 1]))


def test_resize_mode():
    assert dg.resize_mode((64, 8, 8), (32, 8, 8)) is None
    assert dg.resize_mode((256, 13, 13), (256, 14, 14)) == "pool"
    with pytest.raises(ValueError, match=r"expected shapes \(C, H, W\)"):
        dg.resize_mode((8, 8), (64, 8, 8))


def test_roles_follow_the_accuracies():
    assert dg.roles(56.97, 73.09) == ("a", "b")
    assert dg.roles(80.0, 70.0) == ("b", "a")
    assert dg.roles(70.0, 70.0) == ("a", "b")  # a tie keeps the paper's roles
    with pytest.raises(ValueError, match="acc_b must be a finite accuracy, got nan"):
        dg.roles(70.0, float("nan"))


def test_paired_se_matches_a_direct_computation():
    gen = torch.Generator().manual_seed(1)
    a, b = torch.rand(200, generator=gen) < 0.6, torch.rand(200, generator=gen) < 0.7
    d = b.double() - a.double()
    expected = 100 * math.sqrt(((d - d.mean()) ** 2).mean().item() / 200)
    assert da.paired_se(a, b) == pytest.approx(expected)
    assert da.paired_se(a, a) == 0.0
    with pytest.raises(ValueError, match="same images"):
        da.paired_se(a, b[:10])


# ---------------------------------------------------------------------------- features


def test_apply_g_equals_the_consistent_part_of_the_decomposition(fitted):
    x_w, x_s, g_ws, _ = fitted
    res = evaluate_consistency(g_ws, x_w, x_s)
    torch.testing.assert_close(da.apply_g(g_ws, x_w, batch_size=17), res.consistent)
    with pytest.raises(ValueError, match=r"expected x of shape \(N, C, H, W\)"):
        da.apply_g(g_ws, x_w[:, :, 0, 0])


def test_classifier_inputs_units_and_identities(fitted):
    x_w, x_s, g_ws, g_sw = fitted
    out = da.classifier_inputs(x_w, x_s, g_ws, g_sw)
    assert list(out) == list(da.ARMS)
    assert out["raw"] is x_w
    # g(x_W) + x_S^Delta is x_S itself, carried into W's raw units by a global affine map
    expected = (x_s - g_ws.x_star_mean) / g_ws.x_star_std * g_ws.x_std + g_ws.x_mean
    torch.testing.assert_close(out["blind_spots_added"], expected, atol=1e-5, rtol=1e-5)
    # ... so it has the mean and variance of raw x_W (both normalisers use the same images)
    assert float(out["blind_spots_added"].mean()) == pytest.approx(float(x_w.mean()), abs=1e-4)
    assert float(out["blind_spots_added"].std()) == pytest.approx(float(x_w.std()), rel=1e-3)
    # g_sw(x_S) in raw x_W units is the consistent part of x_W
    res = evaluate_consistency(g_sw, x_s, x_w)
    raw_consistent = res.consistent * g_sw.x_star_std + g_sw.x_star_mean
    torch.testing.assert_close(out["unreliable_removed"], raw_consistent, atol=1e-5, rtol=1e-5)
    # a permuted copy is nearly fully reconstructed: little is removed
    rel = (out["unreliable_removed"] - x_w).var() / x_w.var()
    assert float(rel) < 0.5


def test_classifier_inputs_pool_a_larger_strong_map_onto_the_weak_size():
    x_w, _ = _pair(2, size=(5, 5))
    _, x_s = _pair(3, size=(6, 6))
    g_ws = _fit(x_w, x_s, resize="pool")
    g_sw = _fit(x_s, x_w, resize="pool")
    out = da.classifier_inputs(x_w, x_s, g_ws, g_sw)
    assert all(tuple(t.shape) == tuple(x_w.shape) for t in out.values())


def test_classifier_inputs_reject_bad_shapes(fitted):
    x_w, x_s, g_ws, g_sw = fitted
    with pytest.raises(ValueError, match="take 4 channels but the strong feature has 3"):
        da.classifier_inputs(x_w, x_s[:, :3], g_ws, g_sw)
    with pytest.raises(ValueError, match="of the same N images"):
        da.classifier_inputs(x_w, x_s[:10], g_ws, g_sw)


# ---------------------------------------------------------------------------- classifiers


def _alexnet():
    torch.manual_seed(5)
    return zoo.build("alexnet", num_classes=3, input_size=32, in_channels=1, width=0.0625).eval()


def test_make_head_fresh_is_seeded_and_finetune_copies_the_trained_layers():
    model = _alexnet()
    kw = dict(num_classes=3, input_size=32, width=0.0625)
    a = da.make_head(model, "alexnet", "conv5", init="fresh", seed=1, **kw)
    b = da.make_head(model, "alexnet", "conv5", init="fresh", seed=1, **kw)
    c = da.make_head(model, "alexnet", "conv5", init="fresh", seed=2, **kw)
    f = da.make_head(model, "alexnet", "conv5", init="finetune", seed=1, **kw)
    _, trained = zoo.split(model, "alexnet", "conv5")
    params = [[p.detach() for p in h.parameters()] for h in (a, b, c, f, trained)]
    assert all(torch.equal(p, q) for p, q in zip(params[0], params[1], strict=True))
    assert not torch.equal(params[0][-1], params[2][-1])
    assert all(torch.equal(p, q) for p, q in zip(params[3], params[4], strict=True))
    with torch.no_grad():  # the fine-tuning copy shares nothing with the network
        next(f.parameters()).add_(1.0)
    assert not torch.equal(next(f.parameters()), next(trained.parameters()))
    x = torch.randn(
        2, *zoo.feature_shape("alexnet", "conv5", input_size=32, width=0.0625, in_channels=1)
    )
    assert tuple(a(x).shape) == (2, 3)
    with pytest.raises(ValueError, match="init must be one of"):
        da.make_head(model, "alexnet", "conv5", init="pretrained", seed=0, **kw)


def _planted_arms(n: int, seed: int):
    """'raw' carries no label information, the other two arms encode the label."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    noise = torch.randn(n, 2, 2, 2, generator=gen)
    code = torch.zeros(n, 2, 2, 2)
    code[:, 0, 0, 0] = 6.0 * (y == 0)
    code[:, 1, 0, 0] = 6.0 * (y == 1)
    inputs = {"raw": noise, "blind_spots_added": noise + code, "unreliable_removed": code}
    return inputs, y


def _linear_head():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(1), nn.Linear(8, 3))


def test_train_arms_finds_the_informative_inputs():
    train_x, train_y = _planted_arms(300, 0)
    test_x, test_y = _planted_arms(150, 1)
    table = da.train_arms(
        _linear_head,
        train_x,
        train_y,
        test_x,
        test_y,
        budget=ft.Budget(epochs=15, lr=0.05, batch_size=32),
        device="cpu",
    )
    assert list(table["arm"]) == list(da.ARMS)
    acc = table.set_index("arm")
    assert acc.loc["raw", "accuracy"] < 60.0
    assert acc.loc["blind_spots_added", "accuracy"] > 90.0
    assert acc.loc["unreliable_removed", "accuracy"] > 90.0
    assert acc.loc["raw", "gain_se"] == 0.0
    gains = acc["accuracy"] - acc.loc["raw", "accuracy"]
    pd.testing.assert_series_equal(acc["gain"], gains, check_names=False)
    assert (acc.loc[["blind_spots_added", "unreliable_removed"], "gain_se"] > 0).all()


def test_train_arms_with_identical_inputs_and_no_training_agree():
    x, y = _planted_arms(60, 2)
    same = dict.fromkeys(da.ARMS, x["raw"])
    table = da.train_arms(
        _linear_head,
        same,
        y,
        same,
        y,
        budget=ft.Budget(epochs=0, lr=0.1, batch_size=16),
        device="cpu",
    )
    assert table["accuracy"].nunique() == 1 and (table["gain"] == 0).all()
    with pytest.raises(
        ValueError, match=r"missing classifier inputs for arms \['raw', 'unreliable_removed'\]"
    ):
        da.train_arms(
            _linear_head,
            {"blind_spots_added": x["raw"]},
            y,
            same,
            y,
            budget=ft.Budget(epochs=0, lr=0.1, batch_size=16),
        )
    with pytest.raises(ValueError, match="epochs must be an int >= 0, got -1"):
        ft.Budget(epochs=-1, lr=0.1, batch_size=16)


# ---------------------------------------------------------------------------- tables, verdicts


def _table(
    acc_weak=60.0,
    acc_strong=70.0,
    raw=61.0,
    added=69.0,
    removed=63.0,
    names=("alexnet conv5", "resnet34 last14"),
):
    return dt.results_table(
        names={"weak": names[0], "strong": names[1]},
        net_accuracy={"weak": acc_weak, "strong": acc_strong},
        arm_accuracy={"raw": raw, "blind_spots_added": added, "unreliable_removed": removed},
        gain_se={"blind_spots_added": 1.0, "unreliable_removed": 0.5},
        instability={"blind_spots": 0.4, "unreliable": 0.3},
    )


def test_results_table_keys_match_the_papers_table():
    table = _table()
    assert list(table.columns) == ["setting", "row", "column", "value", "se", "unit"]
    paper = paper_table("4.1")
    keys = set(zip(paper["setting"], paper["row"], strict=True))
    assert set(SEC41_ROWS.values()) == keys  # every paper number has one row of ours
    vals = table.set_index(["setting", "row"])["value"]
    assert vals[SEC41_ROWS["gain_blind"]] == pytest.approx(8.0)
    assert vals[SEC41_ROWS["unreliable_removed"]] == 63.0
    with pytest.raises(ValueError, match=r"missing entries \['unreliable_removed'\]"):
        dt.results_table(
            names={"weak": "a", "strong": "b"},
            net_accuracy={"weak": 1.0, "strong": 2.0},
            arm_accuracy={"raw": 1.0, "blind_spots_added": 2.0},
            gain_se={"blind_spots_added": 1.0, "unreliable_removed": 1.0},
            instability={"blind_spots": 0.1, "unreliable": 0.1},
        )


def test_compare_with_paper_keeps_our_order_and_adds_the_papers_numbers():
    table = _table()
    merged = dt.compare_with_paper(table, paper_table("4.1"))
    assert list(merged["row"]) == list(table["row"])
    assert merged["paper"].notna().sum() == 5
    row = merged.set_index("row").loc["classifier on raw x_A"]
    assert row["paper"] == 60.3 and row["difference"] == pytest.approx(61.0 - 60.3)


PAPER_NAMES = {"weak": "alexnet conv5", "strong": "resnet34 last14"}
PAPER = paper_table("4.1")


def _pairs(*tables):
    return dt.pairs_table(dict(enumerate(tables)))


def test_pairs_table_and_mean_table_average_over_pairs():
    per_pair = _pairs(_table(), _table(added=71.0, acc_strong=72.0), _table(added=67.0))
    assert list(per_pair.columns) == ["seed", "setting", "row", "column", "value", "se", "unit"]
    assert per_pair.groupby("seed").size().tolist() == [9, 9, 9]
    mean = dt.mean_table(per_pair).set_index(["setting", "row"])
    gain = mean.loc[SEC41_ROWS["gain_blind"]]  # gains 8, 10, 6: mean 8, SE 2 / sqrt(3)
    assert gain["value"] == pytest.approx(8.0) and gain["se"] == pytest.approx(2 / 3**0.5)
    assert gain["n_pairs"] == 3 and gain["unit"] == "points"
    one = dt.mean_table(_pairs(_table())).set_index(["setting", "row"])
    assert one.loc[SEC41_ROWS["gain_blind"], "se"] == 1.0  # one pair: its paired SE
    assert list(dt.compare_with_paper(dt.mean_table(per_pair), PAPER)["row"]) == list(_table()["row"])
    with pytest.raises(ValueError, match="at least one pair"):
        dt.pairs_table({})


def test_claims_are_decided_over_pairs_of_networks():
    per_pair = _pairs(_table(), _table(added=70.0, removed=64.0), _table(added=68.5, removed=62.5))
    claims = dt.sec41_claims(per_pair, PAPER, PAPER_NAMES)
    assert [c.id for c in claims] == ["sec41.roles", "sec41.blind_spots", "sec41.unreliable"]
    assert [c.status for c in claims] == ["reproduced"] * 3
    assert "over 3 pairs" in claims[1].evidence and "improved in 3/3 pairs" in claims[1].evidence
    # each pair's gain also in units of its paired standard error (8 / 1, 2 / 0.5)
    assert "+8.00 (+8.0 SE)" in claims[1].evidence and "+2.00 (+4.0 SE)" in claims[2].evidence
    assert claims[1].paper == "gain +16.1 points" and claims[2].paper == "60.3% -> 65.6%"
    assert claims[0].paper == "ResNet-34 73.09% vs AlexNet 56.97%"
    assert ", difference +" in claims[0].evidence and "gain" not in claims[0].evidence  # not a gain
    assert "positive in" in claims[0].evidence and "improved in 3/3" in claims[1].evidence
    assert claims[1].numbers["gain"] == pytest.approx((8.0 + 9.0 + 7.5) / 3)
    # gains of both signs: the mean does not clear its standard error
    mixed = _pairs(_table(added=64.0), _table(added=58.0, removed=60.0), _table(added=62.0))
    statuses = [c.status for c in dt.sec41_claims(mixed, PAPER, PAPER_NAMES)]
    assert statuses == ["reproduced", "not reproduced", "not reproduced"]


def test_one_pair_of_networks_is_not_testable_no_spread():
    """However large its gain over its paired SE, one pair cannot tell a gain from seed noise."""
    for table in (_table(), _pairs(_table())):
        claims = dt.sec41_claims(table, PAPER, PAPER_NAMES)
        assert [c.shown_status for c in claims] == ["not testable: no spread"] * 3
        assert "one pair, gain +8.00 points" in claims[1].evidence
        assert "one pair, difference +" in claims[0].evidence
        assert claims[0].evidence.endswith("telling a difference from seed noise needs two or more pairs")


def test_claims_say_so_when_the_roles_swap():
    swapped = _table(acc_weak=70.0, acc_strong=75.0, names=("resnet34 last14", "alexnet conv5"))
    roles, *rest = dt.sec41_claims(_pairs(swapped, swapped), PAPER, PAPER_NAMES)
    assert roles.status == "not reproduced" and roles.numbers["gain"] == pytest.approx(-5.0)
    assert "alexnet conv5 is the stronger network" in roles.evidence
    assert "resnet34 last14" in rest[0].claim  # the diagnosis is of the weaker network
    assert "in every pair alexnet conv5 is the stronger network" in roles.evidence
    assert not any("roles differ" in c.evidence for c in (roles, *rest))
    roles, *rest = dt.sec41_claims(_pairs(_table(), swapped), PAPER, PAPER_NAMES)
    assert "the roles differ between pairs: in pair(s) 1 alexnet conv5 is the stronger" in (
        roles.evidence
    )
    assert "alexnet conv5 / resnet34 last14" in rest[0].claim
    per_pair = "the roles differ between pairs, weak network per pair (seed): 0: alexnet conv5, 1: "
    assert all(per_pair + "resnet34 last14" in c.evidence for c in rest)
    assert roles.status == "not reproduced"  # +10 and -5: the mean +2.5 is below its SE 7.5
    assert roles.numbers["gain"] == pytest.approx(2.5) and roles.numbers["se"] == pytest.approx(7.5)


# ---------------------------------------------------------------------------- figure


def test_component_figure_has_one_row_per_image(fitted):
    x_w, x_s, g_ws, g_sw = fitted
    res = [evaluate_consistency(g_ws, x_w, x_s), evaluate_consistency(g_sw, x_s, x_w)]
    assert tuple(plotting.channel_maps(x_w).shape) == (96, 5, 5)
    images = torch.rand(3, 1, 32, 32)
    to_raw = [g_ws.normalizer("x_star"), None]
    fig = plotting.component_figure(images, [("a -> b", res[0]), ("b -> a", res[1])], to_raw=to_raw)
    assert len(fig.axes) == 3 * 7
    # the raw-unit panels of direction 0 are the normalised maps rescaled by its std
    raw = fig.axes[1].get_images()[0].get_array()
    expected = plotting.channel_maps(to_raw[0].inverse(res[0].target[:1]))[0].numpy()
    np.testing.assert_allclose(raw, expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="got 1 to_raw normalisers for 2 directions"):
        plotting.component_figure(images, [("a", res[0]), ("b", res[1])], to_raw=[None])
    import matplotlib.pyplot as plt

    plt.close("all")
