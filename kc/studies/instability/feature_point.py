"""Where is VGG-16's feature taken? Table 1's instability after the ReLU and at the conv output.

A cause experiment for Table 1's verdict "VGG-16: conv4_3 is more stable than conv5_3"
(issue 8). :mod:`kc.engine.zoo` takes a VGG-16 layer's feature after its ReLU; our small VGG-16 has a
BatchNorm2d between each convolution and its ReLU, and the authors' released code (which uses
torchvision's ``vgg16_bn``) takes conv4_3 before its BatchNorm, i.e. the raw output of the
convolution. This study reads that raw output with a forward hook on the layer's
``nn.Conv2d`` (:func:`conv_before_norm`, :func:`conv_outputs`), on exactly the images of
Table 1's features (:func:`kc.engine.experiments.get_features`: ``FIT_LIMIT`` training and
``TEST_LIMIT`` test images of the task ``"all"``, subsets seeded by
:data:`kc.engine.experiments.DATA_SEED`), fits g with Table 1's settings and measures it on the test
images (:func:`fit_conv_point`, cached with :mod:`kc.engine.cache`). :func:`point_table` and
:func:`ordering` put both feature points side by side.

Nothing in :mod:`kc.engine.zoo` or :mod:`kc.engine.experiments` changes, so Table 1's networks and fits are
the cached ones. Nothing here writes files.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from kc.core.fit import check_aligned, fit_consistency
from kc.core.measure import evaluate_consistency
from kc.engine import cache, data, zoo
from kc.engine import experiments as ex
from kc.engine import train as tr
from kc.studies.common import pick
from kc.studies.instability.run import InstabilityStudy
from kc.studies.paper import CASE1, paper_column

__all__ = [
    "ARCH",
    "POINTS",
    "FeaturePointStudy",
    "conv_before_norm",
    "conv_outputs",
    "fit_conv_point",
    "ordering",
    "point_fits",
    "point_table",
]

#: The architecture of the experiment (the one whose Table 1 verdict it probes).
ARCH = "vgg16"
#: The two feature points: Table 1's (kc.engine.zoo), and the convolution's raw output.
AFTER_RELU, CONV_OUTPUT = "after ReLU", "conv output (before BN)"
POINTS = (AFTER_RELU, CONV_OUTPUT)

_KIND = "feature-point"
#: Modules whose code the cached fits depend on (the networks' code is in their cache key).
_CODE = ("kc.engine.data", "kc.engine.zoo", "kc.core.decompose", "kc.core.fit", "kc.core.losses", "kc.core.model",
         "kc.core.normalize", "kc.core.precision", "kc.core.measure", "kc.core.metrics", "kc.studies.instability.feature_point")  # fmt: skip


# ---------------------------------------------------------------------------- the hook


def conv_before_norm(model: nn.Module, arch: str, layer: str) -> nn.Conv2d:
    """The ``nn.Conv2d`` whose (normalised, rectified) output is :func:`kc.engine.zoo.features`' layer.

    The feature of a VGG-16 / AlexNet layer is the output of a ReLU in ``model.features``
    (:func:`kc.engine.zoo` 's FX node ``features.<i>``); its convolution is the last ``nn.Conv2d``
    before that ReLU (a BatchNorm2d may sit between them).

    Example:
        >>> model = zoo.build("vgg16", num_classes=2, input_size=32, in_channels=1, width=0.125)
        >>> conv_before_norm(model, "vgg16", "conv4_3").out_channels
        64
    """
    if arch not in ("alexnet", "vgg16"):
        raise ValueError(f"the conv output is defined for alexnet and vgg16 layers, got {arch!r}")
    relu = int(zoo._node(model, arch, layer).split(".")[1])  # the layer's ReLU in `features`
    convs = [m for m in list(model.features)[:relu] if isinstance(m, nn.Conv2d)]
    return convs[-1]


class _Stop(Exception):
    """Raised by the hook to end the forward pass once the convolution has run."""


@torch.no_grad()
def conv_outputs(
    model: nn.Module, arch: str, layer: str, images: Tensor, *, batch_size: int = 256
) -> Tensor:
    """The raw output of ``layer``'s convolution (before BatchNorm and ReLU) for every image.

    A forward hook on :func:`conv_before_norm` records the convolution's output and stops the
    pass there; the model runs in eval mode (its modes are restored afterwards).

    Args:
        model: a network of :func:`kc.engine.zoo.build` for ``arch``.
        arch, layer: ``"vgg16"`` / ``"alexnet"`` and one of :func:`kc.engine.zoo.layers`.
        images: (N, C_in, H_in, W_in).
        batch_size: images per forward pass.

    Returns:
        (N, C, H, W) float32 on the CPU, the shape of :func:`kc.engine.zoo.features`' output.
    """
    if images.dim() != 4 or images.shape[0] == 0:
        raise ValueError(
            f"expected images of shape (N, C, H, W), N >= 1, got {tuple(images.shape)}"
        )
    conv = conv_before_norm(model, arch, layer)
    device = next(model.parameters()).device
    got: list[Tensor] = []

    def hook(_module: nn.Module, _inputs: Any, output: Tensor) -> None:
        got.append(output.detach().float().cpu())
        raise _Stop

    modes = {m: m.training for m in model.modules()}
    model.eval()
    handle = conv.register_forward_hook(hook)
    try:
        for batch in images.split(batch_size):
            try:
                model(batch.to(device))
            except _Stop:
                pass
    finally:
        handle.remove()
        for m, mode in modes.items():
            m.training = mode
    return torch.cat(got)


# ---------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class FeaturePointStudy:
    """Table 1's study and whether to run the feature-point check (FEATURE_POINT_CHECK).

    The layers are Table 1's VGG-16 layers (``LAYERS["vgg16"]``); the pairs its Case 1 pairs.
    """

    instability: InstabilityStudy
    enabled: bool

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> FeaturePointStudy:
        """From Table 1's parameters and FEATURE_POINT_CHECK."""
        flag = pick(params, ["FEATURE_POINT_CHECK"])["FEATURE_POINT_CHECK"]
        if not isinstance(flag, bool):
            raise ValueError(f"FEATURE_POINT_CHECK must be True or False, got {flag!r}")
        return cls(instability=InstabilityStudy.from_params(params), enabled=flag)

    def layers(self) -> list[str]:
        """Table 1's VGG-16 layers, shallow to deep (empty without VGG-16)."""
        names = self.instability.layers.get(ARCH, ())
        return sorted(names, key=zoo.layers(ARCH).index)


# ---------------------------------------------------------------------------- the fits


def _conv_features(net: ex.TrainedNet, layer: str, split: str, limit: int | None) -> tuple:
    """The conv output on the images of ``get_features(net, layer, split=split, limit=limit)``."""
    spec = net.spec
    ds = data.make_task(spec.task, spec.datasets, split, image_size=spec.input_size,
                        limit=limit, seed=ex.DATA_SEED)  # fmt: skip
    loader = DataLoader(ds, batch_size=256, shuffle=False)
    parts = [conv_outputs(net.model, spec.arch, layer, images) for images, _ in loader]
    return torch.cat(parts), ds.labels.clone()


def fit_conv_point(
    study: InstabilityStudy, x_spec: ex.NetSpec, t_spec: ex.NetSpec, layer: str
) -> dict[str, Any]:
    """g from ``x_spec``'s to ``t_spec``'s conv output at ``layer``, Table 1's settings, cached.

    g is fitted with :func:`kc.fit_consistency` exactly as
    :func:`kc.engine.experiments.get_consistency` fits Table 1's g (K, lambda, the step budget, lr,
    batch, seed 0, Sigma ``"batch"``, the plateau rule), on the ``FIT_LIMIT`` training images,
    and measured with :func:`kc.evaluate_consistency` on the ``TEST_LIMIT`` test images.

    Returns:
        ``{"instability", "variances" (name -> float), "fit" (the FitReport dict),
        "from_cache"}``.
    """
    if x_spec.task != "all" or t_spec.task != "all":
        raise ValueError(f"expected two Case 1 networks (task 'all'), got {x_spec.label} and "
                         f"{t_spec.label}")  # fmt: skip
    g = study.g.kwargs(x_spec.arch)
    nets = {name: ex.get_net(s, device=study.device, progress=study.progress)
            for name, s in (("x", x_spec), ("target", t_spec))}  # fmt: skip
    settings = dict(order=g["order"], lam=float(g["lam"]), max_steps=g["g_steps"],
                    batch_size=g["g_batch_size"], lr=float(g["g_lr"]), seed=0, sigma="batch",
                    resize=None, precision=g["precision"])  # fmt: skip
    config = {
        "x": nets["x"].key,
        "target": nets["target"].key,
        "layer": layer,
        "point": "conv",
        "task": "all",
        "fit_limit": g["fit_limit"],
        "test_limit": g["test_limit"],
        "data_seed": ex.DATA_SEED,
        "fit": settings,
    }
    calls = []

    def compute() -> dict[str, Any]:
        calls.append(1)
        feats = {}
        for split, limit in (("train", g["fit_limit"]), ("test", g["test_limit"])):
            xs, xl = _conv_features(nets["x"], layer, split, limit)
            ts, tl = _conv_features(nets["target"], layer, split, limit)
            check_aligned((xl, tl), xs.shape[0])
            feats[split] = (xs, ts)
        fitted = fit_consistency(*feats["train"], device=tr.resolve_device(study.device),
                                 progress=study.progress, **settings)  # fmt: skip
        res = evaluate_consistency(fitted, *feats["test"])
        return {
            "instability": float(res.instability),
            "variances": {str(k): float(v) for k, v in res.variances.items()},
            "fit": fitted.fit_report.to_dict(),
        }

    label = f"{x_spec.label}/{layer}-conv -> {t_spec.label}/{layer}-conv"
    entry = cache.cached(_KIND, config, compute, version=cache.code_version(_CODE), label=label)
    return {**entry, "from_cache": not calls}


def point_fits(study: FeaturePointStudy) -> pd.DataFrame:
    """Both feature points for every Case 1 pair and VGG-16 layer of Table 1.

    ``after ReLU`` rows are Table 1's own fits (:meth:`InstabilityStudy.fit`, cached);
    ``conv output (before BN)`` rows are :func:`fit_conv_point`.

    Returns:
        Columns ``point, arch, layer, column, x, target, instability, steps, converged,
        from_cache``; empty when the study has no VGG-16 layer.
    """
    ins = study.instability
    rows = []
    for layer in study.layers():
        for a, b in ins.case1_pairs():
            x, t = ins.spec(ARCH, a), ins.spec(ARCH, b)
            after = ins.fit(x, t, layer)
            conv = fit_conv_point(ins, x, t, layer)
            where = {"arch": ARCH, "layer": layer, "column": paper_column(1, ARCH, layer),
                     "x": x.label, "target": t.label}  # fmt: skip
            for point, value, fit, cached in (
                (AFTER_RELU, after.instability, after.info["fit"], after.info["from_cache"]),
                (CONV_OUTPUT, conv["instability"], conv["fit"], conv["from_cache"]),
            ):
                rows.append({"point": point, **where, "instability": float(value),
                             "steps": int(fit["steps"]), "converged": bool(fit["converged"]),
                             "from_cache": bool(cached)})  # fmt: skip
    columns = ["point", "arch", "layer", "column", "x", "target", "instability", "steps",
               "converged", "from_cache"]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)


