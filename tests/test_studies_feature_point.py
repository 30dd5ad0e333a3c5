"""kc.studies.instability.feature_point: the conv output before BN (hook), its cached fits, the tables."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from conftest import notebook_params
from torch import nn

from kc.engine import zoo
from kc.studies.instability import feature_point as fp
from kc.studies.paper import CASE1


def tiny(arch: str = "vgg16", seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = zoo.build(arch, num_classes=3, input_size=16, in_channels=1, width=0.125)
    # BatchNorm with non-trivial statistics, so that before and after BN differ
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model


def nth_conv(model: nn.Module, n: int) -> int:
    """Index in ``model.features`` of its n-th (1-based) Conv2d: the obviously-correct way."""
    return [i for i, m in enumerate(model.features) if isinstance(m, nn.Conv2d)][n - 1]


@pytest.mark.parametrize(("layer", "n"), [("conv4_3", 10), ("conv5_2", 12), ("conv5_3", 13)])
def test_the_hook_returns_the_convolution_computed_by_hand(layer: str, n: int) -> None:
    model = tiny()
    images = torch.randn(5, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    got = fp.conv_outputs(model, "vgg16", layer, images, batch_size=2)
    i = nth_conv(model, n)
    assert fp.conv_before_norm(model, "vgg16", layer) is model.features[i]
    with torch.no_grad():
        model.eval()
        below = model.features[:i](images)
        expected = model.features[i](below)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    c, h, w = zoo.feature_shape("vgg16", layer, input_size=16, width=0.125, in_channels=1)
    assert tuple(got.shape) == (5, c, h, w)
    # Table 1's feature is this output after the BN and the ReLU that follow it
    bn, relu = model.features[i + 1], model.features[i + 2]
    assert isinstance(bn, nn.BatchNorm2d) and isinstance(relu, nn.ReLU)
    after = zoo.features(model, "vgg16", layer, images)
    with torch.no_grad():
        torch.testing.assert_close(after, torch.relu(bn(got)), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(torch.relu(got), after, atol=1e-3)  # BN makes a difference


def test_the_hook_restores_modes_and_leaves_no_handle() -> None:
    model = tiny().train()
    conv = fp.conv_before_norm(model, "vgg16", "conv4_3")
    fp.conv_outputs(model, "vgg16", "conv4_3", torch.randn(3, 1, 16, 16))
    assert all(m.training for m in model.modules())
    assert not conv._forward_hooks
    torch.testing.assert_close(  # the model still runs to the end
        model.eval()(torch.zeros(2, 1, 16, 16)).shape, torch.Size([2, 3])
    )


def test_alexnet_conv_output_rectified_is_its_feature() -> None:
    model = tiny("alexnet").eval()
    images = torch.randn(4, 1, 16, 16)
    got = fp.conv_outputs(model, "alexnet", "conv5", images)
    torch.testing.assert_close(torch.relu(got), zoo.features(model, "alexnet", "conv5", images))


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="alexnet and vgg16 layers, got 'resnet34'"):
        fp.conv_before_norm(nn.Module(), "resnet34", "last14")
    with pytest.raises(ValueError, match=r"shape \(N, C, H, W\), N >= 1, got \(1, 16, 16\)"):
        fp.conv_outputs(tiny(), "vgg16", "conv4_3", torch.zeros(1, 16, 16))
    with pytest.raises(ValueError, match="FEATURE_POINT_CHECK must be True or False, got 'yes'"):
        fp.FeaturePointStudy.from_params(
            notebook_params("table1_instability", FEATURE_POINT_CHECK="yes")
        )


def test_study_layers_are_table1s_vgg16_layers_shallow_to_deep() -> None:
    study = fp.FeaturePointStudy.from_params(
        notebook_params("table1_instability", LAYERS={"vgg16": ["conv5_3", "conv4_3"]})
    )
    assert study.enabled and study.layers() == ["conv4_3", "conv5_3"]
    none = fp.FeaturePointStudy.from_params(
        notebook_params("table1_instability", LAYERS={"alexnet": ["conv4"]})
    )
    assert none.layers() == []


@pytest.mark.filterwarnings("ignore::kc.core.fit.ConvergenceWarning")  # 20 steps on purpose
def test_conv_fits_are_cached_and_use_table1s_images(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("KC_CACHE", str(tmp_path))
    params = notebook_params(
        "table1_instability", EPOCHS=0, TRAIN_LIMIT=64, EVAL_LIMIT=32, FIT_LIMIT=48,
        TEST_LIMIT=24, G_STEPS=20, G_BATCH_SIZE=16, LAYERS={"vgg16": ["conv4_3"]},
    )  # fmt: skip
    study = fp.FeaturePointStudy.from_params(params)
    ins = study.instability
    x, t = ins.spec("vgg16", 0), ins.spec("vgg16", 1)
    first = fp.fit_conv_point(ins, x, t, "conv4_3")
    assert not first["from_cache"] and 0 < first["instability"] < 2
    assert first["fit"]["max_steps"] == 20 and first["fit"]["n_fit"] == 48
    again = fp.fit_conv_point(ins, x, t, "conv4_3")
    assert again["from_cache"] and again["instability"] == first["instability"]
    # the hook sees the images of Table 1's features: their labels match get_features'
    from kc.engine import experiments as ex

    _, labels = ex.get_features(x, "conv4_3", split="train", limit=48, progress=False)
    feats, conv_labels = fp._conv_features(ex.get_net(x, progress=False), "conv4_3", "train", 48)
    assert torch.equal(labels, conv_labels) and feats.shape[0] == 48
    with pytest.raises(ValueError, match="two Case 1 networks"):
        fp.fit_conv_point(ins, ins.spec("vgg16", 0, "half0"), t, "conv4_3")


def test_point_table_and_ordering() -> None:
    rows = pd.DataFrame(
        [
            {"point": p, "layer": layer, "column": f"{layer} @ VGG-16", "instability": v}
            for p, layer, v in [
                (fp.AFTER_RELU, "conv4_3", 0.30), (fp.AFTER_RELU, "conv4_3", 0.34),
                (fp.AFTER_RELU, "conv5_3", 0.10), (fp.AFTER_RELU, "conv5_3", 0.12),
                (fp.CONV_OUTPUT, "conv4_3", 0.05), (fp.CONV_OUTPUT, "conv4_3", 0.07),
                (fp.CONV_OUTPUT, "conv5_3", 0.20), (fp.CONV_OUTPUT, "conv5_3", 0.10),
            ]
        ]
    )  # fmt: skip
    table = fp.point_table(rows).set_index(["point", "layer"])
    assert set(table["setting"]) == {CASE1} and table["n_fits"].eq(2).all()
    assert table.loc[(fp.AFTER_RELU, "conv4_3"), "instability"] == pytest.approx(0.32)
    assert table.loc[(fp.CONV_OUTPUT, "conv5_3"), "std"] == pytest.approx(0.05)
    assert table.loc[(fp.CONV_OUTPUT, "conv5_3"), "min"] == pytest.approx(0.10)
    order = fp.ordering(fp.point_table(rows)).set_index("point")
    assert not order.loc[fp.AFTER_RELU, "holds"] and order.loc[fp.CONV_OUTPUT, "holds"]
    assert "0.320 >= conv5_3 0.110" in order.loc[fp.AFTER_RELU, "statement"]
    assert order.loc[fp.CONV_OUTPUT, "statement"].endswith("holds")
