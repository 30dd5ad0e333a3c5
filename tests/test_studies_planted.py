"""kc.studies.planted.run: design, summary, identifiability and claims on hand-made rows."""

import numpy as np
import pandas as pd
import pytest

from kc.studies.planted import run as ps

PARAMS = dict(PLANTED_DEPTHS=[0, 2], PLANTED_N=64, PLANTED_STEPS=3, PLANTED_SEEDS=[0],
              ORDER=2, LAMBDA=0.1, PLANTED_VARY={"lam": [0.0], "noise": [0.0, 0.5]})  # fmt: skip


def _row(depth, varied, noise, linear, nonlinear, err=0.0, seed=0, **extra):
    """A run row whose recovered shares miss the planted ones by ``err`` each."""
    planted = {"planted_linear": linear, "planted_nonlinear": nonlinear, "planted_noise": noise}
    got = {"share_x0": linear + err, "share_higher": nonlinear + err, "instability": noise + err}
    errs = {"err_linear": err, "err_higher": err, "err_noise": err}
    return dict(depth=depth, varied=varied, lam=0.1, order=2, n=64, noise=noise, seed=seed,
                seconds=0.1, **planted, **got, **errs, **extra)  # fmt: skip


def test_settings_and_design():
    s = ps.Settings.from_params(PARAMS)
    cases = s.cases()
    assert len(cases) == 2 * 4  # base, lam=0, noise=0, noise=0.5 per depth
    assert {c["varied"] for c in cases} == {"base", "lam", "noise"}
    assert all(isinstance(c["n"], int) for c in cases)
    with pytest.raises(ValueError, match="PLANTED_VARY factors must be among"):
        ps.Settings.from_params({**PARAMS, "PLANTED_VARY": {"width": [1]}})
    with pytest.raises(ValueError, match="lack \\['PLANTED_DEPTHS'\\]"):
        ps.Settings.from_params({k: v for k, v in PARAMS.items() if k != "PLANTED_DEPTHS"})


def test_perfect_recovery_is_identifiable_and_reproduces_every_claim():
    rows = pd.DataFrame([
        _row(0, "base", 0.2, 0.8, 0.0, linear_cka=0.7),
        _row(0, "noise", 0.5, 0.5, 0.0, linear_cka=0.5),
        _row(2, "base", 0.2, 0.5, 0.3, linear_cka=0.6),
        _row(2, "noise", 0.0, 0.6, 0.4, linear_cka=0.8),
    ])  # fmt: skip
    table = ps.summary(rows)
    assert (table["n_seeds"] == 1).all() and (table["max_abs_err_noise"] == 0).all()
    ident = ps.identifiability(table)
    assert ident["identifiable"].all()
    assert ps.account(ident)[0].startswith("depth 0: identifiable in 2/2 cases")
    status = {c.id: c.status for c in ps.claims(table)}
    assert status == dict.fromkeys(
        ["planted.linear", "planted.nonlinear", "planted.noise", "planted.cka_vs_noise"],
        "reproduced",
    )


def test_errors_fail_claims_and_missing_cases_are_not_testable():
    rows = pd.DataFrame([_row(0, "base", 0.2, 0.8, 0.0, err=0.1, seed=s) for s in (0, 1)])
    table = ps.summary(rows)
    assert table["n_seeds"].iloc[0] == 2
    assert not ps.identifiability(table)["identifiable"].any()
    status = {c.id: c.status for c in ps.claims(table)}
    assert status["planted.linear"] == "not reproduced"
    assert status["planted.noise"] == "not reproduced"
    assert status["planted.nonlinear"] == "not testable"  # no depth >= 1
    assert status["planted.cka_vs_noise"] == "not testable"


def test_baseline_response_turns_instability_into_consistency():
    rows = pd.DataFrame([_row(0, "base", 0.2, 0.8, 0.0, linear_cka=0.7)])
    long = ps.baseline_response(ps.summary(rows))
    kc = long[long["measure"] == "kc_consistency"]["value"]
    assert kc.tolist() == pytest.approx([0.8])
    assert set(long["measure"]) == {"linear_cka", "kc_consistency"}
    rows = pd.DataFrame([_row(0, "base", 0.2, 0.8, 0.0, linear_cka=0.7),
                         _row(0, "noise", 0.5, 0.5, 0.0, linear_cka=0.4)])  # fmt: skip
    drop = ps.noise_drop(ps.baseline_response(ps.summary(rows)))
    assert drop.loc["linear_cka", 0] == pytest.approx(0.3)
    assert drop.loc["kc_consistency", 0] == pytest.approx(0.3)  # 0.8 -> 0.5


def test_run_on_a_tiny_design():
    s = ps.Settings.from_params({**PARAMS, "PLANTED_DEPTHS": [0], "PLANTED_VARY": {}})
    result = ps.run(s, progress=False)
    assert len(result.rows) == 1
    row = result.rows.iloc[0]
    assert row["planted_noise"] == pytest.approx(0.2, abs=0.05)
    cols = ["share_x0", "share_higher", "instability", "linear_cka", "ridge_r2"]
    assert np.isfinite(result.rows[cols].to_numpy(dtype=float)).all()
