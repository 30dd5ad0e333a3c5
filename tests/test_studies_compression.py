"""kc.studies.compression (Fig. 4 left, Sec. 4.4) and the helpers it shares with born_again."""

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from kc.claims import STATUSES
from kc.runner import PROFILES_DIR
from kc.studies import _fig4
from kc.studies import compression as co
from kc.studies import instability as ins


def smoke_params() -> dict:
    """The smoke profile plus N_SHOW, which only the notebooks declare."""
    return {**yaml.safe_load((PROFILES_DIR / "smoke.yaml").read_text()), "N_SHOW": 4}


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
    table1 = ins.InstabilityStudy(
        dataset=params["DATASET"], seeds=params["SEEDS"], epochs=params["EPOCHS"],
        width=params["WIDTH"], input_size=params["INPUT_SIZE"],
        train_limit=params["TRAIN_LIMIT"], eval_limit=params["EVAL_LIMIT"],
        optimizer=params["OPTIMIZER"], lr=params["LR"], batch_size=params["BATCH_SIZE"],
    )  # fmt: skip
    for seed in s.seeds:
        assert s.spec(seed) == table1.spec("vgg16", seed)  # same cache key: Table 1's network


def test_from_params_names_the_missing_parameters():
    params = {k: v for k, v in smoke_params().items() if k not in ("PRUNE_AMOUNTS", "N_SHOW")}
    with pytest.raises(
        ValueError, match=r"missing notebook parameters \['N_SHOW', 'PRUNE_AMOUNTS'\]"
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
        ({"n_show": 0}, "n_show must lie in \\[1, test_limit=128\\], got 0"),
    ],
)
def test_settings_reject_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        co.Settings(**kwargs)


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
    fig = co.plot_discarding(runs)
    assert len(fig.axes) == 3
    images = torch.rand(2, 1, 16, 16)
    maps = {"x*": torch.rand(2, 4, 4), "x-Delta at 93.3%": torch.rand(2, 4, 4)}
    result = co.CompressionResult(co.Settings(), runs, images, ["a", "b"], maps)
    grid = co.plot_discarded(result)
    assert len(grid.axes) == 3 * 2 + 2  # image row + two component rows, two colour bars


def test_pruning_nothing_keeps_the_original_knowledge(tmp_path, monkeypatch):
    """0% pruned (no fine-tuning) is the original: g rebuilds x* almost fully, and better than
    from the same network with 90% of its weights removed."""
    monkeypatch.setenv("KC_CACHE", str(tmp_path / "cache"))
    s = co.Settings(
        seeds=(0,), amounts=(0.0, 0.9), finetune_epochs=0, epochs=0, width=0.125,
        train_limit=64, eval_limit=64, order=0, fit_limit=64, test_limit=64,
        g_steps=400, g_lr=0.01, g_batch_size=8, n_show=2, device="cpu",
    )  # fmt: skip
    result = co.run(s, progress=False)
    runs = result.runs.set_index("amount")
    assert runs.loc[0.0, "sparsity"] == 0.0 and runs.loc[0.0, "accuracy_drop"] == 0.0
    assert runs.loc[0.9, "sparsity"] == pytest.approx(0.9, abs=1e-3)
    assert runs.loc[0.0, "instability"] < 0.1
    assert runs.loc[0.0, "instability"] < runs.loc[0.9, "instability"]
    assert list(result.maps) == ["x* original", "g(x), 90.0%", "x-Delta, 0.0%",
                                 "x-Delta, 90.0%"]  # fmt: skip
    assert result.images.shape == (2, 1, 32, 32) and all(
        m.shape[0] == 2 for m in result.maps.values()
    )


def test_relative_pruning_keeps_every_layer_alive():
    """Han et al.'s per-layer threshold (quality x std) leaves weights in a layer of small
    weights, where one global threshold removes it entirely; both remove the same fraction."""
    from kc import train as tr
    from kc.experiments import _prune_relative

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
