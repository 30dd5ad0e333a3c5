"""Grounding the measures: ReSi-style tests with a known answer (beyond the paper).

Three tests of the representation-similarity benchmark ReSi (Klabunde et al.) that port to
small CNNs trained here, each with its own score; knowledge consistency takes part as
``kc_consistency`` = 1 - instability (Eq. 3) and as the order-0 share Var(x(0)) / Var(x*):

* **layer monotonicity** (one network, its conv layers 1..L in order): similarity should fall
  with layer distance. Scores: the violation rate over layer triplets i < j < k (a violation
  is s(i, k) > s(i, j) or s(i, k) > s(j, k); a tie counts half) and the Spearman correlation
  of similarity with minus the layer distance. Pairs are taken shallow -> deep (x = layer i,
  x* = layer j, g pools x to x*'s size).
  The layers' maps differ in size, so SVCCA and PWCCA compare their spatial means
  (:data:`LAYER_CCA_MAPS`); on flattened maps the features outnumber the images and every
  canonical correlation would be 1.
* **functional difference** (pairs of the Table 1 networks of one architecture: the seeds and
  the two halves): similarity at a layer should fall as the networks' behaviour differs.
  Scores: Spearman of similarity with minus the absolute accuracy difference, and with minus
  the Jensen-Shannon divergence of their softmax outputs on the test images.
* **augmentation** (one network, its features for test images under Gaussian input noise of
  increasing level, several noise draws per level): representations of one level form a
  group. Scores: the violation rate over noise-level triplets (as above, on the mean
  similarity between levels) and the AUPRC of similarity for "same level" over all pairs.

In the other two tests both sides are the same layer, and SVCCA and PWCCA take its spatial
positions as samples, as the baselines study does (:data:`kc.studies.baselines.CCA_MAPS`).
Each fit of g on features that are not a cached network layer (layer pairs, noisy inputs) is
cached by the content of its features, so an interrupted run resumes where it stopped.

Every score is oriented so that it is better when lower (violation rates) or higher (the
rest); :func:`winners` names the best measure of each score. This module runs the tests;
the scores, tables and claims live in :mod:`kc.studies.grounding.tables` (re-exported here).
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from tqdm import tqdm

from kc.core.measure import ConsistencyResult
from kc.core.similarity import compare_all, ridge_r2
from kc.engine import cache, zoo
from kc.engine import experiments as ex
from kc.engine.data import make_task
from kc.studies.baselines import CCA_MAPS, MAPS, kc_columns
from kc.studies.common import GFit, pick
from kc.studies.grounding.tables import (
    MEASURES,
    SCORES,
    auprc,
    by_position,
    claims,
    js_divergence,
    scores,
    spearman,
    violation_rate,
    winners,
)
from kc.studies.instability.run import InstabilityStudy

__all__ = [
    "LAYER_CCA_MAPS",
    "MEASURES",
    "SCORES",
    "Result",
    "Settings",
    "auprc",
    "by_position",
    "claims",
    "conv_features",
    "js_divergence",
    "run",
    "scores",
    "spearman",
    "violation_rate",
    "winners",
]

LAYER_CCA_MAPS = "pool"
# The layer test's rule for maps of SVCCA and PWCCA (kc.core.similarity._input): spatial means.

# ---------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    """The grounding notebook's parameters (CONTRIBUTING.md); the defaults live in the notebook
    and the profiles only.

    Attributes:
        table1: the Table 1 notebook's networks and fits of g
            (:class:`kc.studies.instability.run.InstabilityStudy`, so the cache is shared).
        arch: GROUNDING_ARCH, an architecture with plain conv layers (alexnet or vgg16).
        layer: the last of LAYERS[arch], where the functional and augmentation tests look.
        noise_levels: NOISE_LEVELS, input noise std in units of the images' std.
        noise_repeats: NOISE_REPEATS, noise draws per level.
    """

    table1: InstabilityStudy
    arch: str
    layer: str
    noise_levels: Sequence[float]
    noise_repeats: int

    def __post_init__(self) -> None:
        if self.arch not in ("alexnet", "vgg16"):
            raise ValueError(f"GROUNDING_ARCH must be alexnet or vgg16, got {self.arch!r}")
        if self.layer not in zoo.layers(self.arch):
            raise ValueError(f"unknown layer {self.layer!r} of {self.arch}")
        levels = tuple(float(v) for v in self.noise_levels)
        if any(v < 0 for v in levels) or len(set(levels)) != len(levels):
            raise ValueError(f"NOISE_LEVELS must be distinct and >= 0, got {list(levels)}")
        if self.noise_repeats < 1:
            raise ValueError(f"NOISE_REPEATS must be >= 1, got {self.noise_repeats}")
        object.__setattr__(self, "noise_levels", tuple(sorted(levels)))

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Settings:
        """From the notebook's parameters (Table 1's names with LAYERS and DEVICE,
        GROUNDING_ARCH, NOISE_LEVELS, NOISE_REPEATS)."""
        p = pick(params, ["GROUNDING_ARCH", "NOISE_LEVELS", "NOISE_REPEATS", "LAYERS"])
        arch = p["GROUNDING_ARCH"]
        layers = dict(p["LAYERS"]).get(arch) or zoo.layers(arch)
        # Only the networks and g of Table 1 are used, so Case 1 in one direction suffices.
        table1 = InstabilityStudy.from_params({**params, "BOTH_DIRECTIONS": False})
        return cls(table1=table1, arch=arch, layer=list(layers)[-1],
                   noise_levels=p["NOISE_LEVELS"], noise_repeats=int(p["NOISE_REPEATS"]))  # fmt: skip

    @property
    def g(self) -> GFit:
        """How g is fitted (Table 1's)."""
        return self.table1.g

    @property
    def lam_arch(self) -> float:
        """lambda of Eq. 2 for this architecture's features (LAMBDA_ALEXNET for AlexNet)."""
        return self.g.lam_for(self.arch)

    def networks(self) -> list[ex.NetSpec]:
        """The functional test's networks: one per seed, then the two halves of the first."""
        t1 = self.table1
        out = [t1.spec(self.arch, s) for s in t1.seeds]
        return out + [t1.spec(self.arch, t1.seeds[0], t) for t in ("half0", "half1")]


# ---------------------------------------------------------------------------- features


def conv_features(model: nn.Module, images: Tensor, batch_size: int = 256) -> dict[str, Tensor]:
    """The output of every convolution's ReLU in ``model.features`` (AlexNet/VGG layout).

    Returns:
        ``{"conv1": (N, C1, H1, W1), "conv2": ...}`` in the network's order, float32 on the CPU
        (conv4 and conv5 of AlexNet are :func:`kc.engine.zoo.features`'s layers of those names).
    """
    feats = getattr(model, "features", None)
    if not isinstance(feats, nn.Sequential):
        raise ValueError(
            f"expected a model with a .features Sequential, got {type(model).__name__}"
        )
    relus, seen_conv = [], False
    for m in feats:
        if isinstance(m, nn.Conv2d):
            seen_conv = True
        elif isinstance(m, nn.ReLU) and seen_conv:
            relus.append(m)
            seen_conv = False
    out: dict[str, list[Tensor]] = {f"conv{i + 1}": [] for i in range(len(relus))}
    hooks = [
        r.register_forward_hook(lambda _m, _i, o, name=f"conv{i + 1}": out[name].append(o.cpu()))
        for i, r in enumerate(relus)
    ]
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        with torch.no_grad():
            for start in range(0, images.shape[0], batch_size):
                feats(images[start : start + batch_size].to(device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return {k: torch.cat(v).float() for k, v in out.items()}


def _images(s: Settings, split: str, limit: int | None) -> Tensor:
    """The images of ``get_features`` (same task, subset and seed), stacked."""
    ds = make_task("all", (s.table1.dataset,), split, image_size=s.table1.net["input_size"],
                   limit=limit, seed=ex.DATA_SEED)  # fmt: skip
    return torch.stack([ds[i][0] for i in range(len(ds))])


def _outputs(model: nn.Module, images: Tensor) -> Tensor:
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        return torch.cat([model(images[i : i + 256].to(device)).softmax(1).cpu()
                          for i in range(0, len(images), 256)])  # fmt: skip


# ---------------------------------------------------------------------------- running


@dataclass(frozen=True)
class Result:
    """Pairs of every test with every measure (``pairs``), and the networks (``networks``)."""

    pairs: pd.DataFrame
    networks: pd.DataFrame
    settings: Settings = field(repr=False)


def _digest(t: Tensor) -> str:
    return hashlib.sha256(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:20]


def _kc_row(res: ConsistencyResult, order: int) -> dict:
    """Knowledge consistency's columns of a pair (:func:`kc_columns`) and its fit's steps and
    convergence (1.0 or 0.0, so that the two directions of a pair can be averaged)."""
    fit = res.info["fit"]
    return {**kc_columns(res.variances, res.instability, order),
            "fit_steps": int(fit["steps"]), "fit_converged": float(fit["converged"])}  # fmt: skip


def _fit_tensors(s: Settings, train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor]) -> dict:
    """g on feature tensors that are not named layers (hooks, noisy inputs). Same budget as
    the ``get_consistency`` fits: at most ``G_STEPS`` optimiser steps. The scores are cached
    under the features' content and the fit's settings (and the code version of the fit)."""
    from kc.core.measure import consistency

    resize = "pool" if train[0].shape[2:] != train[1].shape[2:] else None
    fit = dict(order=s.g.order, lam=s.lam_arch, max_steps=s.g.g_steps,
               batch_size=s.g.g_batch_size, lr=s.g.g_lr, seed=0, resize=resize)  # fmt: skip
    config = {"features": [_digest(t) for t in (*train, *test)], "fit": fit}

    def compute() -> dict:
        res = consistency(train[0], train[1], test=test, progress=False,
                          device=ex.tr.resolve_device(s.table1.device), **fit)  # fmt: skip
        return _kc_row(res, s.g.order)

    version = ex._version(ex._G_CODE + ("kc.core.measure",))
    return dict(cache.cached("grounding-g", config, compute, version=version, label="grounding"))


def _measures(
    train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor], cca_maps: str = CCA_MAPS
) -> dict[str, float]:
    row = compare_all(test[0], test[1], maps=MAPS, cca_maps=cca_maps)
    row["ridge_r2"] = ridge_r2(train[0], train[1], test=test, maps=MAPS)
    return row


def _layer_rows(s: Settings, train_images: Tensor, test_images: Tensor, progress: bool) -> list:
    rows = []
    for seed in s.table1.seeds:
        net = ex.get_net(s.table1.spec(s.arch, seed), device=s.table1.device, progress=progress)
        ftr, fte = conv_features(net.model, train_images), conv_features(net.model, test_images)
        names = list(ftr)
        pairs = list(itertools.combinations(range(len(names)), 2))
        for i, j in tqdm(pairs, desc=f"layer test, {net.label}", disable=not progress):
            a, b = names[i], names[j]
            tr_, te_ = (ftr[a], ftr[b]), (fte[a], fte[b])
            row = {"test": "layer", "network": net.label, "a": a, "b": b, "i": i, "j": j}
            measures = _measures(tr_, te_, LAYER_CCA_MAPS)
            rows.append({**row, **measures, **_fit_tensors(s, tr_, te_)})
    return rows


def _functional_rows(s: Settings, test_images: Tensor, progress: bool) -> tuple[list, list]:
    specs = s.networks()
    nets = [ex.get_net(sp, device=s.table1.device, progress=progress) for sp in specs]
    probs = [_outputs(n.model, test_images) for n in nets]
    feats = {}
    for sp in specs:
        for split, lim in (("train", s.g.fit_limit), ("test", s.g.test_limit)):
            feats[sp.label, split] = ex.get_features(
                sp, s.layer, split=split, task="all", limit=lim, device=s.table1.device,
                progress=False,
            )[0]
    rows = []
    pairs = list(itertools.combinations(range(len(specs)), 2))
    for i, j in tqdm(pairs, desc="functional test", disable=not progress):
        a, b = specs[i], specs[j]
        tr_ = (feats[a.label, "train"], feats[b.label, "train"])
        te_ = (feats[a.label, "test"], feats[b.label, "test"])
        both = [_kc_pair(s, x, t, progress) for x, t in ((a, b), (b, a))]
        kc = {k: float(np.mean([d[k] for d in both])) for k in both[0]}
        rows.append({
            "test": "functional", "network": s.arch, "a": a.label, "b": b.label, "i": i, "j": j,
            "acc_diff": abs(nets[i].accuracy - nets[j].accuracy),
            "jsd": js_divergence(probs[i], probs[j]), **_measures(tr_, te_), **kc,
        })  # fmt: skip
    table = [{"network": n.label, "task": sp.task, "seed": sp.seed, "accuracy": n.accuracy}
             for n, sp in zip(nets, specs, strict=True)]  # fmt: skip
    return rows, table


def _kc_pair(s: Settings, x: ex.NetSpec, t: ex.NetSpec, progress: bool) -> dict:
    # The study's one call of get_consistency (Table 1's arguments, so its fits are reused).
    res = ex.get_consistency(x, s.layer, t, s.layer, task="all", **s.g.kwargs(s.arch),
                             device=s.table1.device, progress=progress)  # fmt: skip
    return _kc_row(res, s.g.order)


def noisy(images: Tensor, level: float, seed: int) -> Tensor:
    """``images`` plus Gaussian noise of std ``level`` times the images' std (seeded)."""
    gen = torch.Generator().manual_seed(seed)
    return images + level * images.std() * torch.randn(images.shape, generator=gen)


def _augmentation_rows(s: Settings, train_images: Tensor, test_images: Tensor, progress: bool):
    t1 = s.table1
    net = ex.get_net(t1.spec(s.arch, t1.seeds[0]), device=t1.device, progress=progress)
    reps = []
    for li, level in enumerate(s.noise_levels):
        for r in range(s.noise_repeats):
            seed = 1000 * li + r
            tr_ = zoo.features(net.model, s.arch, s.layer, noisy(train_images, level, seed))
            te_ = zoo.features(net.model, s.arch, s.layer, noisy(test_images, level, seed + 1))
            reps.append((li, r, tr_, te_))
    rows = []
    pairs = list(itertools.combinations(range(len(reps)), 2))
    for p, q in tqdm(pairs, desc="augmentation test", disable=not progress):
        (la, ra, tra, tea), (lb, rb, trb, teb) = reps[p], reps[q]
        tr_, te_ = (tra, trb), (tea, teb)
        rows.append({
            "test": "augmentation", "network": net.label, "a": f"{s.noise_levels[la]}#{ra}",
            "b": f"{s.noise_levels[lb]}#{rb}", "i": la, "j": lb, "same_group": la == lb,
            **_measures(tr_, te_), **_fit_tensors(s, tr_, te_),
        })  # fmt: skip
    return rows


def run(settings: Settings, *, progress: bool = True) -> Result:
    """Every pair of the three tests, with every measure of :data:`MEASURES`."""
    train_images = _images(settings, "train", settings.g.fit_limit)
    test_images = _images(settings, "test", settings.g.test_limit)
    rows = _layer_rows(settings, train_images, test_images, progress)
    func, nets = _functional_rows(settings, test_images, progress)
    rows += func
    rows += _augmentation_rows(settings, train_images, test_images, progress)
    return Result(pd.DataFrame(rows), pd.DataFrame(nets), settings)
