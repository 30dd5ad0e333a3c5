"""The Table 4 notebook (removing redundant features, Sec. 4.3 Exp. 2) runs under smoke."""

import numpy as np
import pytest
from conftest import notebook_params, read_claims, read_csv

SETTINGS = ["VOC-animal", "Mix-CUB", "Mix-Dogs"]


@pytest.mark.notebooks
def test_table4_notebook(smoke_tree):
    out = smoke_tree.output("table4_redundant")
    params = notebook_params("table4_redundant")
    assert params["NETWORKS"] == [["resnet18", "last14"]]  # smoke: the ResNet-18 column
    table = read_csv(out / "table4.csv")
    assert list(table.columns) == [
        "setting",
        "column",
        "row",
        "accuracy",
        "spread",
        "min",
        "max",
        "n_pairs",
    ]
    assert table["setting"].tolist() == [s for s in SETTINGS for _ in range(5)]
    assert set(table["column"]) == {"ResNet-18"}
    assert np.isfinite(table["accuracy"]).all() and table["accuracy"].between(0, 100).all()

    runs = read_csv(out / "table4_runs.csv")
    assert runs["epochs"].nunique() == 1 and runs["n_test"].gt(0).all()
    # each target task has its own images, the same for all rows of the task
    assert runs.groupby("setting")["n_train"].nunique().eq(1).all()
    assert runs.groupby("setting")["n_test"].nunique().eq(1).all()
    assert runs["instability"].ge(0).all() and np.isfinite(runs["instability"]).all()

    vs = read_csv(out / "table4_vs_paper.csv")
    assert {"setting", "column", "row", "ours", "paper", "difference"} <= set(vs.columns)
    ours = vs[vs["ours"].notna() & vs["row"].isin(["Network A", "Network B", "x0+x1+x2"])]
    assert len(ours) == 9 and ours["paper"].notna().all()
    claims = read_claims(out, "table4_redundant")
    assert len(claims) == 2 * (3 + 1)  # three cells and every cell, in both regimes
    assert all(c["evidence"].startswith("no spread: ") for c in claims.values())  # smoke: one pair
    assert (out / "table4.png").exists() and (out / "table4_timings.csv").exists()

    # the paper's regime: the mixture's networks see OVERFIT_PER_CLASS images of each of its
    # 20 classes; each target task's rows are fine-tuned on its share of those images
    per_class = params["OVERFIT_PER_CLASS"]
    overfit_runs = read_csv(out / "table4_overfit_runs.csv")
    n_train = overfit_runs.groupby("setting")["n_train"].unique()
    assert n_train["Mix-CUB"].tolist() == [per_class * 10]
    assert n_train["Mix-Dogs"].tolist() == [per_class * 10]
    assert n_train["VOC-animal"].tolist()[0] % per_class == 0
    gaps = read_csv(out / "table4_gaps.csv")
    assert len(gaps) == 2 * 2 * 2  # two regimes, two sets of data sets, two seeds
    assert len(read_csv(out / "table4_regimes.csv")) == 2 * 3
