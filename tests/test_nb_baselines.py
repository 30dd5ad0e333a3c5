"""The baselines notebook (every measure beside knowledge consistency) runs under smoke."""

import numpy as np
import pytest
from conftest import read_csv
from nb_beyond import check_figure, check_verdicts, finite_csv

from kc.core.similarity import MEASURES


@pytest.mark.notebooks
def test_baselines_notebook(smoke_tree):
    out = smoke_tree.output("baselines")
    kc = ["instability", "kc_consistency", "share_x0", "share_x1", "share_x2", "share_higher"]
    table = finite_csv(out / "baselines.csv", [*MEASURES, *kc])
    # 5 Table 1 layers x (1 seed pair + 2 directions of the halves)
    assert len(table) == 5 * 3 and set(table["arch"]) == {"alexnet", "vgg16", "resnet34"}
    assert table["linear_cka"].between(0, 1 + 1e-9).all()
    corr = read_csv(out / "baselines_agreement.csv").set_index("measure")
    assert list(corr.index) == [*MEASURES, "kc_consistency", "share_x0", "share_higher"]
    assert np.isfinite(corr.loc["linear_cka", "kc_consistency"])
    # NaN only for a measure constant over the rows (e.g. PWCCA saturated at d >= n): whole rows
    flat = corr.isna().all(axis=1)
    assert corr.loc[~flat, ~flat.to_numpy()].notna().all().all()
    np.testing.assert_allclose(np.diag(corr.loc[~flat, ~flat.to_numpy()]), 1.0)
    planted = finite_csv(out / "baselines_planted.csv", ["share_higher", "instability", *MEASURES])
    assert set(planted["kind"]) == {"nonlinear", "linear", "unrelated"}
    finite_csv(out / "baselines_planted_detection.csv", ["nonlinear", "linear"])
    check_figure(out, "baselines")
    check_figure(out, "baselines_planted")
    check_verdicts(out, "baselines", {"baselines.kc_vs_linear_cka", "baselines.linear_agree",
                                      "baselines.planted_linear_miss",
                                      "baselines.planted_orders_recover"})  # fmt: skip
