"""Tests of kc.engine.zoo: layer names, shapes, the lower/upper split and the feature extractor."""

from __future__ import annotations

import functools
import gc
import weakref

import pytest
import torch
from torch import nn

from kc.engine import zoo

SMALL = dict(input_size=32, in_channels=1, width=0.25)
PAIRS = [(arch, layer) for arch in zoo.ARCHS for layer in zoo.layers(arch)]

# (C, H, W) of every feature: small variants at 32 px and width 0.25, torchvision's at 224 px.
SHAPES_32 = {
    ("alexnet", "conv4"): (64, 8, 8),
    ("alexnet", "conv5"): (64, 8, 8),
    ("vgg16", "conv4_3"): (128, 8, 8),
    ("vgg16", "conv5_2"): (128, 4, 4),
    ("vgg16", "conv5_3"): (128, 4, 4),
    ("resnet18", "last14"): (64, 8, 8),
    ("resnet34", "last14"): (64, 8, 8),
    ("resnet50", "last14"): (256, 8, 8),
}
SHAPES_224 = {
    ("alexnet", "conv4"): (256, 13, 13),
    ("alexnet", "conv5"): (256, 13, 13),
    ("vgg16", "conv4_3"): (512, 28, 28),
    ("vgg16", "conv5_2"): (512, 14, 14),
    ("vgg16", "conv5_3"): (512, 14, 14),
    ("resnet18", "last14"): (256, 14, 14),
    ("resnet34", "last14"): (256, 14, 14),
    ("resnet50", "last14"): (1024, 14, 14),
}


@functools.cache
def _model(arch: str, input_size: int) -> nn.Module:
    """A seeded network in eval mode, built once per (arch, size) for the read-only tests."""
    torch.manual_seed(0)
    if input_size >= 64:
        return zoo.build(arch, num_classes=10, input_size=input_size).eval()
    return zoo.build(arch, num_classes=10, input_size=input_size, in_channels=1, width=0.25).eval()


def _images(n: int, input_size: int, seed: int = 0) -> torch.Tensor:
    channels = 3 if input_size >= 64 else 1
    return torch.randn(
        n, channels, input_size, input_size, generator=torch.Generator().manual_seed(seed)
    )


def _reference_feature(model: nn.Module, arch: str, x: torch.Tensor) -> torch.Tensor:
    """A forward hook's view of the layer, independent of the FX node names.

    AlexNet: the output of the fourth convolution (before its ReLU). ResNets: the output of
    layer3 (after its final ReLU).
    """
    captured = {}
    if arch.startswith("resnet"):
        target = model.layer3
    else:
        target = [m for m in model.features if isinstance(m, nn.Conv2d)][3]
    # clone: the in-place ReLU that follows would overwrite the hooked tensor
    handle = target.register_forward_hook(lambda m, i, o: captured.update(out=o.clone()))
    with torch.no_grad():
        model(x)
    handle.remove()
    return captured["out"]


# ----------------------------------------------------------------------------- names and errors


def test_layers_are_the_papers():
    assert zoo.layers("alexnet") == ["conv4", "conv5"]
    assert zoo.layers("vgg16") == ["conv4_3", "conv5_2", "conv5_3"]
    for arch in ("resnet18", "resnet34", "resnet50"):
        assert zoo.layers(arch) == ["last14"]


def test_unknown_arch_raises_listing_valid_ones():
    with pytest.raises(ValueError, match=r"unknown arch 'vgg19'.*'alexnet'.*'resnet50'"):
        zoo.build("vgg19", num_classes=10)
    with pytest.raises(ValueError, match=r"unknown arch 'vgg19'"):
        zoo.layers("vgg19")


def test_unknown_layer_raises_listing_valid_ones():
    model = _model("resnet18", 32)
    x = _images(2, 32)
    with pytest.raises(ValueError, match=r"unknown layer 'conv4' of resnet18.*\['last14'\]"):
        zoo.split(model, "resnet18", "conv4")
    with pytest.raises(ValueError, match=r"unknown layer 'conv5_1' of vgg16.*'conv4_3'"):
        zoo.features(_model("vgg16", 32), "vgg16", "conv5_1", x)
    with pytest.raises(ValueError, match=r"unknown layer 'fc' of alexnet"):
        zoo.feature_shape("alexnet", "fc")


