"""The Fig. 1 notebook (orders of one filter's consistent components) under the smoke profile."""

import pytest
from figure_notebooks import computed_claims, figures_exist, finite_csv


@pytest.mark.notebooks
def test_fig1_orders_notebook(smoke_tree):
    out = smoke_tree.output("fig1_orders")
    # paper_var_ratio is the paper's Table 2 for the layer rows only (NaN for the filter rows)
    shares = finite_csv(out / "fig1_orders.csv", nan_allowed=("paper_var_ratio",))
    layer = shares[shares["scope"] == "layer"]
    assert layer["paper_var_ratio"].notna().all() and shares["paper_var_ratio"].isna().sum() == 4
    assert list(shares["component"]) == ["x0", "x1", "x2", "delta"] * 2
    for _, scope in shares.groupby("scope"):
        assert abs(scope["share"].sum() - 1.0) < 1e-4
    channels = finite_csv(out / "fig1_orders_channels.csv")
    assert channels["chosen"].iloc[0] and channels["var_x_star"].is_monotonic_decreasing
    assert f"filter {channels['channel'].iloc[0]}" in set(shares["scope"])
    nets = finite_csv(out / "fig1_orders_networks.csv")
    assert list(nets["label"]) == ["vgg16/fashion-mnist/all/seed0", "vgg16/fashion-mnist/all/seed1"]
    figures_exist(out, "fig1_orders")
    claims = computed_claims(
        out, "fig1_orders", ["fig1_orders.low_order_layer", "fig1_orders.low_order_filter"]
    )
    ratios = shares[shares["scope"] == "layer"].set_index("component")["var_ratio"]
    decreasing = bool(ratios["x0"] > ratios["x1"] > ratios["x2"])
    assert (claims[0]["status"] == "reproduced") == decreasing
