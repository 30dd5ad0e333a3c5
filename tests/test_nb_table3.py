"""The Table 3 notebook (feature refinement, Sec. 4.3 Exp. 1) runs under the smoke profile."""

import numpy as np
import pytest
from conftest import notebook_params, read_claims, read_csv

ROWS = ["Network A", "Network B", "x0", "x0+x1", "x0+x1+x2"]


@pytest.mark.notebooks
def test_table3_notebook(smoke_tree):
    out = smoke_tree.output("table3_refinement")
    params = notebook_params("table3_refinement")
    assert len(params["NETWORKS"]) == 2  # smoke: two of the five columns
    table = read_csv(out / "table3.csv")
    assert list(table.columns) == ["column", "row", "accuracy", "spread", "min", "max", "n_pairs"]
    assert len(table) == 2 * len(ROWS)
    assert table["row"].tolist() == ROWS * 2
    assert set(table["column"]) == {"VGG-16 conv4-3", "ResNet-18"}
    assert np.isfinite(table["accuracy"]).all() and table["accuracy"].between(0, 100).all()
    assert table["n_pairs"].eq(1).all() and table["spread"].isna().all()  # smoke: one pair

    runs = read_csv(out / "table3_runs.csv")
    # the fairness protocol: one budget and the same images for every row
    assert runs["epochs"].nunique() == 1 and runs["n_train"].eq(params["FIT_LIMIT"]).all()
    assert runs["n_test"].eq(params["TEST_LIMIT"]).all()
    assert runs["accuracy_before"].between(0, 100).all()
    assert runs["instability"].ge(0).all() and np.isfinite(runs["instability"]).all()

    vs = read_csv(out / "table3_vs_paper.csv")
    assert {"column", "row", "ours", "spread", "paper", "difference"} <= set(vs.columns)
    ours = vs[vs["ours"].notna()]
    assert len(ours) == 10 and ours["paper"].notna().all()  # both columns are in the paper
    assert len(vs) == 23  # an outer join: the paper's other columns stay
    claims = read_claims(out, "table3_refinement")
    assert len(claims) == 2 * (2 + 1)  # two cells and every cell, in both regimes
    # smoke has one seed pair: no cell can be told from seed noise, so none gets a verdict
    assert all(c["status"] == "not testable" and c["evidence"].startswith("no spread: ")
               for c in claims.values())  # fmt: skip
    assert "table3.ResNet-18.gain.overfit" in claims and "table3.every_cell" in claims
    assert (out / "table3.png").exists() and (out / "table3_timings.csv").exists()

    # the paper's regime: networks trained on OVERFIT_PER_CLASS images per class, g and the
    # heads on those same images, tested on the same test images
    per_class = params["OVERFIT_PER_CLASS"]
    overfit_runs = read_csv(out / "table3_overfit_runs.csv")
    assert overfit_runs["n_train"].eq(per_class * 10).all()
    assert overfit_runs["n_test"].eq(params["TEST_LIMIT"]).all()
    gaps = read_csv(out / "table3_gaps.csv")
    assert sorted(gaps["regime"].unique()) == ["current", "overfit"]
    assert len(gaps) == 2 * 2 * 2  # two regimes, two architectures, two seeds
    assert gaps["network"].str.endswith(f"/pc{per_class}").eq(gaps["regime"] == "overfit").all()
    assert gaps["train_accuracy"].between(0, 100).all()
    assert np.allclose(gaps["gap"], gaps["train_accuracy"] - gaps["test_accuracy"])
    regimes = read_csv(out / "table3_regimes.csv")
    assert len(regimes) == 2 * 2 and not regimes["holds"].any()  # one pair: nothing holds
