"""The paper's five architectures, their named feature layers and the split at a layer.

Sec. 4 of Liang et al. (ICLR 2020) compares AlexNet, VGG-16 and ResNet-18/34/50 at these
intermediate layers:

========== ============================ ==============================================
arch       layers                       meaning
========== ============================ ==============================================
alexnet    ``conv4``, ``conv5``         output of that convolution after its ReLU
vgg16      ``conv4_3``, ``conv5_2``,    output of that convolution after its ReLU
           ``conv5_3``
resnet*    ``last14``                   "the last feature map with a size of 14x14"
                                        (Tables 3, 4): the output of the last block of
                                        ``layer3`` before its final ReLU, as in the
                                        authors' released code (FX node
                                        ``layer3.<last>.add``)
========== ============================ ==============================================

Two sizes of every network:

* ``input_size >= 64`` (the ``paper`` profile, 224 px): torchvision's constructors, unchanged
  except for the number of input channels of the first convolution and of classes.
* ``input_size < 64`` (the CPU profiles, 28-32 px grey-scale): the same topology with channel
  widths scaled by ``width``, a stride-1 3x3 first convolution and pooling arranged so that at
  32 px AlexNet ``conv4``/``conv5`` and VGG-16 ``conv4_3`` are 8x8, VGG-16 ``conv5_2``/
  ``conv5_3`` 4x4 and ResNet ``last14`` 8x8. The name ``last14`` is kept at every size: it
  always denotes the output of ``layer3``, which is 14x14 at 224 px and 8x8 at 32 px.

Example:
    >>> model = build("resnet18", num_classes=10, input_size=32, in_channels=1, width=0.25)
    >>> lower, upper = split(model, "resnet18", "last14")
    >>> tuple(lower(torch.zeros(2, 1, 32, 32)).shape)
    (2, 64, 8, 8)
"""

from __future__ import annotations

import copy
import functools
import weakref
from collections.abc import Callable, Sequence

import torch
import torchvision.models as tvm
from torch import Tensor, nn
from torchvision.models.feature_extraction import create_feature_extractor
from torchvision.models.resnet import BasicBlock, Bottleneck, conv1x1

ARCHS = ("alexnet", "vgg16", "resnet18", "resnet34", "resnet50")

# Layer name -> 1-based index of the convolution among the Conv2d modules of `features`.
_CONV_INDEX = {
    "alexnet": {"conv4": 4, "conv5": 5},
    "vgg16": {"conv4_3": 10, "conv5_2": 12, "conv5_3": 13},
}
_LAYERS = {
    **{arch: list(names) for arch, names in _CONV_INDEX.items()},
    **{arch: ["last14"] for arch in ("resnet18", "resnet34", "resnet50")},
}
_RESNET_BLOCKS: dict[str, tuple[type[BasicBlock | Bottleneck], list[int]]] = {
    "resnet18": (BasicBlock, [2, 2, 2, 2]),
    "resnet34": (BasicBlock, [3, 4, 6, 3]),
    "resnet50": (Bottleneck, [3, 4, 6, 3]),
}
_PAPER_MIN_INPUT = 64  # from here on torchvision's originals are used
_SMALL_MIN_INPUT = 16  # VGG-16's four poolings need at least 16 px


# ----------------------------------------------------------------------------- helpers


def _check_arch(arch: str) -> None:
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; expected one of {list(ARCHS)}")


def _check_layer(arch: str, layer: str) -> None:
    _check_arch(arch)
    if layer not in _LAYERS[arch]:
        raise ValueError(f"unknown layer {layer!r} of {arch}; expected one of {_LAYERS[arch]}")


def _scaled(channels: int, width: float) -> int:
    return max(1, round(channels * width))


def _is_resnet(arch: str) -> bool:
    return arch in _RESNET_BLOCKS


def _conv_relu(
    in_channels: int, out_channels: int, kernel_size: int, batch_norm: bool
) -> list[nn.Module]:
    conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2)
    norm = [nn.BatchNorm2d(out_channels)] if batch_norm else []
    return [conv, *norm, nn.ReLU(inplace=True)]


