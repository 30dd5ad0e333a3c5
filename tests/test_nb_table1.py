"""The Table 1 notebook (instability of learning, Sec. 4.2) runs under the smoke profile."""

import numpy as np
import pytest
from conftest import notebook_params, read_claims, read_csv

COLUMNS = [
    "conv4 @ AlexNet",
    "conv5 @ AlexNet",
    "conv4-3 @ VGG-16",
    "conv5-3 @ VGG-16",
    "last conv @ ResNet-34",
]
SETTINGS = {"different initializations", "different training data"}


@pytest.mark.notebooks
def test_table1_notebook(smoke_tree):
    out = smoke_tree.output("table1_instability")
    table = read_csv(out / "table1.csv")
    assert list(table.columns) == [
        "setting", "arch", "layer", "column", "instability", "std", "min", "max", "n_fits",
    ]  # fmt: skip
    assert len(table) == 2 * len(COLUMNS) and set(table["setting"]) == SETTINGS
    assert sorted(set(table["column"])) == sorted(COLUMNS)
    assert np.isfinite(table["instability"]).all() and table["instability"].between(0, 1.5).all()
    assert (table["min"] <= table["instability"] + 1e-12).all()
    assert (table["instability"] <= table["max"] + 1e-12).all()
    # smoke: SEEDS = [0, 1] is one pair (one direction); Case 2 is always two directions
    n_fits = table.set_index("setting")["n_fits"]
    assert n_fits["different initializations"].eq(1).all()
    assert n_fits["different training data"].eq(2).all()

    vs = read_csv(out / "table1_vs_paper.csv")
    assert {"setting", "column", "ours", "paper", "difference"} <= set(vs.columns)
    assert len(vs) == 10 and vs["paper"].notna().all()
    np.testing.assert_allclose(vs["difference"], vs["ours"] - vs["paper"])

    nets = read_csv(out / "table1_networks.csv")
    assert len(nets) == 3 * (2 + 2) and nets["accuracy"].between(0, 100).all()
    half = notebook_params("table1_instability")["TRAIN_LIMIT"] // 2
    assert set(nets.loc[nets["task"] != "all", "train_limit"]) == {half}

    claims = read_claims(out, "table1_instability")
    # per case: AlexNet's and VGG-16's layers, network depth, the deepest (ResNet-34 has one
    # layer in Table 1, in the paper and here, so it has no within-network claim)
    assert len(claims) == 2 * 2 * 4 and "table1.case1.resnet34_layers" not in claims
    # the paper's regime: the same claims on networks trained on OVERFIT_PER_CLASS per class
    assert {f"{cid}.overfit" for cid in claims if not cid.endswith(".overfit")} <= set(claims)
    overfit = read_csv(out / "table1_overfit.csv")
    assert overfit[["setting", "column"]].equals(table[["setting", "column"]])
    gaps = read_csv(out / "table1_gaps.csv")
    assert sorted(gaps["regime"].unique()) == ["current", "overfit"] and len(gaps) == 2 * len(nets)
    # smoke: one pair of networks per layer in both cases, so no claim has a spread
    assert all(c["status"] == "not testable" for c in claims.values())
    assert all(c["evidence"].startswith("no spread: one pair of networks") for c in claims.values())
    assert (out / "table1.png").exists() and (out / "table1_timing.csv").exists()

    # Is g converged? The first Case 1 pair per layer at each budget, beside Table 1's fit
    budgets = notebook_params("table1_instability")["CONVERGENCE_BUDGETS"]
    conv = read_csv(out / "table1_convergence.csv")
    assert {"fit", "column", "steps", "instability", "train_loss", "holdout_loss",
            "seconds"} <= set(conv.columns)  # fmt: skip
    fixed, profile = conv[conv["fit"] == "budget"], conv[conv["fit"] == "profile"]
    assert len(fixed) == len(COLUMNS) * len(budgets) and len(profile) == len(COLUMNS)
    assert sorted(set(fixed["steps"])) == budgets and (fixed["best_step"] <= fixed["steps"]).all()
    assert np.isfinite(conv["instability"]).all() and conv["instability"].between(0, 1.5).all()
    # the profile's fit of the first pair is Table 1's own (one pair per layer in smoke)
    case1 = table[table["setting"] == "different initializations"].set_index("column")
    np.testing.assert_allclose(
        profile.set_index("column")["instability"].reindex(case1.index), case1["instability"]
    )
    assert profile["steps"].le(profile["max_steps"]).all()
    history = read_csv(out / "table1_fit_history.csv")
    assert list(history.columns) == [
        "arch",
        "layer",
        "column",
        "step",
        "seconds",
        "loss",
        "monitor",
    ]
    assert set(history["column"]) == set(COLUMNS) and np.isfinite(history["loss"]).all()
    last_check = history.groupby("column")["step"].max().to_dict()
    assert last_check == profile.set_index("column")["steps"].to_dict()
    verdicts = read_csv(out / "table1_convergence_verdicts.csv")
    assert sorted(verdicts["column"]) == sorted(COLUMNS)
    judged = verdicts[verdicts["testable"]]
    assert (judged["largest_steps"] >= 2 * judged["profile_steps"]).all()
    assert (judged["converged"] == (judged["difference"].abs() < judged["tol"])).all()
    assert verdicts.loc[~verdicts["testable"], "converged"].isna().all()
    assert (out / "table1_convergence.png").stat().st_size > 0
    assert not list(out.glob("*.svg"))  # each figure kept once, as a PNG

    # VGG-16 after the ReLU (Table 1) and at the conv output before BN, one pair per layer
    points = read_csv(out / "table1_feature_point.csv")
    assert len(points) == 2 * 2 and points["n_fits"].eq(1).all()
    after = points[points["point"] == "after ReLU"].set_index("column")["instability"]
    np.testing.assert_allclose(after, case1["instability"].reindex(after.index))
    order = read_csv(out / "table1_feature_point_order.csv")
    assert len(order) == 2 and set(order["shallow"]) == {"conv4_3"}
    assert (order["holds"] == (order["shallow_value"] < order["deep_value"])).all()