def point_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean instability over the Case 1 pairs per feature point and layer, with the spread.

    Returns:
        Columns ``setting, point, layer, column, instability, std`` (population), ``min,
        max, n_fits``.
    """
    out = []
    for (point, layer), group in rows.groupby(["point", "layer"], sort=False):
        v = group["instability"].to_numpy(dtype=float)
        out.append({"setting": CASE1, "point": point, "layer": layer,
                    "column": group["column"].iloc[0], "instability": float(v.mean()),
                    "std": float(v.std()), "min": float(v.min()), "max": float(v.max()),
                    "n_fits": len(v)})  # fmt: skip
    return pd.DataFrame(out)


def ordering(table: pd.DataFrame) -> pd.DataFrame:
    """Does the shallower VGG-16 layer stay the more stable one at each feature point?

    The paper's Table 1 has conv4_3 < conv5_3 (Case 1). For each point and each pair of
    consecutive layers of :func:`point_table`, ``holds`` is ``mean(shallow) < mean(deep)``.

    Returns:
        Columns ``point, shallow, deep, shallow_value, deep_value, holds, statement``.
    """
    out = []
    for point, group in table.groupby("point", sort=False):
        vals = dict(zip(group["layer"], group["instability"], strict=True))
        layers = sorted(vals, key=zoo.layers(ARCH).index)
        for shallow, deep in itertools.pairwise(layers):
            holds = bool(vals[shallow] < vals[deep])
            rel = "<" if holds else ">="
            statement = (
                f"{point}: {shallow} {vals[shallow]:.3f} {rel} {deep} {vals[deep]:.3f}, the "
                f"paper's ordering ({shallow} more stable) {'holds' if holds else 'does not hold'}"
            )
            out.append({"point": point, "shallow": shallow, "deep": deep,
                        "shallow_value": float(vals[shallow]), "deep_value": float(vals[deep]),
                        "holds": holds, "statement": statement})  # fmt: skip
    columns = ["point", "shallow", "deep", "shallow_value", "deep_value", "holds", "statement"]
    return pd.DataFrame(out, columns=columns)
