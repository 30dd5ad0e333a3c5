"""kc.studies.orders.figure (Fig. 1) on planted fits: the filter rule, the maps, the claims."""

import matplotlib
import pytest
import torch
from figure_fakes import FakeLab, smoke_params

from kc.book import plotting
from kc.studies.orders import figure as of
from kc.studies.paper import paper_table

matplotlib.use("Agg")

TEST_LIMIT = 40


def _run(monkeypatch, **lab):
    fake = FakeLab(**lab).install(monkeypatch)
    settings = of.Settings.from_params(smoke_params(TEST_LIMIT=TEST_LIMIT))
    return fake, of.run(settings, progress=False)


def test_settings_from_params_and_errors():
    p = smoke_params()
    s = of.Settings.from_params(p)
    assert (s.arch, s.layer, s.seeds[:2], s.n_show) == ("vgg16", "conv4_3", (0, 1), p["N_SHOW"])
    assert (s.g.g_lr, s.g.g_steps, s.net["test_limit"]) == (p["G_LR"], p["G_STEPS"], p["EVAL_LIMIT"])
    with pytest.raises(ValueError, match=r"ORDERS_NETWORK must be \[arch, layer\]"):
        of.Settings.from_params(smoke_params(ORDERS_NETWORK=["vgg16", "conv9"]))
    with pytest.raises(ValueError, match="two distinct seeds"):
        of.Settings.from_params(smoke_params(SEEDS=[3, 3]))
    with pytest.raises(ValueError, match=r"lack \['N_SHOW'\]"):
        params = smoke_params()
        del params["N_SHOW"]
        of.Settings.from_params(params)


def test_run_reads_table1s_fit(monkeypatch):
    """One g, rebuilding seed 1 from seed 0 with Table 1's settings (so Table 1's cache key)."""
    from kc.studies.instability.run import InstabilityStudy

    fake, _ = _run(monkeypatch)
    assert len(fake.fits) == 1
    x, x_layer, t, t_layer, kwargs = fake.fits[0]
    p = smoke_params(TEST_LIMIT=TEST_LIMIT, LAYERS={"vgg16": ["conv4_3"]}, BOTH_DIRECTIONS=False)
    study = InstabilityStudy.from_params(p)
    table1 = FakeLab()
    monkeypatch.setattr("kc.engine.experiments.get_consistency", table1.get_consistency)
    study.fit(study.spec("vgg16", 0), study.spec("vgg16", 1), "conv4_3")
    expected = table1.fits[0]
    assert (x, x_layer, t, t_layer) == expected[:4]
    drop = {"progress"}
    assert {k: v for k, v in kwargs.items() if k not in drop} == {
        k: v for k, v in expected[4].items() if k not in drop
    }


def test_run_picks_the_loud_filter_and_its_strongest_images(monkeypatch):
    _, result = _run(monkeypatch, loud=4)
    assert result.channel == 4
    assert list(result.maps) == ["x*", "x0", "x1", "x2", "x_Delta"]
    parts = sum(result.maps[k] for k in ("x0", "x1", "x2", "x_Delta"))
    torch.testing.assert_close(parts, result.maps["x*"])
    assert len(result.shown.index) == 4 and len(set(result.shown.labels)) == 4
    size = smoke_params()["INPUT_SIZE"]
    assert result.shown.images.shape == (4, 1, size, size)
    channels = of.channels_table(result)
    assert channels.loc[0, "channel"] == 4 and channels.loc[0, "chosen"]


def test_shares_table_and_paper_beside(monkeypatch):
    _, result = _run(monkeypatch)
    table = of.shares_table(result)
    for _, scope in table.groupby("scope"):
        assert scope["share"].sum() == pytest.approx(1.0, abs=1e-5)
    layer = table[table["scope"] == "layer"].set_index("component")
    # the paper's fractions: its x_Delta fraction is its Table 1 instability (Case 1)
    t1 = paper_table(1)
    inst = t1[(t1["setting"] == "different initializations") & (t1["column"] == "conv4-3 @ VGG-16")]
    assert layer.loc["delta", "paper_var_ratio"] == pytest.approx(float(inst["value"].iloc[0]))
    assert layer.loc["x0", "paper_var_ratio"] > layer.loc["x1", "paper_var_ratio"]


@pytest.mark.parametrize(
    ("scales", "status"),
    [((1.0, 0.3, 0.1), "reproduced"), ((0.1, 0.3, 1.0), "not reproduced")],
)
def test_claims_follow_the_planted_orders(monkeypatch, scales, status):
    _, result = _run(monkeypatch, scales=scales)
    claims = of.claims(result)
    assert [c.id for c in claims] == ["fig1_orders.low_order_layer", "fig1_orders.low_order_filter"]
    assert {c.status for c in claims} == {status}
    assert claims[0].numbers["var_ratio_x0"] == pytest.approx(
        result.layer_shares.set_index("component").loc["x0", "var_ratio"]
    )


def test_claims_not_testable_with_order_zero(monkeypatch):
    FakeLab(scales=(1.0,)).install(monkeypatch)
    settings = of.Settings.from_params(smoke_params(TEST_LIMIT=TEST_LIMIT, ORDER=0))
    claims = of.claims(of.run(settings, progress=False))
    assert {c.status for c in claims} == {"not testable"}


def test_figure_has_the_grid_and_the_shares(monkeypatch):
    _, result = _run(monkeypatch)
    fig = plotting.orders_figure(result)
    overlays = [im for ax in fig.axes for im in ax.get_images()[1:]]
    size = smoke_params()["INPUT_SIZE"]
    assert len(overlays) == 5 * 4 and all(im.get_array().shape == (size, size) for im in overlays)
    bars = [ax for ax in fig.axes if ax.patches]
    assert len(bars) == 1 and len(bars[0].patches) == 2 * 4
