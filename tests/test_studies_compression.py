"""kc.studies.fig4.compression (Fig. 4 left, Sec. 4.4) and the helpers it shares with born_again."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from kc.book import plotting
from kc.run.runner import PROFILES_DIR
from kc.studies.claims import STATUSES
from kc.studies.fig4 import common as _fig4
from kc.studies.fig4 import compression as co
from kc.studies.instability import run as ins


def smoke_params() -> dict:
    """The smoke profile (what the notebook's ``parameters`` cell holds)."""
    return yaml.safe_load((PROFILES_DIR / "smoke.yaml").read_text())


def settings(**params) -> co.Settings:
    """Settings from the smoke profile with some parameters (UPPER_CASE names) changed."""
    return co.Settings.from_params({**smoke_params(), **params})


def planted_runs(drop_sign: float, rates=(0.5, 0.8, 0.933), seeds=(0, 1, 2)) -> pd.DataFrame:
    """Runs whose discarding grows with the rate; the accuracy drop grows (sign +1) or
    shrinks (sign -1) with it; each seed has its own offset and a little noise."""
    gen = np.random.default_rng(0)
    rows = []
    for seed in seeds:
        for i, amount in enumerate(rates):
            rows.append(
                {
                    "seed": seed,
                    "amount": amount,
                    "sparsity": amount,
                    "accuracy_drop": drop_sign * (2.0 * i + gen.normal(0, 0.1)),
                    "instability": 0.3 + 0.1 * i + 0.02 * seed,
                    "Var(xDelta)": 0.3 + 0.1 * i,
                    "Var(xDelta) raw": 0.03 + 0.01 * i,
                }
            )
    return pd.DataFrame(rows)


def test_settings_from_smoke_profile_use_table1_networks():
    params = {**smoke_params(), "PRUNE_AMOUNTS": [0.933, 0.5]}
    s = co.Settings.from_params(params)
    assert s.amounts == (0.5, 0.933) and s.seeds == tuple(params["FIG4_SEEDS"])
    assert set(s.seeds) <= set(params["SEEDS"])  # the figures' networks are Table 1's
    assert (s.finetune_epochs, s.finetune_lr) == (params["PRUNE_FT_EPOCHS"], params["PRUNE_FT_LR"])
    table1 = ins.InstabilityStudy.from_params(
        {**params, "LAYERS": {"vgg16": ["conv4_3"]}, "BOTH_DIRECTIONS": False}
    )
    for seed in s.seeds:
        assert s.spec(seed) == table1.spec("vgg16", seed)  # same cache key: Table 1's network


def test_settings_accept_every_test_image():
    """TEST_LIMIT null (the paper profile: every test image) bounds N_SHOW by nothing."""
    assert settings(TEST_LIMIT=None, N_SHOW=6).n_show == 6


def test_from_params_names_the_missing_parameters():
    params = {k: v for k, v in smoke_params().items() if k not in ("PRUNE_AMOUNTS", "N_SHOW")}
    with pytest.raises(
        ValueError, match=r"the notebook parameters lack \['N_SHOW', 'PRUNE_AMOUNTS'\]"
    ):
        co.Settings.from_params(params)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"amounts": (0.5, 1.0)}, "amounts must be distinct fractions in \\[0, 1\\)"),
        ({"amounts": (0.5, 0.5)}, "amounts must be distinct"),
        ({"amounts": ()}, "amounts must be distinct"),
        ({"finetune_epochs": -1}, "finetune_epochs must be >= 0, got -1"),
        ({"finetune_lr": 0.0}, "finetune_lr must be > 0, got 0.0"),
        ({"layer": "conv9"}, "unknown layer 'conv9' of vgg16"),
        ({"seeds": (1, 1)}, "seeds must be one or more distinct ints"),
        ({"n_show": 0}, f"n_show must lie in \\[1, test_limit={smoke_params()['TEST_LIMIT']}\\], got 0"),
    ],
)
def test_settings_reject_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(settings(), **kwargs)


def test_claims_follow_the_planted_sign():
    up = {c.id: c for c in co.claims(planted_runs(+1))}
    down = {c.id: c for c in co.claims(planted_runs(-1))}
    acc = "fig4_compression.discarding_vs_accuracy"
    rate = "fig4_compression.discarding_vs_rate"
    assert up[acc].status == "reproduced" and up[acc].numbers["rho"] > 0.8
    assert down[acc].status == "not reproduced" and down[acc].numbers["rho"] < -0.8
    assert up[rate].status == down[rate].status == "reproduced"  # rate vs discarding unchanged
    assert up[acc].numbers["n"] == 9 and set(up[acc].numbers) >= {"rho_seed0", "rho_seed2"}
    assert all(c.status in STATUSES for c in [*up.values(), *down.values()])


def test_claims_not_testable_with_two_rates():
    out = co.claims(planted_runs(+1, rates=(0.5, 0.933)))
    assert [c.status for c in out] == ["not testable", "not testable"]
    assert "2 pruning rate(s)" in out[0].evidence and out[0].numbers == {"n_rates": 2.0}


