"""kc.studies.grounding.run: the ReSi-style scores on small, hand-made inputs."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

import kc.core.measure
from kc.studies.grounding import run as gr


def test_violation_rate_of_a_monotone_sequence_is_zero():
    # similarity falls with distance: s(i, j) = 1 - (j - i) / 10
    sim = {(i, j): 1 - (j - i) / 10 for i in range(5) for j in range(i + 1, 5)}
    assert gr.violation_rate(sim, 5) == 0.0


def test_violation_rate_of_a_reversed_sequence_is_one_and_ties_count_half():
    sim = {(i, j): (j - i) / 10 for i in range(4) for j in range(i + 1, 4)}
    assert gr.violation_rate(sim, 4) == 1.0
    flat = dict.fromkeys(sim, 0.5)
    assert gr.violation_rate(flat, 4) == 0.5


def test_violation_rate_counts_each_comparison():
    # one triplet: s(0,2) beats s(0,1) (violation) but not s(1,2)
    assert gr.violation_rate({(0, 1): 0.4, (0, 2): 0.5, (1, 2): 0.9}, 3) == 0.5
    with pytest.raises(ValueError, match="at least 3 positions, got 2"):
        gr.violation_rate({(0, 1): 1.0}, 2)


def test_auprc_separated_groups_is_one_and_reversed_is_low():
    labels = [True, True, False, False, False]
    assert gr.auprc([0.9, 0.8, 0.3, 0.2, 0.1], labels) == 1.0
    # positives ranked last: precision 1/4 and 2/5 at the two hits
    assert gr.auprc([0.1, 0.2, 0.7, 0.8, 0.9], labels) == pytest.approx((1 / 4 + 2 / 5) / 2)


def test_auprc_ties_get_no_credit():
    # all scores tied: positives ranked after every negative (pessimistic)
    assert gr.auprc([1.0] * 4, [True, False, False, False]) == pytest.approx(1 / 4)
    with pytest.raises(ValueError, match="at least one positive"):
        gr.auprc([1.0, 2.0], [False, False])


def test_spearman_and_constant_input():
    assert gr.spearman([1, 2, 3, 4], [2, 4, 6, 9]) == pytest.approx(1.0)
    assert math.isnan(gr.spearman([1, 1, 1], [1, 2, 3]))


def test_js_divergence_bounds():
    p = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    assert gr.js_divergence(p, p) == pytest.approx(0.0, abs=1e-9)
    q = torch.tensor([[0.0, 1.0], [0.5, 0.5]])
    # disjoint supports: 1 bit on the first sample, 0 on the second
    assert gr.js_divergence(p, q) == pytest.approx(0.5, abs=1e-6)


def test_conv_features_names_every_relu_of_a_plain_net():
    from kc.engine import zoo

    model = zoo.build("alexnet", num_classes=10, input_size=32, in_channels=1, width=0.125)
    feats = gr.conv_features(model, torch.randn(3, 1, 32, 32), batch_size=2)
    assert list(feats) == ["conv1", "conv2", "conv3", "conv4", "conv5"]
    ref = zoo.features(model, "alexnet", "conv5", torch.zeros(3, 1, 32, 32))
    assert feats["conv5"].shape == ref.shape
    with pytest.raises(ValueError, match="features Sequential"):
        gr.conv_features(torch.nn.Linear(2, 2), torch.zeros(1, 2))


def _pairs(good: bool) -> pd.DataFrame:
    """Synthetic pairs: the measure 'linear_cka' is perfect; kc_consistency is perfect when
    ``good`` and reversed otherwise; the others are constant."""
    rows = []
    sign = 1 if good else -1
    for i in range(4):
        for j in range(i + 1, 4):
            d = j - i
            rows.append(dict(test="layer", network="n0", i=i, j=j, linear_cka=1 - d / 10,
                             kc_consistency=sign * (1 - d / 10), share_x0=0.5))  # fmt: skip
    for k, (acc, jsd) in enumerate([(1, 0.1), (2, 0.2), (3, 0.3), (4, 0.4)]):
        rows.append(dict(test="functional", network="a", i=k, j=k + 1, acc_diff=acc, jsd=jsd,
                         linear_cka=1 - acc / 10, kc_consistency=sign * (1 - acc / 10),
                         share_x0=0.5))  # fmt: skip
    for li in range(3):
        for lj in range(li, 3):
            for _ in range(2 if li == lj else 1):
                same = li == lj
                val = 0.9 if same else 0.8 - 0.1 * (lj - li)
                rows.append(dict(test="augmentation", network="n0", i=li, j=lj, same_group=same,
                                 linear_cka=val, kc_consistency=sign * val, share_x0=0.5))  # fmt: skip
    return pd.DataFrame(rows)


def test_scores_of_a_perfect_measure():
    table = gr.scores(_pairs(True), ["linear_cka", "kc_consistency", "share_x0"]).set_index(
        "measure"
    )
    cka = table.loc["linear_cka"]
    assert cka["layer_violation"] == 0.0 and cka["layer_spearman"] == pytest.approx(1.0)
    assert cka["func_acc_spearman"] == pytest.approx(1.0)
    assert cka["func_jsd_spearman"] == pytest.approx(1.0)
    assert cka["aug_violation"] == 0.0 and cka["aug_auprc"] == 1.0
    # a constant measure violates half of the comparisons and cannot rank
    flat = table.loc["share_x0"]
    assert flat["layer_violation"] == 0.5 and math.isnan(flat["layer_spearman"])
    claims = gr.claims(table.reset_index())
    assert [c.status for c in claims] == ["reproduced"] * 3


def test_claims_not_reproduced_and_not_testable():
    table = gr.scores(_pairs(False), ["linear_cka", "kc_consistency"])
    assert [c.status for c in gr.claims(table)] == ["not reproduced"] * 3
    # two layers only and no functional pairs: those tests cannot be made
    pairs = _pairs(True)
    pairs = pairs[
        (pairs["test"] == "augmentation") | ((pairs["test"] == "layer") & (pairs["j"] < 2))
    ]
    table = gr.scores(pairs, ["linear_cka", "kc_consistency"])
    status = {c.id: c.status for c in gr.claims(table)}
    assert status["grounding.layer"] == "not testable"
    assert status["grounding.functional"] == "not testable"
    assert status["grounding.augmentation"] == "reproduced"
    win = gr.winners(table)
    assert set(win["score"]) == {"aug_violation", "aug_auprc"}


def test_settings_from_params_take_the_last_layer_and_check_values():
    params = dict(DATASET="fashion-mnist", EPOCHS=1, WIDTH=0.125, INPUT_SIZE=32, TRAIN_LIMIT=600,
                  EVAL_LIMIT=500, OPTIMIZER="adam", LR=1e-3, BATCH_SIZE=64, SEEDS=[0, 1],
                  ORDER=2, LAMBDA=0.1, LAMBDA_ALEXNET=8.0, FIT_LIMIT=128, TEST_LIMIT=128,
                  G_STEPS=200, G_LR=0.01, G_BATCH_SIZE=64, DEVICE="cpu",
                  GROUNDING_ARCH="alexnet", NOISE_LEVELS=[1.0, 0.0, 0.5], NOISE_REPEATS=2,
                  LAYERS={"alexnet": ["conv4", "conv5"]})  # fmt: skip
    s = gr.Settings.from_params(params)
    assert s.layer == "conv5" and s.noise_levels == (0.0, 0.5, 1.0) and s.lam_arch == 8.0
    assert [n.task for n in s.networks()] == ["all", "all", "half0", "half1"]
    assert s.networks()[2].train_limit == 300
    with pytest.raises(ValueError, match="GROUNDING_ARCH must be alexnet or vgg16"):
        gr.Settings.from_params({**params, "GROUNDING_ARCH": "resnet34"})
    with pytest.raises(ValueError, match="lack \\['NOISE_REPEATS'\\]"):
        gr.Settings.from_params({k: v for k, v in params.items() if k != "NOISE_REPEATS"})


def test_noisy_is_seeded_and_scaled():
    x = torch.randn(4, 1, 8, 8)
    np.testing.assert_array_equal(gr.noisy(x, 0.5, 3), gr.noisy(x, 0.5, 3))
    assert torch.equal(gr.noisy(x, 0.0, 3), x)


def test_fit_tensors_caches_its_scores_by_the_features_content(tmp_path, monkeypatch):
    monkeypatch.setenv("KC_CACHE", str(tmp_path))
    params = dict(DATASET="fashion-mnist", EPOCHS=1, WIDTH=0.125, INPUT_SIZE=32, TRAIN_LIMIT=600,
                  EVAL_LIMIT=500, OPTIMIZER="adam", LR=1e-3, BATCH_SIZE=64, SEEDS=[0, 1],
                  ORDER=1, LAMBDA=0.1, LAMBDA_ALEXNET=8.0, FIT_LIMIT=64, TEST_LIMIT=32,
                  G_STEPS=60, G_LR=0.01, G_BATCH_SIZE=32, DEVICE="cpu",
                  GROUNDING_ARCH="alexnet", NOISE_LEVELS=[0.0, 1.0], NOISE_REPEATS=1,
                  LAYERS={"alexnet": ["conv5"]})  # fmt: skip
    s = gr.Settings.from_params(params)
    gen = torch.Generator().manual_seed(0)
    x, xt = torch.randn(64, 3, 8, 8, generator=gen), torch.randn(32, 3, 8, 8, generator=gen)
    # x* is x at half resolution: g pools x to x*'s size
    train = (x, torch.nn.functional.avg_pool2d(x, 2))
    test = (xt, torch.nn.functional.avg_pool2d(xt, 2))
    calls = []
    original = kc.core.measure.consistency

    def counting(*args, **kwargs):
        calls.append(kwargs.get("resize"))
        return original(*args, **kwargs)

    monkeypatch.setattr(kc.core.measure, "consistency", counting)
    first = gr._fit_tensors(s, train, test)
    again = gr._fit_tensors(s, train, test)
    assert calls == ["pool"] and first == again
    assert first["kc_consistency"] == pytest.approx(1 - first["instability"])
    assert {"share_x0", "share_x1", "fit_steps", "fit_converged"} <= set(first)
    # other features: fitted again
    gr._fit_tensors(s, (train[0] + 1, train[1]), test)
    assert len(calls) == 2


def test_by_position_averages_draws_orders_levels_and_orients_distances():
    rows = [
        {"test": "augmentation", "a": "0.5#0", "b": "2.0#1", "kc_consistency": 0.8, "procrustes": 0.2},
        {"test": "augmentation", "a": "0.5#1", "b": "2.0#0", "kc_consistency": 0.6, "procrustes": 0.4},
        {"test": "augmentation", "a": "0.0#0", "b": "0.5#0", "kc_consistency": 0.9, "procrustes": 0.1},
        {"test": "layer", "a": "conv1", "b": "conv2", "kc_consistency": 0.5, "procrustes": 0.5},
    ]  # fmt: skip
    pairs = pd.DataFrame(rows)
    table = gr.by_position(pairs, "augmentation", ["kc_consistency", "procrustes"])
    assert list(table.index) == ["0.0", "0.5"]
    assert table.loc["0.5", ("kc_consistency", "2.0")] == pytest.approx(0.7)
    assert table.loc["0.5", ("procrustes", "2.0")] == pytest.approx(-0.3)  # a distance, negated
    assert math.isnan(table.loc["0.0", ("kc_consistency", "2.0")])
    layer = gr.by_position(pairs, "layer", ["kc_consistency"])
    assert layer.loc["conv1", ("kc_consistency", "conv2")] == 0.5
    with pytest.raises(ValueError, match="no pairs of test 'functional'"):
        gr.by_position(pairs, "functional")
    with pytest.raises(ValueError, match="unknown measures \\['linear_cka'\\]"):
        gr.by_position(pairs, "layer", ["linear_cka"])