def test_model_of_another_arch_raises():
    with pytest.raises(
        ValueError, match=r"expected a model of arch 'alexnet', got _PlainNet with 13 conv"
    ):
        zoo.split(_model("vgg16", 32), "alexnet", "conv4")
    with pytest.raises(ValueError, match=r"expected a model of arch 'resnet34', got _SmallResNet"):
        zoo.features(_model("resnet18", 32), "resnet34", "last14", _images(1, 32))
    with pytest.raises(ValueError, match=r"expected a model of arch 'resnet50', got _SmallResNet"):
        zoo.split(_model("resnet34", 32), "resnet50", "last14")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(input_size=224, width=0.5), r"width=0.5 with input_size=224"),
        (dict(input_size=8), r"input_size >= 16, got 8"),
        (dict(input_size=32, width=0.0), r"width > 0, got 0.0"),
        (dict(num_classes=0), r"num_classes >= 1.*got 0"),
        (dict(in_channels=0), r"in_channels >= 1, got 10 and 0"),
    ],
)
def test_bad_build_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        zoo.build("resnet18", **{"num_classes": 10, **kwargs})


def test_bad_features_arguments_raise():
    model = _model("alexnet", 32)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\) with N >= 1, got \(1, 32, 32\)"):
        zoo.features(model, "alexnet", "conv4", torch.zeros(1, 32, 32))
    with pytest.raises(ValueError, match=r"got \(0, 1, 32, 32\)"):
        zoo.features(model, "alexnet", "conv4", torch.zeros(0, 1, 32, 32))
    with pytest.raises(ValueError, match=r"batch_size >= 1, got 0"):
        zoo.features(model, "alexnet", "conv4", torch.zeros(2, 1, 32, 32), batch_size=0)


# ----------------------------------------------------------------------------- small variants


@pytest.mark.parametrize("input_size", [28, 32])
@pytest.mark.parametrize("in_channels", [1, 3])
@pytest.mark.parametrize("arch", zoo.ARCHS)
def test_small_build_gives_logits(arch, in_channels, input_size):
    model = zoo.build(
        arch, num_classes=7, input_size=input_size, in_channels=in_channels, width=0.25
    )
    assert model(torch.randn(2, in_channels, input_size, input_size)).shape == (2, 7)


def test_width_scales_channels():
    vgg = zoo.build("vgg16", num_classes=10, **SMALL)
    convs = [m.out_channels for m in vgg.modules() if isinstance(m, nn.Conv2d)]
    assert convs == [16, 16, 32, 32, 64, 64, 64, 128, 128, 128, 128, 128, 128]
    resnet = zoo.build("resnet34", num_classes=10, **SMALL)
    assert resnet.conv1.out_channels == 16
    assert resnet.conv1.kernel_size == (3, 3) and resnet.conv1.stride == (1, 1)
    assert [
        len(stage) for stage in (resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4)
    ] == [3, 4, 6, 3]


@pytest.mark.parametrize("input_size", [28, 32])
@pytest.mark.parametrize(("arch", "layer"), PAIRS)
def test_small_split_reproduces_model_exactly(arch, layer, input_size):
    model = _model(arch, input_size)
    lower, upper = zoo.split(model, arch, layer)
    x = _images(4, input_size)
    with torch.no_grad():
        torch.testing.assert_close(upper(lower(x)), model(x), rtol=0, atol=0)
        torch.testing.assert_close(lower(x), zoo.features(model, arch, layer, x), rtol=0, atol=0)


@pytest.mark.parametrize(("arch", "layer"), PAIRS)
def test_small_feature_shapes(arch, layer):
    assert zoo.feature_shape(arch, layer, **SMALL) == SHAPES_32[arch, layer]
    feats = zoo.features(_model(arch, 32), arch, layer, _images(3, 32))
    assert feats.shape == (3, *SHAPES_32[arch, layer])
    c, h, w = zoo.feature_shape(arch, layer, input_size=28, width=0.25, in_channels=1)
    assert (c, h, w) == (SHAPES_32[arch, layer][0], h, h) and h in (3, 4, 7)


@pytest.mark.parametrize(("arch", "layer"), PAIRS)
def test_split_partitions_the_parameters(arch, layer):
    model = _model(arch, 32)
    lower, upper = zoo.split(model, arch, layer)
    ids = lambda m: [id(p) for p in m.parameters()]  # noqa: E731
    assert sorted(ids(lower) + ids(upper)) == sorted(ids(model))


