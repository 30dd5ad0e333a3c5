"""Sec. 4.1: diagnosing a weak network with a strong one (blind spots, unreliable features).

Two networks trained for the same task, a weak one W (the paper: AlexNet, feature ``conv5``) and
a strong one S (ResNet-34, feature ``last14``), with features x_W and x_S of the same images.
Two consistency networks g (Eq. 1) are fitted, one per direction:

* ``g_ws`` maps x_W -> x_S. Its residual x_S^Delta = x_S - g_ws(x_W) (Eq. 3) holds what S
  encodes and W does not: the **blind spots** of W.
* ``g_sw`` maps x_S -> x_W. Its residual x_W^Delta = x_W - g_sw(x_S) holds what W encodes and
  S cannot explain: the **unreliable features** of W.

The two accuracy experiments then train classifiers with the architecture of W's layers above
its feature on three fixed inputs, all expressed in W's raw feature units (see
:func:`classifier_inputs`): raw x_W; g_ws(x_W) + x_S^Delta (blind spots added back; this is
exactly x_S); and g_sw(x_S) (unreliable components removed).

Everything here works on tensors and trained modules; the cached nets, features and fitted g
come from :mod:`kc.experiments`, called by the notebook ``sec41_diagnosis``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn

from kc import zoo
from kc.fit import ConsistencyResult, match_spatial, prepare
from kc.model import ConsistencyNet
from kc.normalize import Normalizer
from kc.report import side_by_side
from kc.train import resolve_device, train_head

__all__ = [
    "ARMS",
    "HEAD_INITS",
    "PAPER_KEYS",
    "PAPER_STRONG",
    "PAPER_WEAK",
    "apply_g",
    "channel_maps",
    "choose_lambda",
    "classifier_inputs",
    "compare_with_paper",
    "component_figure",
    "make_head",
    "paired_se",
    "resize_mode",
    "results_table",
    "roles",
    "train_arm",
    "train_arms",
    "verdict_inputs",
]

#: The paper's weak and strong networks and their features (Sec. 4.1).
PAPER_WEAK = ("alexnet", "conv5")
PAPER_STRONG = ("resnet34", "last14")

#: The classifier inputs of the two accuracy experiments, in table order.
ARMS = ("raw", "blind_spots_added", "unreliable_removed")

#: How the classifier above the weak feature starts: a fresh initialisation of W's upper
#: architecture, or W's own trained upper layers.
HEAD_INITS = ("fresh", "finetune")

#: (setting, row) of our rows that the paper's table "4.1" also has (kc.paper keys).
PAPER_KEYS = {
    "weak": ("networks", "weak DNN accuracy"),
    "strong": ("networks", "strong DNN accuracy"),
    "gain_blind": (
        "blind spots (AlexNet weak vs ResNet-34 strong; CUB)",
        "accuracy gain when blind spots added to g(x_A)",
    ),
    "raw": ("unreliable features", "classifier on raw x_A"),
    "unreliable_removed": ("unreliable features", "classifier on g(x_B) (unreliable removed)"),
}
_OURS = "diagnosis (not in the paper)"


def choose_lambda(x_arch: str, target_arch: str, lam: float, lam_alexnet: float) -> float:
    """lambda of Eq. 2 for one fit: ``lam_alexnet`` if either side is AlexNet, else ``lam``.

    Sec. 4 raises lambda for AlexNet features because they are noisy; a diagnosis fit has
    AlexNet features on one side in both directions, so both directions get the same lambda.

    Example:
        >>> choose_lambda("resnet34", "alexnet", 0.1, 8.0)
        8.0
    """
    return float(lam_alexnet if "alexnet" in (x_arch, target_arch) else lam)


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


# ---------------------------------------------------------------------------- features


@torch.no_grad()
def apply_g(
    g: ConsistencyNet,
    x: Tensor,
    *,
    size: Sequence[int] | None = None,
    resize: str | None = None,
    batch_size: int = 512,
) -> Tensor:
    """g(x) for raw features x, in g's normalised target units.

    Args:
        g: a fitted consistency network (its stored input normaliser is applied to x).
        x: raw input features (N, C, H, W).
        size: spatial size (H*, W*) of the target; x is mapped onto it with ``resize``.
        resize: ``None``, ``"pool"`` or ``"interpolate"`` (as in :func:`kc.fit_consistency`).
        batch_size: images per forward pass (memory only).

    Returns:
        (N, C*, H*, W*) on the CPU.
    """
    if x.dim() != 4:
        raise ValueError(f"expected x of shape (N, C, H, W), got {tuple(x.shape)}")
    if size is not None:
        x = match_spatial(x, tuple(size), resize)
    xn, _ = prepare(g, x)
    g.eval()
    return torch.cat([g(xn[i : i + batch_size]).cpu() for i in range(0, xn.shape[0], batch_size)])


def _normalizer(g: ConsistencyNet, which: str) -> Normalizer:
    stats = g.normalizer(which)
    if stats is None:
        raise ValueError(f"g has no stored {which} normaliser; fit it with normalize_{which}=True")
    return stats


def classifier_inputs(
    x_weak: Tensor, x_strong: Tensor, g_ws: ConsistencyNet, g_sw: ConsistencyNet
) -> dict[str, Tensor]:
    """The three classifier inputs of Sec. 4.1, all in the weak network's raw units.

    * ``"raw"``: x_W unchanged.
    * ``"blind_spots_added"``: g_ws(x_W) + x_S^Delta with x_S^Delta = x_S - g_ws(x_W), both in
      the normalised units of x_S (so the sum is normalised x_S, exactly), then mapped into W's
      raw units with W's global mean and std (``z * std_W + mean_W``) and, if the spatial sizes
      differ, average-pooled onto W's size.
    * ``"unreliable_removed"``: g_sw(x_S), in the normalised units of x_W, mapped back to raw x_W
      units with the same statistics.

    The footnote-2 normalisation is global (one mean and std), so each input is an affine
    rescaling of a feature and all three share the mean and variance of raw x_W: the classifier
    sees the same scale in every arm, and W's own upper layers can be fine-tuned on each.

    Args:
        x_weak: raw features of W, (N, C_W, H_W, W_W).
        x_strong: raw features of S for the same images, (N, C_S, H_S, W_S), C_S == C_W.
        g_ws: fitted g mapping x_W -> x_S; g_sw: fitted g mapping x_S -> x_W.

    Returns:
        ``{arm: (N, C_W, H_W, W_W)}`` for the arms of :data:`ARMS`.
    """
    if x_weak.dim() != 4 or x_strong.dim() != 4 or x_weak.shape[0] != x_strong.shape[0]:
        raise ValueError(
            f"expected features (N, C, H, W) of the same N images, got {tuple(x_weak.shape)} "
            f"and {tuple(x_strong.shape)}"
        )
    if x_weak.shape[1] != x_strong.shape[1]:
        raise ValueError(
            f"the weak network's upper layers take {x_weak.shape[1]} channels but the strong "
            f"feature has {x_strong.shape[1]}; choose widths with equal channel counts"
        )
    weak_size, strong_size = tuple(x_weak.shape[2:]), tuple(x_strong.shape[2:])
    resize = None if weak_size == strong_size else "pool"
    norm_w = _normalizer(g_ws, "x")
    norm_s = _normalizer(g_ws, "x_star")
    # Blind spots: x_S^Delta in normalised x_S units (Eq. 3), added back to g_ws(x_W).
    consistent_s = apply_g(g_ws, x_weak, size=strong_size, resize=resize)
    target_s = norm_s(x_strong)
    blind = target_s - consistent_s
    added = match_spatial(consistent_s + blind, weak_size, resize)
    # Unreliable features removed: g_sw(x_S) in normalised x_W units, back to raw x_W units.
    norm_w2 = _normalizer(g_sw, "x_star")
    removed = apply_g(g_sw, x_strong, size=weak_size, resize=resize)
    return {
        "raw": x_weak,
        "blind_spots_added": norm_w.inverse(added),
        "unreliable_removed": norm_w2.inverse(removed),
    }


# ---------------------------------------------------------------------------- classifiers


def make_head(
    model: nn.Module,
    arch: str,
    layer: str,
    *,
    init: str,
    num_classes: int,
    input_size: int,
    width: float,
    seed: int,
) -> nn.Module:
    """A classifier with the architecture of ``model``'s layers above ``layer``.

    Args:
        model: the trained (weak) network, built by :func:`kc.zoo.build` for ``arch``.
        arch, layer: its architecture and feature layer.
        init: ``"fresh"``: a new initialisation of that architecture (``zoo.build`` seeded by
            ``seed``), so no arm starts from weights tuned to one of the inputs; ``"finetune"``:
            a deep copy of the trained upper layers.
        num_classes, input_size, width: as the network was built.
        seed: seed of the fresh initialisation.

    Returns:
        A module mapping (B, C, H, W) features to (B, num_classes) logits, sharing nothing
        with ``model``.
    """
    if init not in HEAD_INITS:
        raise ValueError(f"init must be one of {HEAD_INITS}, got {init!r}")
    if init == "finetune":
        import copy

        return zoo.split(copy.deepcopy(model), arch, layer)[1]
    first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fresh = zoo.build(
            arch,
            num_classes=num_classes,
            input_size=input_size,
            in_channels=first.in_channels,
            width=width,
        )
    return zoo.split(fresh, arch, layer)[1]


@torch.no_grad()
def _correct(head: nn.Module, x: Tensor, y: Tensor, device: torch.device) -> Tensor:
    head.to(device).eval()
    hits = [
        (head(x[i : i + 512].to(device)).argmax(1).cpu() == y[i : i + 512])
        for i in range(0, x.shape[0], 512)
    ]
    return torch.cat(hits)


def train_arm(
    head: nn.Module | Callable[[], nn.Module],
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    optimizer: str,
    seed: int,
    device: str = "auto",
    progress: bool = False,
) -> tuple[float, Tensor, float]:
    """Train ``head`` on fixed features (the lower network and g stay frozen, Appendix A).

    Args:
        head: from :func:`make_head` (trained in place), or a function returning one.
        train, test: ``(features (N, C, H, W), labels (N,))``.
        epochs, lr, batch_size, optimizer, seed: as in :func:`kc.train.train_head`.
        device, progress: as in :func:`kc.train.train_head`.

    Returns:
        ``(accuracy %, correct (M,) bool per test image, training seconds)``; with
        ``epochs == 0`` the head is only evaluated.
    """
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    if not isinstance(head, nn.Module):
        head = head()
    dev = resolve_device(device)
    if epochs > 0:
        report = train_head(
            head,
            train[0],
            train[1],
            test_x=test[0],
            test_y=test[1],
            epochs=epochs,
            lr=lr,
            batch_size=batch_size,
            optimizer=optimizer,
            seed=seed,
            device=dev,
            progress=progress,
        )
        seconds = report.seconds
    else:
        seconds = 0.0
    correct = _correct(head, test[0], test[1].long(), dev)
    return 100.0 * float(correct.float().mean()), correct, seconds


def train_arms(
    make: Callable[[], nn.Module],
    train_inputs: Mapping[str, Tensor],
    train_labels: Tensor,
    test_inputs: Mapping[str, Tensor],
    test_labels: Tensor,
    **train_kwargs: Any,
) -> pd.DataFrame:
    """Train one head per arm of :data:`ARMS` with the same budget and initialisation.

    Args:
        make: returns a new head (called once per arm; with a fixed seed every arm starts
            from the same weights).
        train_inputs, test_inputs: ``{arm: features}`` from :func:`classifier_inputs`.
        train_labels, test_labels: (N,) and (M,).
        **train_kwargs: passed to :func:`train_arm` (epochs, lr, batch_size, optimizer, seed,
            device).

    Returns:
        One row per arm: ``arm, accuracy, gain, gain_se, seconds``; ``gain`` and its paired
        standard error are relative to the ``"raw"`` arm.
    """
    missing = [a for a in ARMS if a not in train_inputs or a not in test_inputs]
    if missing:
        raise ValueError(f"missing classifier inputs for arms {missing}; expected {ARMS}")
    outcomes = {}
    for arm in ARMS:
        outcomes[arm] = train_arm(
            make, (train_inputs[arm], train_labels), (test_inputs[arm], test_labels), **train_kwargs
        )
    base_acc, base_correct, _ = outcomes["raw"]
    rows = [
        {
            "arm": arm,
            "accuracy": acc,
            "gain": acc - base_acc,
            "gain_se": paired_se(base_correct, correct) if arm != "raw" else 0.0,
            "seconds": seconds,
        }
        for arm, (acc, correct, seconds) in outcomes.items()
    ]
    return pd.DataFrame(rows)


def paired_se(correct_a: Tensor, correct_b: Tensor) -> float:
    """Standard error (points) of acc(b) - acc(a) measured on the same test images.

    With per-image outcomes d_i = b_i - a_i in {-1, 0, 1}, SE = 100 * std(d) / sqrt(M).

    Example:
        >>> a = torch.tensor([True, True, False, False]); b = torch.tensor([True, False, True, True])
        >>> round(paired_se(a, b), 2)
        41.46
    """
    if correct_a.shape != correct_b.shape or correct_a.dim() != 1 or correct_a.numel() < 2:
        raise ValueError(
            f"expected two outcome vectors (M,) with M >= 2 of the same images, got "
            f"{tuple(correct_a.shape)} and {tuple(correct_b.shape)}"
        )
    d = correct_b.double() - correct_a.double()
    return 100.0 * float(d.std(unbiased=False)) / math.sqrt(d.numel())


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
        arm_accuracy: ``{arm: %}`` for :data:`ARMS`, the classifiers' test accuracies.
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
        (*PAPER_KEYS["weak"], weak, net_accuracy["weak"], nan, "top-1 %"),
        (*PAPER_KEYS["strong"], strong, net_accuracy["strong"], nan, "top-1 %"),
        (*PAPER_KEYS["gain_blind"], weak, gain_blind, gain_se["blind_spots_added"], "points"),
        (*PAPER_KEYS["raw"], weak, arm_accuracy["raw"], nan, "top-1 %"),
        (
            *PAPER_KEYS["unreliable_removed"],
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


def _in_se(gain: float, se: float) -> str:
    """``"+2.1 SE"``: a gain in units of its standard error (``"SE 0"`` when se is 0)."""
    return f"{gain / se:+.1f} SE" if se > 0 else "SE 0"


def verdict_inputs(
    table: pd.DataFrame, paper_names: Mapping[str, str]
) -> list[tuple[str, bool, str]]:
    """The claims of Sec. 4.1 checked on :func:`results_table`'s numbers.

    Args:
        table: from :func:`results_table`.
        paper_names: ``{"weak": ..., "strong": ...}``: the labels of the paper's weak and
            strong networks in ``table["column"]`` (to tell whether the roles held).

    Returns:
        ``(claim, holds, evidence)`` triples for :func:`kc.report.verdict`.
    """

    def value(setting: str, row: str) -> tuple[float, float, str]:
        hit = table[(table["setting"] == setting) & (table["row"] == row)]
        if len(hit) != 1:
            raise ValueError(f"table has {len(hit)} rows for {setting!r} / {row!r}")
        return float(hit["value"].iloc[0]), float(hit["se"].iloc[0]), str(hit["column"].iloc[0])

    acc_weak, _, weak = value(*PAPER_KEYS["weak"])
    acc_strong, _, strong = value(*PAPER_KEYS["strong"])
    gain_b, se_b, _ = value(*PAPER_KEYS["gain_blind"])
    raw, _, _ = value(*PAPER_KEYS["raw"])
    removed, _, _ = value(*PAPER_KEYS["unreliable_removed"])
    gain_u, se_u, _ = value(_OURS, "accuracy gain when unreliable features removed")
    kept = weak == paper_names["weak"]
    roles_text = f"{strong} {acc_strong:.2f}% vs {weak} {acc_weak:.2f}%" + (
        ""
        if kept
        else f"; on our data {paper_names['weak']} is the stronger network, so the "
        f"diagnosis below treats {weak} as the weak one"
    )
    return [
        (
            f"the strong network ({paper_names['strong']}) is more accurate than the weak one "
            f"({paper_names['weak']})",
            bool(kept and acc_strong > acc_weak),
            roles_text,
        ),
        (
            f"adding the blind spots of the weak network ({weak}) back raises accuracy",
            bool(gain_b > 0),
            f"{raw:.2f}% -> {raw + gain_b:.2f}%, gain {gain_b:+.2f} +/- {se_b:.2f} points "
            f"(paired SE, {_in_se(gain_b, se_b)}; paper +16.1)",
        ),
        (
            f"removing the unreliable features of the weak network ({weak}) raises accuracy",
            bool(gain_u > 0),
            f"{raw:.2f}% -> {removed:.2f}%, gain {gain_u:+.2f} +/- {se_u:.2f} points "
            f"(paired SE, {_in_se(gain_u, se_u)}; paper 60.3% -> 65.6%)",
        ),
    ]


# ---------------------------------------------------------------------------- figure


def channel_maps(t: Tensor) -> Tensor:
    """Mean absolute value over channels: (N, C, H, W) -> (N, H, W)."""
    if t.dim() != 4:
        raise ValueError(f"expected (N, C, H, W), got {tuple(t.shape)}")
    return t.abs().mean(1)


def component_figure(
    images: Tensor,
    directions: Sequence[tuple[str, ConsistencyResult]],
    *,
    to_raw: Sequence[Normalizer | None] | None = None,
):
    """Fig. 3 analogue: raw feature, reconstructed part and residual for a few images.

    Args:
        images: (n, C, H, W) input images (the first channel is shown).
        directions: ``(title, result)`` pairs, e.g. ``("blind spots: x_A -> x_B", res_ab)``;
            each result's ``target``, ``consistent`` and ``components["delta"]`` must hold at
            least n images, in the order of ``images``.
        to_raw: per direction the target's normaliser (``g.normalizer("x_star")``), to show
            the maps in the target network's raw units; None (for all, or for one direction)
            keeps normalised units.

    Returns:
        A matplotlib Figure with one row per image and ``1 + 3 * len(directions)`` panels per
        row, channel-averaged |.| maps; the three panels of a direction share a colour scale.
    """
    import matplotlib.pyplot as plt

    n = images.shape[0]
    norms = list(to_raw) if to_raw is not None else [None] * len(directions)
    if len(norms) != len(directions):
        raise ValueError(f"got {len(norms)} to_raw normalisers for {len(directions)} directions")
    identity = Normalizer(torch.tensor(0.0), torch.tensor(1.0), "global")
    norms = [identity if nm is None else nm for nm in norms]
    cols = 1 + 3 * len(directions)
    fig, axes = plt.subplots(n, cols, figsize=(1.6 * cols, 1.7 * n), squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(images[i, 0].numpy(), cmap="gray")
        for d, ((title, res), norm) in enumerate(zip(directions, norms, strict=True)):
            panels = [
                ("raw feature", norm.inverse(res.target[i : i + 1])),
                ("reconstructed g(x)", norm.inverse(res.consistent[i : i + 1])),
                ("residual x^Delta", res.components["delta"][i : i + 1] * norm.std),
            ]
            maps = [channel_maps(t)[0] for _, t in panels]
            vmax = max(float(m.max()) for m in maps) or 1.0
            for j, ((label, _), m) in enumerate(zip(panels, maps, strict=True)):
                ax = axes[i, 1 + 3 * d + j]
                ax.imshow(m.numpy(), cmap="viridis", vmin=0.0, vmax=vmax)
                if i == 0:
                    ax.set_title(f"{title}\n{label}" if j == 0 else label, fontsize=7, loc="left")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_title("image", fontsize=7)
    fig.tight_layout()
    return fig