def _kaiming_init(model: nn.Module) -> None:
    """torchvision's initialisation of VGG and ResNet."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


# ----------------------------------------------------------------------------- blocks


def _resnet_stage(
    block: type[BasicBlock | Bottleneck], in_planes: int, planes: int, blocks: int, stride: int
) -> nn.Sequential:
    """``blocks`` residual blocks; the first changes resolution and width like torchvision's."""
    out_planes = planes * block.expansion
    downsample = None
    if stride != 1 or in_planes != out_planes:
        downsample = nn.Sequential(
            conv1x1(in_planes, out_planes, stride), nn.BatchNorm2d(out_planes)
        )
    first = block(in_planes, planes, stride, downsample)
    return nn.Sequential(first, *(block(out_planes, planes) for _ in range(blocks - 1)))


class _Lower(nn.Module):
    """The network up to one FX node; returns that node's tensor.

    Built with torchvision's ``create_feature_extractor``, which shares the model's
    submodules (and hence parameters) instead of copying them.
    """

    def __init__(self, model: nn.Module, node: str) -> None:
        super().__init__()
        self.node = node
        modes = {m: m.training for m in model.modules()}
        self.body = create_feature_extractor(model, return_nodes={node: "feature"})
        self.train(model.training)
        for m, mode in modes.items():  # tracing set every submodule to one mode
            m.training = mode

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)["feature"]


# ----------------------------------------------------------------------------- model classes


class _PlainNet(nn.Module):
    """``features -> avgpool -> flatten -> classifier``, the layout of torchvision's AlexNet/VGG."""

    def __init__(self, features: nn.Sequential, pool_size: int, classifier: nn.Sequential) -> None:
        super().__init__()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d(pool_size)
        self.classifier = classifier

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