@pytest.mark.parametrize("arch", ["alexnet", "resnet18"])
def test_feature_is_the_documented_tensor(arch):
    model = _model(arch, 32)
    layer = zoo.layers(arch)[0]
    x = _images(4, 32)
    feats = zoo.features(model, arch, layer, x)
    reference = _reference_feature(model, arch, x)
    if arch == "alexnet":  # conv4 after its ReLU
        torch.testing.assert_close(feats, torch.relu(reference), rtol=0, atol=0)
        assert feats.min() >= 0
    else:  # last14 before the final ReLU of layer3
        torch.testing.assert_close(torch.relu(feats), reference, rtol=0, atol=0)
        assert feats.min() < 0


def test_features_is_batched_eval_and_restores_modes():
    torch.manual_seed(0)
    model = zoo.build("vgg16", num_classes=10, **SMALL)
    model.train()
    model.features[1].eval()  # a mixed state must survive
    x = _images(7, 32)
    feats = zoo.features(model, "vgg16", "conv4_3", x, batch_size=3)
    assert feats.dtype == torch.float32 and feats.device.type == "cpu"
    assert not feats.requires_grad
    assert model.training and model.classifier.training and not model.features[1].training
    lower, _ = zoo.split(model, "vgg16", "conv4_3")
    lower.eval()
    with torch.no_grad():
        expected = lower(x)
    # Batches of 3 and of 7 may take different convolution kernels: equal up to rounding.
    torch.testing.assert_close(feats, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(
        zoo.features(model, "vgg16", "conv4_3", x), feats, rtol=1e-5, atol=1e-5
    )


def test_extractor_is_cached_and_released_with_the_model():
    model = zoo.build("resnet18", num_classes=10, **SMALL)
    lower_a, upper_a = zoo.split(model, "resnet18", "last14")
    lower_b, _ = zoo.split(model, "resnet18", "last14")
    assert lower_a is lower_b
    ref = weakref.ref(model)
    del model, lower_a, lower_b, upper_a
    gc.collect()
    assert ref() is None


def test_replace_head_gives_fresh_independent_head():
    model = _model("resnet18", 32)
    lower, upper = zoo.split(model, "resnet18", "last14")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    head = zoo.replace_head(upper, 6)
    x = _images(2, 32)
    with torch.no_grad():
        assert head.eval()(lower(x)).shape == (2, 6)
    assert upper(lower(x)).shape == (2, 10)
    assert [m.out_features for m in head.modules() if isinstance(m, nn.Linear)] == [6]
    model_params = {p.data_ptr() for p in model.parameters()}
    assert not model_params & {p.data_ptr() for p in head.parameters()}
    for p in head.parameters():
        p.data.add_(1.0)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)


def test_replace_head_on_plain_net_and_errors():
    model = _model("vgg16", 32)
    lower, upper = zoo.split(model, "vgg16", "conv5_2")
    head = zoo.replace_head(upper, 6).eval()
    with torch.no_grad():
        assert head(lower(_images(2, 32))).shape == (2, 6)
    with pytest.raises(ValueError, match=r"num_classes >= 1, got 0"):
        zoo.replace_head(upper, 0)
    with pytest.raises(ValueError, match=r"containing an nn.Linear, got ReLU"):
        zoo.replace_head(nn.ReLU(), 6)


# ----------------------------------------------------------------------------- torchvision at 224


@pytest.mark.parametrize("arch", zoo.ARCHS)
def test_paper_size_split_and_shapes(arch):
    model = _model(arch, 224)
    x = _images(1, 224)
    with torch.no_grad():
        logits = model(x)
        for layer in zoo.layers(arch):
            lower, upper = zoo.split(model, arch, layer)
            feats = zoo.features(model, arch, layer, x)
            assert feats.shape == (1, *SHAPES_224[arch, layer])
            assert zoo.feature_shape(arch, layer) == SHAPES_224[arch, layer]
            torch.testing.assert_close(upper(lower(x)), logits, rtol=0, atol=0)
    assert logits.shape == (1, 10)


def test_paper_size_is_torchvisions_model_and_takes_grey_images():
    model = zoo.build("resnet18", num_classes=5, in_channels=1)
    assert model.conv1.in_channels == 1 and model.conv1.kernel_size == (7, 7)
    assert isinstance(model.maxpool, nn.MaxPool2d) and model.fc.out_features == 5
    alexnet = zoo.build("alexnet", num_classes=5, in_channels=1)
    assert alexnet.features[0].in_channels == 1 and alexnet.features[0].kernel_size == (11, 11)
    with torch.no_grad():
        assert alexnet.eval()(torch.randn(2, 1, 224, 224)).shape == (2, 5)
    assert zoo.feature_shape("resnet18", "last14", in_channels=1) == (256, 14, 14)