def test_summary_gives_the_spread_over_seeds():
    runs = planted_runs(+1)
    table = co.summary(runs)
    assert table["amount"].tolist() == [0.5, 0.8, 0.933] and table["n_seeds"].eq(3).all()
    first = runs[runs["amount"] == 0.5]["instability"]
    np.testing.assert_allclose(table.loc[0, "instability mean"], first.mean())
    np.testing.assert_allclose(table.loc[0, "instability std"], first.std(ddof=0))
    np.testing.assert_allclose(table.loc[0, "instability max"], first.max())


def test_rank_correlation_matches_a_hand_computation():
    x, y = [1, 2, 3, 4, 5], [2.0, 1.0, 4.0, 3.0, 5.0]
    ranks_d = np.array([1, -1, 1, -1, 0])  # rank differences
    expected = 1 - 6 * (ranks_d**2).sum() / (5 * (25 - 1))
    assert _fig4.rank_correlation(x, y, "greater")["rho"] == pytest.approx(expected)
    up, down = _fig4.rank_correlation(x, y, "greater"), _fig4.rank_correlation(x, y, "less")
    assert up["p"] < 0.5 < down["p"]
    assert np.isnan(_fig4.rank_correlation(x, [1.0] * 5, "greater")["rho"])
    with pytest.raises(ValueError, match="equal length >= 3"):
        _fig4.rank_correlation([1, 2], [1, 2], "greater")


def test_shown_indices_pick_one_image_per_class():
    labels = torch.tensor([2, 2, 0, 1, 0, 1, 3])
    assert _fig4.shown_indices(labels, 3) == [0, 2, 3]
    assert _fig4.shown_indices(torch.tensor([0, 0, 0]), 2) == [0, 1]  # filled up in order
    with pytest.raises(ValueError, match="n must lie in"):
        _fig4.shown_indices(labels, 8)


def test_figures_draw_planted_runs():
    runs = planted_runs(+1)
    fig = plotting.plot_discarding(runs)
    assert len(fig.axes) == 3
    images = torch.rand(2, 1, 16, 16)
    maps = {"x*": torch.rand(2, 4, 4), "x-Delta at 93.3%": torch.rand(2, 4, 4)}
    result = co.CompressionResult(settings(), runs, images, ["a", "b"], maps)
    grid = plotting.plot_discarded(result)
    assert len(grid.axes) == 3 * 2 + 2  # image row + two component rows, two colour bars


def test_pruning_nothing_keeps_the_original_knowledge(tmp_path, monkeypatch):
    """0% pruned (no fine-tuning) is the original: g rebuilds x* almost fully, and better than
    from the same network with 90% of its weights removed."""
    monkeypatch.setenv("KC_CACHE", str(tmp_path / "cache"))
    s = settings(
        FIG4_SEEDS=[0], PRUNE_AMOUNTS=[0.0, 0.9], PRUNE_FT_EPOCHS=0, EPOCHS=0, WIDTH=0.125,
        TRAIN_LIMIT=64, EVAL_LIMIT=64, ORDER=0, FIT_LIMIT=64, TEST_LIMIT=64,
        G_STEPS=400, G_LR=0.01, G_BATCH_SIZE=8, N_SHOW=2, DEVICE="cpu",
    )  # fmt: skip
    result = co.run(s, progress=False)
    runs = result.runs.set_index("amount")
    assert runs.loc[0.0, "sparsity"] == 0.0 and runs.loc[0.0, "accuracy_drop"] == 0.0
    assert runs.loc[0.9, "sparsity"] == pytest.approx(0.9, abs=1e-3)
    assert runs.loc[0.0, "instability"] < 0.1
    assert runs.loc[0.0, "instability"] < runs.loc[0.9, "instability"]
    assert list(result.maps) == ["x* original", "g(x), 90.0%", "x-Delta, 0.0%",
                                 "x-Delta, 90.0%"]  # fmt: skip
    size = smoke_params()["INPUT_SIZE"]
    assert result.images.shape == (2, 1, size, size) and all(
        m.shape[0] == 2 for m in result.maps.values()
    )


def test_relative_pruning_keeps_every_layer_alive():
    """Han et al.'s per-layer threshold (quality x std) leaves weights in a layer of small
    weights, where one global threshold removes it entirely; both remove the same fraction."""
    from kc.engine import train as tr
    from kc.engine.experiments import _prune_relative

    def net() -> torch.nn.Module:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Conv2d(1, 32, 3), torch.nn.Flatten(),
                                    torch.nn.Linear(32 * 4 * 4, 2))  # fmt: skip
        with torch.no_grad():
            model[2].weight.mul_(1e-3)
        return model

    glob, rel = tr.prune_magnitude(net(), 0.933), _prune_relative(net(), 0.933)
    assert tr.sparsity(glob) == pytest.approx(0.933, abs=1e-3)
    assert tr.sparsity(rel) == pytest.approx(0.933, abs=1e-3)
    assert float((glob[2].weight == 0).float().mean()) == 1.0  # the classifier is gone
    for layer in (rel[0], rel[2]):
        assert 0.85 < float((layer.weight == 0).float().mean()) < 0.98
