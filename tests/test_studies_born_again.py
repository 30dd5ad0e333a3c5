"""kc.studies.fig4.born_again (Fig. 4 right, Sec. 4.5)."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from kc.book import plotting
from kc.run.runner import PROFILES_DIR
from kc.studies.fig4 import born_again as ba


def smoke_params() -> dict:
    """The smoke profile (what the notebook's ``parameters`` cell holds)."""
    return yaml.safe_load((PROFILES_DIR / "smoke.yaml").read_text())


def settings(**params) -> ba.Settings:
    """Settings from the smoke profile with some parameters (UPPER_CASE names) changed."""
    return ba.Settings.from_params({**smoke_params(), **params})


def planted_fits(step: float, generations: int = 4, seeds=(0, 1, 2), noise: float = 0.005):
    """Fits whose blind spots change by ``step`` per generation, a level per seed, an
    independent network at 0.9."""
    gen = np.random.default_rng(1)
    rows = []
    for seed in seeds:
        for g in range(generations):
            value = 0.6 + 0.1 * seed + step * g + gen.normal(0, noise)
            rows.append({"seed": seed, "source": f"generation {g}", "generation": float(g),
                         "instability": value, "Var(xDelta)": value,
                         "Var(xDelta) raw": 0.1 * value})  # fmt: skip
        rows.append({"seed": seed, "source": ba.INDEPENDENT, "generation": float("nan"),
                     "instability": 0.9, "Var(xDelta)": 0.9, "Var(xDelta) raw": 0.09})  # fmt: skip
    return pd.DataFrame(rows)


def test_settings_from_smoke_profile():
    s = ba.Settings.from_params(smoke_params())
    assert s.generations == smoke_params()["GENERATIONS"]
    assert (s.tau, s.weight) == (1.0, 0.5)  # footnote 3
    assert s.independent_seed(0) == 1 and s.independent_seed(1) == 0
    assert settings(FIG4_SEEDS=[4]).independent_seed(4) is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"generations": 0}, "generations must be an int >= 1, got 0"),
        ({"generations": True}, "generations must be an int >= 1, got True"),
        ({"tau": 0.0}, "need tau > 0 and weight >= 0, got 0.0 and 0.5"),
        ({"weight": -1.0}, "need tau > 0 and weight >= 0"),
    ],
)
def test_settings_reject_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(settings(), **kwargs)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_within_seed_slope_recovers_a_planted_line(seed):
    gen = np.random.default_rng(seed)
    groups = np.repeat(np.arange(3), 4)
    x = np.tile(np.arange(4.0), 3)
    y = -0.2 * x + 5.0 * groups + gen.normal(0, 0.01, 12)  # very different levels per group
    out = ba.within_seed_slope(x, y, groups)
    assert out["slope"] == pytest.approx(-0.2, abs=0.01) and out["df"] == 12 - 1 - 3
    assert out["slope_se"] < 0.01 and out["p"] < 1e-6
    # reference: ordinary least squares with one dummy per group (numpy lstsq)
    design = np.column_stack([x, *(groups == k for k in range(3))]).astype(float)
    coef, res, *_ = np.linalg.lstsq(design, y, rcond=None)
    se = np.sqrt(res[0] / (12 - 4) * np.linalg.inv(design.T @ design)[0, 0])
    assert out["slope"] == pytest.approx(coef[0]) and out["slope_se"] == pytest.approx(se)
    assert ba.within_seed_slope(x, -y, groups)["p"] > 1 - 1e-6  # the other direction


def test_within_seed_slope_needs_variation():
    with pytest.raises(ValueError, match="x does not vary within any group"):
        ba.within_seed_slope(np.zeros(4), np.arange(4.0), np.arange(4))


def test_claim_follows_the_planted_trend():
    (down,) = ba.claims(planted_fits(-0.05))
    (up,) = ba.claims(planted_fits(+0.05))
    (flat,) = ba.claims(planted_fits(0.0, noise=0.02))
    assert down.status == "reproduced" and down.numbers["slope"] == pytest.approx(-0.05, abs=0.01)
    assert up.status == "not reproduced" and up.numbers["slope"] > 0
    assert flat.status == "not reproduced" and flat.numbers["p"] > 0.05
    assert down.numbers["rho"] < 0 < up.numbers["rho"]
    assert down.numbers["independent"] == pytest.approx(0.9)
    assert down.numbers["n"] == 12 and down.numbers["n_generations"] == 4


def test_one_teacher_gives_no_spread_however_clear_its_trend():
    (claim,) = ba.claims(planted_fits(-0.05, seeds=(0,)))
    assert claim.shown_status == "not testable: no spread" and "one teacher" in claim.evidence
    assert claim.evidence.endswith("needs two or more teachers (FIG4_SEEDS)") and "gain" not in claim.evidence
    (two,) = ba.claims(planted_fits(-0.05, seeds=(0, 1)))
    assert two.status == "reproduced"


def test_claim_not_testable_with_two_generations():
    (claim,) = ba.claims(planted_fits(-0.05, generations=2))
    assert claim.status == "not testable" and claim.numbers == {"n_generations": 2.0}


def test_summary_orders_generations_then_the_independent_network():
    fits = planted_fits(-0.05)
    table = ba.summary(fits)
    assert table["source"].tolist() == [f"generation {g}" for g in range(4)] + [ba.INDEPENDENT]
    assert table["n_seeds"].eq(3).all()
    g0 = fits[fits["source"] == "generation 0"]["instability"]
    np.testing.assert_allclose(table.loc[0, "instability mean"], g0.mean())
    np.testing.assert_allclose(table.loc[0, "instability min"], g0.min())


def test_figures_draw_planted_fits():
    fits = planted_fits(-0.05)
    nets = pd.DataFrame({"seed": np.repeat([0, 1, 2], 5), "generation": np.tile(range(5), 3),
                         "accuracy": np.linspace(80, 85, 15)})  # fmt: skip
    assert len(plotting.plot_generations(nets, fits).axes) == 3
    maps = {"x*": torch.rand(3, 4, 4), "x-Delta from generation 0": torch.rand(3, 4, 4)}
    result = ba.BornAgainResult(
        settings(), nets, fits, torch.rand(3, 1, 8, 8), list("abc"), maps
    )
    assert len(plotting.plot_blind_spots(result).axes) == 3 * 3 + 2


def test_run_builds_the_lineage_and_its_reference(tmp_path, monkeypatch):
    monkeypatch.setenv("KC_CACHE", str(tmp_path / "cache"))
    s = settings(
        FIG4_SEEDS=[0, 1], GENERATIONS=1, EPOCHS=1, WIDTH=0.125, TRAIN_LIMIT=64, EVAL_LIMIT=64,
        FIT_LIMIT=32, TEST_LIMIT=32, G_STEPS=50, N_SHOW=2, DEVICE="cpu",
    )  # fmt: skip
    result = ba.run(s, progress=False)
    nets = result.networks
    assert nets[["seed", "generation"]].values.tolist() == [[0, 0], [0, 1], [1, 0], [1, 1]]
    assert nets["label"].str.endswith("/gen1").sum() == 2
    fits = result.fits
    assert fits["source"].tolist() == ["generation 0", ba.INDEPENDENT] * 2
    assert fits.loc[1, "x"] == nets.loc[2, "label"]  # seed 0's reference: seed 1's network
    assert np.isfinite(fits["instability"]).all() and (fits["Var(xDelta)"] > 0).all()
    assert list(result.maps) == ["x* (gen 1)", "x-Delta, gen 0"]
    size = smoke_params()["INPUT_SIZE"]
    assert result.images.shape == (2, 1, size, size)
