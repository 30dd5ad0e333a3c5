"""Sec. 4.1: diagnosing a weak network with a strong one (blind spots, unreliable features).

Two networks trained for the same task, a weak one W (the paper: AlexNet, feature ``conv5``) and
a strong one S (ResNet-34, feature ``last14``), with features x_W and x_S of the same images.
Two consistency networks g (Eq. 1) are fitted, one per direction:

* ``g_ws`` maps x_W -> x_S. Its residual x_S^Delta = x_S - g_ws(x_W) (Eq. 3) holds what S
  encodes and W does not: the **blind spots** of W.
* ``g_sw`` maps x_S -> x_W. Its residual x_W^Delta = x_W - g_sw(x_S) holds what W encodes and
  S cannot explain: the **unreliable features** of W.

The two accuracy experiments then train classifiers above W's feature on three fixed inputs
(:mod:`kc.studies.diagnosis.arms`). :class:`DiagnosisStudy` holds the settings, :func:`run`
computes everything (nets, features and g cached by :mod:`kc.engine.experiments`), and
:mod:`kc.studies.diagnosis.tables` makes the tables and the claims of the notebook
``sec41_diagnosis``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd
import torch

from kc.core.measure import ConsistencyResult
from kc.engine import data
from kc.engine import experiments as ex
from kc.engine.finetune import Budget
from kc.studies.common import GFit, net_fields, pick
from kc.studies.diagnosis.arms import HEAD_INITS, classifier_inputs, make_head, train_arms
from kc.studies.diagnosis.tables import results_table
from kc.studies.paper import PAPER_STRONG, PAPER_WEAK
from kc.studies.regime import Regime, arch_fields

__all__ = [
    "Diagnosis",
    "DiagnosisStudy",
    "resize_mode",
    "roles",
    "run",
    "run_pairs",
    "sample_images",
]


@dataclass(frozen=True)
class DiagnosisStudy:
    """The settings of Sec. 4.1, built from the notebook's parameters with :meth:`from_params`.

    Attributes:
        dataset: DATASET. seed: the networks' seed (SEEDS[0]); seeds: every seed of SEEDS, one
            pair of networks each (:meth:`pairs`; empty: ``(seed,)``). net: the shared
            :class:`kc.engine.experiments.NetSpec` fields. g: how both g are fitted (lambda of
            AlexNet's features for both directions, Sec. 4). ft_epochs, ft_lr: the classifiers'
            budget (FT_EPOCHS, FT_LR). head_init: HEAD_INIT, one of ``HEAD_INITS``.
        weak, strong: (arch, layer) of the paper's weak and strong networks.
        device: DEVICE.
    """

    dataset: str
    seed: int
    net: Mapping[str, Any]
    g: GFit
    ft_epochs: int
    ft_lr: float
    head_init: str
    device: str
    weak: tuple[str, str] = PAPER_WEAK
    strong: tuple[str, str] = PAPER_STRONG
    progress: bool = False
    seeds: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if self.head_init not in HEAD_INITS:
            raise ValueError(f"HEAD_INIT must be one of {HEAD_INITS}, got {self.head_init!r}")
        seeds = tuple(int(s) for s in self.seeds) or (int(self.seed),)
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"SEEDS must be distinct, got {list(seeds)}")
        object.__setattr__(self, "seeds", seeds)
        object.__setattr__(self, "net", dict(self.net))

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> DiagnosisStudy:
        """From DATASET, SEEDS, FT_EPOCHS, FT_LR, HEAD_INIT, DEVICE, the networks' and g's names."""
        p = pick(params, ["DATASET", "SEEDS", "FT_EPOCHS", "FT_LR", "HEAD_INIT", "DEVICE"])
        if not p["SEEDS"]:
            raise ValueError(f"SEEDS must name at least one seed, got {p['SEEDS']!r}")
        return cls(
            dataset=p["DATASET"],
            seed=int(p["SEEDS"][0]),
            seeds=tuple(int(s) for s in p["SEEDS"]),
            net=net_fields(params),
            g=GFit.from_params(params),
            ft_epochs=int(p["FT_EPOCHS"]),
            ft_lr=float(p["FT_LR"]),
            head_init=p["HEAD_INIT"],
            device=p["DEVICE"],
        )

    @property
    def budget(self) -> Budget:
        """The classifiers' budget: FT_EPOCHS from FT_LR, the networks' batch and optimiser."""
        return Budget(
            epochs=self.ft_epochs,
            lr=self.ft_lr,
            batch_size=self.net["batch_size"],
            optimizer=self.net["optimizer"],
            seed=self.seed,
        )

    @property
    def paper_names(self) -> dict[str, str]:
        """``{"weak": "alexnet conv5", "strong": "resnet34 last14"}``: labels of the paper's roles."""
        return {"weak": " ".join(self.weak), "strong": " ".join(self.strong)}

    def in_regime(self, regime: Regime) -> DiagnosisStudy:
        """The same networks' architectures and seed trained in ``regime`` (issue 24), g
        fitted and the classifiers trained on the regime's training images."""
        return replace(self, net=regime.net(self.net), g=regime.g(self.g))

    def pairs(self) -> list[DiagnosisStudy]:
        """One study per seed of :attr:`seeds`: the pair (weak, strong) of networks of that seed."""
        return [replace(self, seed=s) for s in self.seeds]

    def spec(self, arch: str) -> ex.NetSpec:
        """The network of ``arch`` (task "all", the study's seed), as in Tables 1-2."""
        return ex.NetSpec(arch, datasets=(self.dataset,), task="all", seed=self.seed,
                          **arch_fields(self.net, arch))  # fmt: skip


@dataclass
class Diagnosis:
    """What :func:`run` computed. Keys ``"a"`` / ``"b"`` are the paper's weak / strong sides;
    ``weak`` / ``strong`` say which of them is weak and strong on our data (:func:`roles`).

    Attributes:
        nets, layers: the two trained networks and their features' layers.
        weak, strong: ``"a"`` or ``"b"``. names: ``{"weak": "arch layer", "strong": ...}``.
        blind: the fit weak -> strong (its residual: W's blind spots).
        unreliable: the fit strong -> weak (its residual: W's unreliable features).
        arms: :func:`kc.studies.diagnosis.arms.train_arms`' frame.
        table: :func:`results_table`. seconds: wall time per step.
    """

    nets: dict[str, ex.TrainedNet]
    layers: dict[str, str]
    weak: str
    strong: str
    names: dict[str, str]
    blind: ConsistencyResult
    unreliable: ConsistencyResult
    arms: pd.DataFrame
    table: pd.DataFrame
    seconds: dict[str, float] = field(default_factory=dict)


def run(study: DiagnosisStudy) -> Diagnosis:
    """Train (or load) W and S, fit (or load) g both ways, train the three classifiers."""
    dev, prog = study.device, study.progress
    seconds = {}
    (arch_a, layer_a), (arch_b, layer_b) = study.weak, study.strong
    layers = {"a": layer_a, "b": layer_b}
    start = time.perf_counter()
    nets = {k: ex.get_net(study.spec(a), device=dev, progress=prog)
            for k, a in (("a", arch_a), ("b", arch_b))}  # fmt: skip
    seconds["networks"] = time.perf_counter() - start
    weak, strong = roles(nets["a"].accuracy, nets["b"].accuracy)
    names = {role: f"{nets[k].spec.arch} {layers[k]}" for role, k in
             (("weak", weak), ("strong", strong))}  # fmt: skip

    def features(split: str, limit: int | None) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        feats = {k: ex.get_features(nets[k], layers[k], split=split, limit=limit, device=dev,
                                    progress=prog) for k in nets}  # fmt: skip
        if not torch.equal(feats["a"][1], feats["b"][1]):
            raise ValueError(f"the two networks' {split} features are not of the same images")
        return feats

    test = features("test", study.g.test_limit)
    resize = resize_mode(test[weak][0].shape[1:], test[strong][0].shape[1:])
    start = time.perf_counter()
    res = {
        (src, dst): ex.get_consistency(
            nets[src], layers[src], nets[dst], layers[dst],
            **study.g.kwargs(nets[src].spec.arch, nets[dst].spec.arch),
            resize=resize, device=dev, progress=prog,
        )
        for src, dst in ((weak, strong), (strong, weak))
    }  # fmt: skip
    seconds["g fits"] = time.perf_counter() - start
    blind, unreliable = res[weak, strong], res[strong, weak]
    train = features("train", study.net["train_limit"])
    g_ws, g_sw = blind.model, unreliable.model
    inputs_train = classifier_inputs(train[weak][0], train[strong][0], g_ws, g_sw)
    inputs_test = classifier_inputs(test[weak][0], test[strong][0], g_ws, g_sw)
    net_w = nets[weak]

    def head() -> torch.nn.Module:
        return make_head(
            net_w.model, net_w.spec.arch, layers[weak], init=study.head_init,
            num_classes=net_w.num_classes, input_size=net_w.spec.input_size,
            width=net_w.spec.width, seed=study.seed,
        )  # fmt: skip

    start = time.perf_counter()
    arms = train_arms(
        head, inputs_train, train[weak][1], inputs_test, test[weak][1],
        budget=study.budget, device=dev,
    )  # fmt: skip
    seconds["classifiers"] = time.perf_counter() - start
    acc = arms.set_index("arm")
    table = results_table(
        names=names,
        net_accuracy={"weak": nets[weak].accuracy, "strong": nets[strong].accuracy},
        arm_accuracy=acc["accuracy"].to_dict(),
        gain_se=acc["gain_se"].to_dict(),
        instability={"blind_spots": blind.instability, "unreliable": unreliable.instability},
    )
    return Diagnosis(nets, layers, weak, strong, names, blind, unreliable, arms, table, seconds)


def run_pairs(study: DiagnosisStudy) -> dict[int, Diagnosis]:
    """:func:`run` for every pair of networks (:meth:`DiagnosisStudy.pairs`), keyed by seed."""
    return {s.seed: run(s) for s in study.pairs()}


def sample_images(study: DiagnosisStudy, n: int) -> torch.Tensor:
    """The first ``n`` test images (n, C, H, W) of the images g was evaluated on."""
    images = data.make_task("all", (study.dataset,), "test", image_size=study.net["input_size"],
                            limit=study.g.test_limit, seed=ex.DATA_SEED)  # fmt: skip
    return torch.stack([images[i][0] for i in range(min(n, len(images)))])


def resize_mode(x_shape: Sequence[int], target_shape: Sequence[int]) -> str | None:
    """``None`` when two feature shapes (C, H, W) have the same spatial size, else ``"pool"``.

    Example:
        >>> resize_mode((256, 13, 13), (256, 14, 14))
        'pool'
    """
    if len(x_shape) != 3 or len(target_shape) != 3:
        raise ValueError(
            f"expected shapes (C, H, W), got {tuple(x_shape)} and {tuple(target_shape)}"
        )
    return None if tuple(x_shape[1:]) == tuple(target_shape[1:]) else "pool"


def roles(acc_a: float, acc_b: float) -> tuple[str, str]:
    """Which of two networks is weak and which strong, by test accuracy: ``(weak, strong)``.

    ``"a"`` is the paper's weak network; on a tie the paper's roles are kept.

    Example:
        >>> roles(88.0, 91.0), roles(91.0, 88.0)
        (('a', 'b'), ('b', 'a'))
    """
    for name, acc in (("acc_a", acc_a), ("acc_b", acc_b)):
        if not math.isfinite(acc):
            raise ValueError(f"{name} must be a finite accuracy, got {acc}")
    return ("a", "b") if acc_a <= acc_b else ("b", "a")