class _SmallResNet(nn.Module):
    """torchvision's ResNet with a CIFAR stem (3x3 stride-1 conv, no max-pool) and scaled widths."""

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        blocks: Sequence[int],
        *,
        num_classes: int,
        in_channels: int,
        width: float,
    ) -> None:
        super().__init__()
        base = _scaled(64, width)
        self.conv1 = nn.Conv2d(in_channels, base, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(base)
        self.relu = nn.ReLU(inplace=True)
        planes = [base, 2 * base, 4 * base, 8 * base]
        in_planes = [base] + [p * block.expansion for p in planes[:-1]]
        strides = [1, 2, 2, 2]
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            _resnet_stage(block, i, p, n, s)
            for i, p, n, s in zip(in_planes, planes, blocks, strides, strict=True)
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(planes[-1] * block.expansion, num_classes)
        _kaiming_init(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


# ----------------------------------------------------------------------------- private builders


def _small_alexnet(
    *, num_classes: int, in_channels: int, width: float, batch_norm: bool = False
) -> _PlainNet:
    # Departures from torchvision's AlexNet for 28-32 px: a 3x3 stride-1 first convolution
    # (11x11 stride 4 there) and max-pools padded by 1, so conv3-conv5 run at 8x8 (13x13 at
    # 224 px) and the last pool gives 4x4 (6x6).
    c1, c2, c3, c4, c5 = (_scaled(c, width) for c in (64, 192, 384, 256, 256))
    features = nn.Sequential(
        *_conv_relu(in_channels, c1, 3, batch_norm),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        *_conv_relu(c1, c2, 5, batch_norm),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        *_conv_relu(c2, c3, 3, batch_norm),
        *_conv_relu(c3, c4, 3, batch_norm),
        *_conv_relu(c4, c5, 3, batch_norm),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    )
    hidden = _scaled(4096, width)
    classifier = nn.Sequential(
        nn.Dropout(0.5),
        nn.Linear(c5 * 4 * 4, hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Linear(hidden, hidden),
        nn.ReLU(inplace=True),
        nn.Linear(hidden, num_classes),
    )
    return _PlainNet(features, 4, classifier)


# VGG-16 (configuration D) without the pool after block 3, so that at 32 px conv4_3 is 8x8 and
# conv5_x 4x4 (28x28 and 14x14 at 224 px); the last pool gives 2x2 (7x7).
_VGG16_SMALL: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, 512, 512, 512, "M", 512, 512, 512, "M",
)  # fmt: skip


def _small_vgg16(
    *, num_classes: int, in_channels: int, width: float, batch_norm: bool = True
) -> _PlainNet:
    layers: list[nn.Module] = []
    channels = in_channels
    for item in _VGG16_SMALL:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            out = _scaled(int(item), width)
            layers += _conv_relu(channels, out, 3, batch_norm)
            channels = out
    hidden = _scaled(4096, width)
    classifier = nn.Sequential(
        nn.Linear(channels * 2 * 2, hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Linear(hidden, hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Linear(hidden, num_classes),
    )
    model = _PlainNet(nn.Sequential(*layers), 2, classifier)
    _kaiming_init(model)
    for m in classifier.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)
    return model


def _small_resnet(arch: str) -> Callable[..., _SmallResNet]:
    block, blocks = _RESNET_BLOCKS[arch]
    return functools.partial(_SmallResNet, block, blocks)


_SMALL_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "alexnet": _small_alexnet,
    "vgg16": _small_vgg16,
    **{arch: _small_resnet(arch) for arch in _RESNET_BLOCKS},
}


def _torchvision(arch: str, *, num_classes: int, in_channels: int) -> nn.Module:
    model = getattr(tvm, arch)(weights=None, num_classes=num_classes)
    if in_channels != 3:
        owner, name = (model, "conv1") if _is_resnet(arch) else (model.features, "0")
        old = getattr(owner, name)
        new = nn.Conv2d(
            in_channels,
            old.out_channels,
            old.kernel_size,
            old.stride,
            old.padding,
            bias=old.bias is not None,
        )
        if arch != "alexnet":  # torchvision initialises AlexNet with PyTorch's defaults
            _kaiming_init(new)
        setattr(owner, name, new)
    return model


def _node(model: nn.Module, arch: str, layer: str) -> str:
    """Name of the FX node whose output is ``layer``."""
    _check_layer(arch, layer)
    if _is_resnet(arch):
        block, blocks = _RESNET_BLOCKS[arch]
        stage = getattr(model, "layer3", [])
        if len(stage) != blocks[2] or not isinstance(stage[-1], block):
            raise ValueError(f"expected a model of arch {arch!r}, got {type(model).__name__}")
        return f"layer3.{len(stage) - 1}.add"
    convs = [i for i, m in enumerate(getattr(model, "features", [])) if isinstance(m, nn.Conv2d)]
    if len(convs) != max(_CONV_INDEX[arch].values()):
        raise ValueError(
            f"expected a model of arch {arch!r}, got {type(model).__name__} with {len(convs)} convolutions"
        )
    conv = convs[_CONV_INDEX[arch][layer] - 1]
    relu = next(i for i, m in enumerate(model.features) if i > conv and isinstance(m, nn.ReLU))
    return f"features.{relu}"


_LOWERS: weakref.WeakKeyDictionary[nn.Module, dict[str, _Lower]] = weakref.WeakKeyDictionary()


def _lower(model: nn.Module, arch: str, layer: str) -> _Lower:
    """The extractor of ``layer``, built once per (model, layer) and reused."""
    per_model = _LOWERS.setdefault(model, {})
    if layer not in per_model:
        per_model[layer] = _Lower(model, _node(model, arch, layer))
    return per_model[layer]


def _upper(model: nn.Module, arch: str, layer: str) -> nn.Sequential:
    if _is_resnet(arch):
        # The final ReLU of layer3's last block is not part of `last14`, so it opens `upper`.
        # Not in place, so that upper(x) leaves x intact.
        return nn.Sequential(nn.ReLU(), model.layer4, model.avgpool, nn.Flatten(1), model.fc)
    start = int(_node(model, arch, layer).split(".")[1]) + 1
    return nn.Sequential(*model.features[start:], model.avgpool, nn.Flatten(1), *model.classifier)


# ----------------------------------------------------------------------------- public functions


def layers(arch: str) -> list[str]:
    """Names of the feature layers the paper uses for ``arch``.

    Example:
        >>> layers("vgg16")
        ['conv4_3', 'conv5_2', 'conv5_3']
    """
    _check_arch(arch)
    return list(_LAYERS[arch])


def build(
    arch: str,
    *,
    num_classes: int,
    input_size: int = 224,
    in_channels: int = 3,
    width: float = 1.0,
) -> nn.Module:
    """A randomly initialised network of architecture ``arch``.

    Args:
        arch: one of :data:`ARCHS`.
        num_classes: outputs of the final linear layer.
        input_size: side of the square input images in pixels. From 64 px on torchvision's
            originals are built; below, the small variants described in the module docstring
            (at least 16 px).
        in_channels: channels of the input images (1 for grey-scale).
        width: multiplier of every channel count of the small variants (0.25 gives VGG-16
            channels 16..128 and ResNet base width 16); must be 1.0 from 64 px on.

    Returns:
        A module mapping images (N, in_channels, input_size, input_size) to logits
        (N, num_classes). The small AlexNet has no batch normalisation; the small VGG-16 has a
        BatchNorm2d between each convolution and its ReLU, without which 13 convolutions do not
        train from scratch in a few epochs (torchvision's VGG-16 at 224 px has none).

    Example:
        >>> model = build("vgg16", num_classes=10, input_size=32, in_channels=1, width=0.25)
        >>> tuple(model(torch.zeros(2, 1, 32, 32)).shape)
        (2, 10)
    """
    _check_arch(arch)
    if num_classes < 1 or in_channels < 1:
        raise ValueError(
            f"expected num_classes >= 1 and in_channels >= 1, got {num_classes} and {in_channels}"
        )
    if not width > 0:
        raise ValueError(f"expected width > 0, got {width}")
    if input_size < _SMALL_MIN_INPUT:
        raise ValueError(f"expected input_size >= {_SMALL_MIN_INPUT}, got {input_size}")
    if input_size >= _PAPER_MIN_INPUT:
        if width != 1.0:
            raise ValueError(
                f"width is only supported for input_size < {_PAPER_MIN_INPUT} (the small "
                f"variants); got width={width} with input_size={input_size}"
            )
        return _torchvision(arch, num_classes=num_classes, in_channels=in_channels)
    return _SMALL_BUILDERS[arch](num_classes=num_classes, in_channels=in_channels, width=width)


def split(model: nn.Module, arch: str, layer: str) -> tuple[nn.Module, nn.Module]:
    """Cut ``model`` at ``layer`` into the part below and the part above the feature.

    ``upper(lower(x))`` equals ``model(x)``. Both parts share their parameters with ``model``,
    so training ``upper`` (fine-tuning "the layers above the feature", Sec. 4.3) trains
    ``model``; deep-copy first, or use :func:`replace_head`, to keep ``model`` intact.

    Args:
        model: a network returned by :func:`build` for ``arch``.
        arch: one of :data:`ARCHS`.
        layer: one of :func:`layers` ``(arch)``.

    Returns:
        ``(lower, upper)``: ``lower`` maps images (N, C_in, H_in, W_in) to the feature
        (N, C, H, W) that :func:`features` returns, ``upper`` maps that feature to logits
        (N, num_classes). For ResNets ``upper`` starts with the ReLU that ends ``layer3``.

    Example:
        >>> model = build("alexnet", num_classes=10, input_size=32, in_channels=1, width=0.25)
        >>> lower, upper = split(model.eval(), "alexnet", "conv4")
        >>> x = torch.randn(2, 1, 32, 32)
        >>> torch.equal(upper(lower(x)), model(x))
        True
    """
    return _lower(model, arch, layer), _upper(model, arch, layer)


def features(
    model: nn.Module, arch: str, layer: str, images: Tensor, *, batch_size: int = 256
) -> Tensor:
    """The feature ``layer`` of ``model`` for every image, computed in eval mode.

    Runs in batches of ``batch_size`` on the model's device without gradients and restores
    every submodule's train/eval mode afterwards. The extractor is built once per
    (model, layer) and cached; replacing submodules of ``model`` below ``layer`` afterwards is
    not seen by the cache.

    Args:
        model: a network returned by :func:`build` for ``arch``.
        arch: one of :data:`ARCHS`.
        layer: one of :func:`layers` ``(arch)``.
        images: (N, C_in, H_in, W_in), on any device.
        batch_size: images per forward pass.

    Returns:
        (N, C, H, W) float32 tensor on the CPU, with (C, H, W) = :func:`feature_shape`.

    Example:
        >>> model = build("resnet18", num_classes=10, input_size=32, in_channels=1, width=0.25)
        >>> tuple(features(model, "resnet18", "last14", torch.zeros(3, 1, 32, 32)).shape)
        (3, 64, 8, 8)
    """
    if images.dim() != 4 or images.shape[0] == 0:
        raise ValueError(
            f"expected images of shape (N, C, H, W) with N >= 1, got {tuple(images.shape)}"
        )
    if batch_size < 1:
        raise ValueError(f"expected batch_size >= 1, got {batch_size}")
    lower = _lower(model, arch, layer)
    device = next(model.parameters()).device
    modes = {m: m.training for m in (*model.modules(), *lower.modules())}
    lower.eval()
    try:
        with torch.no_grad():
            out = [lower(batch.to(device)).float().cpu() for batch in images.split(batch_size)]
    finally:
        lower.body.train(modes[lower.body])  # also swaps the FX graph back
        for m, mode in modes.items():
            m.training = mode
    return torch.cat(out)


@functools.cache
def feature_shape(
    arch: str, layer: str, *, input_size: int = 224, width: float = 1.0, in_channels: int = 3
) -> tuple[int, int, int]:
    """Shape (C, H, W) of the feature ``layer`` of ``build(arch, ...)`` for one image.

    Computed by a forward pass on the ``meta`` device (no memory, no arithmetic).

    Example:
        >>> feature_shape("resnet34", "last14", input_size=224)
        (256, 14, 14)
        >>> feature_shape("vgg16", "conv5_3", input_size=32, width=0.25, in_channels=1)
        (128, 4, 4)
    """
    _check_layer(arch, layer)
    with torch.device("meta"):
        model = build(
            arch, num_classes=1, input_size=input_size, in_channels=in_channels, width=width
        ).eval()
        x = torch.empty(1, in_channels, input_size, input_size)
    c, h, w = _Lower(model, _node(model, arch, layer))(x).shape[1:]
    return int(c), int(h), int(w)


def replace_head(upper: nn.Module, num_classes: int) -> nn.Module:
    """A deep copy of ``upper`` whose last ``nn.Linear`` is new, with ``num_classes`` outputs.

    The copy shares no parameter with ``upper`` or its model; the new layer has PyTorch's
    default initialisation (Table 4 trains a 6-class head on a 10-class network's upper layers).

    Example:
        >>> model = build("resnet18", num_classes=10, input_size=32, in_channels=1, width=0.25)
        >>> _, upper = split(model, "resnet18", "last14")
        >>> tuple(replace_head(upper, 6)(torch.zeros(2, 64, 8, 8)).shape)
        (2, 6)
    """
    if num_classes < 1:
        raise ValueError(f"expected num_classes >= 1, got {num_classes}")
    head = copy.deepcopy(upper)
    linears = [name for name, m in head.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"expected a module containing an nn.Linear, got {type(upper).__name__}")
    parent, _, child = linears[-1].rpartition(".")
    old = head.get_submodule(linears[-1])
    new = nn.Linear(
        old.in_features,
        num_classes,
        bias=old.bias is not None,
        device=old.weight.device,
        dtype=old.weight.dtype,
    )
    setattr(head.get_submodule(parent), child, new)
    return head
