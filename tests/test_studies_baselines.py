"""kc.studies.baselines: rank agreement, detection scores, claims, and run() with faked fits."""

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from kc.engine import experiments as ex
from kc.studies import baselines as bl

PARAMS = dict(DATASET="fashion-mnist", EPOCHS=1, WIDTH=0.125, INPUT_SIZE=32, TRAIN_LIMIT=600,
              EVAL_LIMIT=500, OPTIMIZER="adam", LR=1e-3, BATCH_SIZE=64, SEEDS=[0, 1, 2],
              ORDER=2, LAMBDA=0.1, LAMBDA_ALEXNET=8.0, FIT_LIMIT=32, TEST_LIMIT=24, G_STEPS=200,
              G_LR=0.003, G_BATCH_SIZE=64, DEVICE="cpu", LAYERS={"alexnet": ["conv4", "conv5"]},
              BOTH_DIRECTIONS=False, PLANTED_N=64, PLANTED_STEPS=3, PLANTED_SEEDS=[0])  # fmt: skip


def test_table1_specs_are_the_table1_notebooks():
    s = bl.Settings.from_params(PARAMS)
    pairs = s.pairs("alexnet")
    assert [p[0] for p in pairs] == [bl.CASE1] * 3 + [bl.CASE2] * 2
    x, t = pairs[0][1:]
    assert (x.seed, t.seed, x.task) == (0, 1, "all")
    half = pairs[-1][1]
    assert half.task == "half1" and half.train_limit == 300 and half.test_limit == 500
    assert x == ex.NetSpec("alexnet", datasets=("fashion-mnist",), seed=0, epochs=1,
                           width=0.125, input_size=32, train_limit=600, test_limit=500,
                           optimizer="adam", lr=1e-3, batch_size=64)  # fmt: skip
    assert s.table1.g.lam_for("alexnet") == 8.0 and s.table1.g.lam_for("vgg16") == 0.1
    with pytest.raises(ValueError, match="seeds must be at least two distinct"):
        bl.Settings.from_params({**PARAMS, "SEEDS": [0]})
    with pytest.raises(ValueError, match="unknown layers \\['conv9'\\]"):
        bl.Settings.from_params({**PARAMS, "LAYERS": {"alexnet": ["conv9"]}})


def test_agreement_orients_procrustes_and_drops_flat_measures():
    up = np.arange(5.0)
    table = pd.DataFrame({"linear_cka": up, "procrustes": 10 - up, "pwcca": np.ones(5),
                          "kc_consistency": up**2})  # fmt: skip
    corr = bl.agreement(table)
    assert corr.loc["linear_cka", "procrustes"] == pytest.approx(1.0)
    assert corr.loc["linear_cka", "kc_consistency"] == pytest.approx(1.0)
    assert math.isnan(corr.loc["pwcca", "linear_cka"])
    account = bl.agreement_account(corr)
    assert account["spearman"].iloc[0] == pytest.approx(1.0) and account["agree"].iloc[0]
    lines = bl.describe_agreement(account)
    assert lines[-1] == "constant over the rows (cannot rank them): pwcca"
    with pytest.raises(ValueError, match="at least 3 rows, got 2"):
        bl.agreement(table.head(2))


def _planted(nonlinear_value: float) -> pd.DataFrame:
    rows = []
    for kind, v in (("unrelated", 0.2), ("linear", 0.9), ("nonlinear", nonlinear_value)):
        row = {m: v for m in bl.PROPERTIES}
        row["procrustes"] = 1.2 - v  # a distance: identical = 0
        rows.append(dict(row, kind=kind, seed=0, lam=0.1, kc_consistency=v, share_higher=v,
                         share_x0=0.0, instability=1 - v, planted_nonlinear=0.8))  # fmt: skip
    return pd.DataFrame(rows)


def test_detection_scale():
    det = bl.detection(_planted(0.2)).set_index("measure")
    assert det.loc["linear_cka", "nonlinear"] == pytest.approx(0.0)
    assert det.loc["linear_cka", "linear"] == pytest.approx(0.7 / 0.8)
    # the distance is scored on the same scale: 0 = unrelated, 1 = identical
    assert det.loc["procrustes", "linear"] == pytest.approx(0.7 / 1.0)


def test_claims_few_rows_not_testable_and_planted_verdicts():
    result = bl.Result(pd.DataFrame({"linear_cka": [0.1, 0.2]}), _planted(0.2), None)
    status = {c.id: c.status for c in bl.claims(result)}
    assert status["baselines.kc_vs_linear_cka"] == "not testable"
    assert status["baselines.linear_agree"] == "not testable"
    assert status["baselines.planted_linear_miss"] == "reproduced"
    assert status["baselines.planted_orders_recover"] == "not reproduced"  # 0.2 < 0.4
    seen = bl.Result(pd.DataFrame({"linear_cka": [0.1]}), _planted(0.7), None)
    status = {c.id: c.status for c in bl.claims(seen)}
    assert status["baselines.planted_linear_miss"] == "not reproduced"
    assert status["baselines.planted_orders_recover"] == "reproduced"


def test_run_with_faked_fits(monkeypatch):
    calls = []

    def fake_consistency(x, x_layer, t, t_layer, **kwargs):
        calls.append((x, t, kwargs))
        v = pd.Series([0.5, 0.1, 0.05, 0.35, 1.0],
                      index=["Var(x0)", "Var(x1)", "Var(x2)", "Var(delta)", "Var(x*)"])  # fmt: skip
        return SimpleNamespace(instability=0.35, variances=v)

    def fake_features(spec, layer, *, split, task, limit, **kwargs):
        assert task == "all"
        gen = torch.Generator().manual_seed(spec.seed * 7 + len(spec.task) + (split == "test"))
        return torch.randn(limit, 2, 2, 2, generator=gen), torch.zeros(limit, dtype=torch.long)

    monkeypatch.setattr(ex, "get_consistency", fake_consistency)
    monkeypatch.setattr(ex, "get_features", fake_features)
    result = bl.run(bl.Settings.from_params(PARAMS), progress=False)
    table = result.table
    assert len(table) == 2 * 5 and len(calls) == 10
    assert all(kw["lam"] == 8.0 and kw["g_steps"] == 200 for _, _, kw in calls)
    assert table["kc_consistency"].tolist() == pytest.approx([0.65] * 10)
    assert table["share_higher"].tolist() == pytest.approx([0.15] * 10)
    assert set(bl.measure_columns(table)) >= {*bl.PROPERTIES, "kc_consistency", "share_x0"}
    assert np.isfinite(table[list(bl.PROPERTIES)].to_numpy(dtype=float)).all()
    assert set(result.planted["kind"]) == {"nonlinear", "linear", "unrelated"}
    nl = result.planted[result.planted["kind"] == "nonlinear"].iloc[0]
    assert nl["planted_linear"] == pytest.approx(0.0, abs=0.05)
