"""Sec. 4.1: diagnosing a weak network with a strong one (blind spots, unreliable features).

Two networks trained for the same task, a weak one W (the paper: AlexNet, feature ``conv5``) and
a strong one S (ResNet-34, feature ``last14``), with features x_W and x_S of the same images.
Two consistency networks g (Eq. 1) are fitted, one per direction:

* ``g_ws`` maps x_W -> x_S. Its residual x_S^Delta = x_S - g_ws(x_W) (Eq. 3) holds what S
  encodes and W does not: the **blind spots** of W.
* ``g_sw`` maps x_S -> x_W. Its residual x_W^Delta = x_W - g_sw(x_S) holds what W encodes and
  S cannot explain: the **unreliable features** of W.

The two accuracy experiments then train classifiers above W's feature on three fixed inputs
(:mod:`kc.studies.diagnosis_arms`). :class:`DiagnosisStudy` holds the settings, :func:`run`
computes everything (nets, features and g cached by :mod:`kc.experiments`), and
:func:`results_table`, :func:`compare_with_paper` and :func:`sec41_claims` make the tables and
the claims of the notebook ``sec41_diagnosis``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch

from kc import data
from kc import experiments as ex
from kc.claims import Claim, check
from kc.fit import ConsistencyResult
from kc.paper import PAPER_STRONG, PAPER_WEAK, SEC41_ROWS, side_by_side
from kc.studies.common import GFit, net_fields, pick
from kc.studies.diagnosis_arms import ARMS, HEAD_INITS, classifier_inputs, make_head, train_arms
from kc.studies.finetune import Budget

__all__ = [
    "Diagnosis",
    "DiagnosisStudy",
    "compare_with_paper",
    "resize_mode",
    "results_table",
    "roles",
    "run",
    "sec41_claims",
    "sample_images",
]

_OURS = "diagnosis (not in the paper)"


@dataclass(frozen=True)
class DiagnosisStudy:
    """The settings of Sec. 4.1, built from the notebook's parameters with :meth:`from_params`.

    Attributes:
        dataset: DATASET. seed: the networks' seed (SEEDS[0]). net: the shared
            :class:`kc.experiments.NetSpec` fields. g: how both g are fitted (lambda of
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

    def __post_init__(self) -> None:
        if self.head_init not in HEAD_INITS:
            raise ValueError(f"HEAD_INIT must be one of {HEAD_INITS}, got {self.head_init!r}")
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

    def spec(self, arch: str) -> ex.NetSpec:
        """The network of ``arch`` (task "all", the study's seed), as in Tables 1-2."""
        return ex.NetSpec(arch, datasets=(self.dataset,), task="all", seed=self.seed, **self.net)


@dataclass
class Diagnosis:
    """What :func:`run` computed. Keys ``"a"`` / ``"b"`` are the paper's weak / strong sides;
    ``weak`` / ``strong`` say which of them is weak and strong on our data (:func:`roles`).

    Attributes:
        nets, layers: the two trained networks and their features' layers.
        weak, strong: ``"a"`` or ``"b"``. names: ``{"weak": "arch layer", "strong": ...}``.
        blind: the fit weak -> strong (its residual: W's blind spots).
        unreliable: the fit strong -> weak (its residual: W's unreliable features).
        arms: :func:`kc.studies.diagnosis_arms.train_arms`' frame.
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


# ---------------------------------------------------------------------------- tables


def results_table(
    *,
    names: Mapping[str, str],
    net_accuracy: Mapping[str, float],
    arm_accuracy: Mapping[str, float],
    gain_se: Mapping[str, float],
    instability: Mapping[str, float],
) -> pd.DataFrame:
    """Our numbers of Sec. 4.1, keyed like the paper's table ``"4.1"``.

    Args:
        names: ``{"weak": label, "strong": label}``, e.g. ``"alexnet conv5"``.
        net_accuracy: ``{"weak": %, "strong": %}``, the networks' own test accuracies.
        arm_accuracy: ``{arm: %}`` for :data:`kc.studies.diagnosis_arms.ARMS`, the classifiers' test accuracies.
        gain_se: ``{"blind_spots_added": se, "unreliable_removed": se}``, paired standard
            errors (points) of each arm's gain over ``"raw"``.
        instability: ``{"blind_spots": Var(x_S^Delta)/Var(x_S), "unreliable": Var(x_W^Delta)/Var(x_W)}``.

    Returns:
        Columns ``setting, row, column, value, se, unit``; ``setting``/``row`` equal the paper's
        where the paper reports the number, ``column`` names our network and feature.
    """
    missing = [a for a in ARMS if a not in arm_accuracy]
    missing += [k for k in ("weak", "strong") if k not in names or k not in net_accuracy]
    missing += [k for k in ("blind_spots", "unreliable") if k not in instability]
    missing += [k for k in ARMS[1:] if k not in gain_se]
    if missing:
        raise ValueError(f"results_table is missing entries {missing}")
    weak, strong = names["weak"], names["strong"]
    gain_blind = arm_accuracy["blind_spots_added"] - arm_accuracy["raw"]
    gain_unrel = arm_accuracy["unreliable_removed"] - arm_accuracy["raw"]
    nan = float("nan")
    rows = [
        (*SEC41_ROWS["weak"], weak, net_accuracy["weak"], nan, "top-1 %"),
        (*SEC41_ROWS["strong"], strong, net_accuracy["strong"], nan, "top-1 %"),
        (*SEC41_ROWS["gain_blind"], weak, gain_blind, gain_se["blind_spots_added"], "points"),
        (*SEC41_ROWS["raw"], weak, arm_accuracy["raw"], nan, "top-1 %"),
        (
            *SEC41_ROWS["unreliable_removed"],
            weak,
            arm_accuracy["unreliable_removed"],
            nan,
            "top-1 %",
        ),
        (
            _OURS,
            "classifier on g(x_A) + blind spots (= x_B)",
            weak,
            arm_accuracy["blind_spots_added"],
            nan,
            "top-1 %",
        ),
        (
            _OURS,
            "accuracy gain when unreliable features removed",
            weak,
            gain_unrel,
            gain_se["unreliable_removed"],
            "points",
        ),
        (
            _OURS,
            "instability x_A -> x_B: Var(x_B^Delta) / Var(x_B) (blind spots)",
            f"{weak} -> {strong}",
            instability["blind_spots"],
            nan,
            "ratio",
        ),
        (
            _OURS,
            "instability x_B -> x_A: Var(x_A^Delta) / Var(x_A) (unreliable)",
            f"{strong} -> {weak}",
            instability["unreliable"],
            nan,
            "ratio",
        ),
    ]
    return pd.DataFrame(rows, columns=["setting", "row", "column", "value", "se", "unit"])


def compare_with_paper(ours: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Our rows next to the paper's table ``"4.1"`` (:func:`kc.paper.paper_table`).

    Args:
        ours: from :func:`results_table`.
        paper: the paper's rows with ``setting, row, value``.

    Returns:
        In the order of ``ours``: ``setting, row, network, ours, paper, difference, se, unit``;
        ``paper`` is NaN for our rows the paper does not report.
    """
    merged = side_by_side(ours, paper, on=["setting", "row"], how="left")
    merged.insert(2, "network", ours["column"].to_numpy())
    merged["se"] = ours["se"].to_numpy()
    merged["unit"] = ours["unit"].to_numpy()
    return merged


def _gain_claim(cid: str, claim: str, raw: float, gain: float, se: float, *, paper: str) -> Claim:
    """A Sec. 4.1 claim that a classifier input raises accuracy over raw x_W by ``gain`` +/- ``se``."""
    return check(
        cid,
        "Sec. 4.1",
        claim,
        bool(gain > 0),
        evidence=f"{raw:.2f}% -> {raw + gain:.2f}%, gain {gain:+.2f} +/- {se:.2f} points "
        f"(paired SE, {_in_se(gain, se)})",
        paper=paper,
        numbers={"raw": raw, "gain": gain, "se": se},
    )


def _in_se(gain: float, se: float) -> str:
    """``"+2.1 SE"``: a gain in units of its standard error (``"SE 0"`` when se is 0)."""
    return f"{gain / se:+.1f} SE" if se > 0 else "SE 0"


def _gain_claim(cid: str, claim: str, raw: float, gain: float, se: float, *, paper: str) -> Claim:
    """A Sec. 4.1 claim that a classifier input raises accuracy over raw x_W by ``gain`` +/- ``se``."""
    return check(
        cid,
        "Sec. 4.1",
        claim,
        bool(gain > 0),
        evidence=f"{raw:.2f}% -> {raw + gain:.2f}%, gain {gain:+.2f} +/- {se:.2f} points "
        f"(paired SE, {_in_se(gain, se)})",
        paper=paper,
        numbers={"raw": raw, "gain": gain, "se": se},
    )


def _in_se(gain: float, se: float) -> str:
    """``"+2.1 SE"``: a gain in units of its standard error (``"SE 0"`` when se is 0)."""
    return f"{gain / se:+.1f} SE" if se > 0 else "SE 0"


def sec41_claims(
    table: pd.DataFrame, paper: pd.DataFrame, paper_names: Mapping[str, str]
) -> list[Claim]:
    """The claims of Sec. 4.1 checked on :func:`results_table`'s numbers.

    Args:
        table: from :func:`results_table`.
        paper: the paper's table ``"4.1"`` (:func:`kc.paper.paper_table`), quoted as evidence.
        paper_names: ``{"weak": ..., "strong": ...}``: the labels of the paper's weak and
            strong networks in ``table["column"]`` (to tell whether the roles held).
    """

    def value(setting: str, row: str) -> tuple[float, float, str]:
        hit = table[(table["setting"] == setting) & (table["row"] == row)]
        if len(hit) != 1:
            raise ValueError(f"table has {len(hit)} rows for {setting!r} / {row!r}")
        return float(hit["value"].iloc[0]), float(hit["se"].iloc[0]), str(hit["column"].iloc[0])

    acc_weak, _, weak = value(*SEC41_ROWS["weak"])
    acc_strong, _, strong = value(*SEC41_ROWS["strong"])
    gain_b, se_b, _ = value(*SEC41_ROWS["gain_blind"])
    raw, _, _ = value(*SEC41_ROWS["raw"])
    gain_u, se_u, _ = value(_OURS, "accuracy gain when unreliable features removed")
    kept = weak == paper_names["weak"]
    roles_text = f"{strong} {acc_strong:.2f}% vs {weak} {acc_weak:.2f}%" + (
        ""
        if kept
        else f"; on our data {paper_names['weak']} is the stronger network, so the "
        f"diagnosis below treats {weak} as the weak one"
    )
    item = "Sec. 4.1"
    theirs = paper.set_index(["setting", "row"])["value"]
    p_gain, p_raw, p_removed = (
        float(theirs[SEC41_ROWS[k]]) for k in ("gain_blind", "raw", "unreliable_removed")
    )
    return [
        check(
            "sec41.roles",
            item,
            f"the strong network ({paper_names['strong']}) is more accurate than the weak one "
            f"({paper_names['weak']})",
            bool(kept and acc_strong > acc_weak),
            evidence=roles_text,
            numbers={"weak": acc_weak, "strong": acc_strong},
        ),
        _gain_claim(
            "sec41.blind_spots",
            f"adding the blind spots of the weak network ({weak}) back raises accuracy",
            raw,
            gain_b,
            se_b,
            paper=f"gain {p_gain:+.1f} points",
        ),
        _gain_claim(
            "sec41.unreliable",
            f"removing the unreliable features of the weak network ({weak}) raises accuracy",
            raw,
            gain_u,
            se_u,
            paper=f"{p_raw:.1f}% -> {p_removed:.1f}%",
        ),
    ]
