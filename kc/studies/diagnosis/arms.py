"""Sec. 4.1's two accuracy experiments: the classifier inputs and one classifier per input.

With x_W, x_S the weak and strong networks' features of the same images, g_ws: x_W -> x_S and
g_sw: x_S -> x_W, classifiers with the architecture of W's layers above its feature are
trained on three fixed inputs, all in W's raw feature units (:func:`classifier_inputs`):
raw x_W; g_ws(x_W) + x_S^Delta (blind spots added back, exactly x_S); and g_sw(x_S)
(unreliable components removed). :func:`train_arms` trains one head per input with the same
budget and initialisation and measures each gain with its paired standard error.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn

from kc.core.fit import match_spatial, prepare
from kc.core.model import ConsistencyNet
from kc.core.normalize import Normalizer
from kc.engine import zoo
from kc.engine.finetune import Budget, fine_tune
from kc.engine.seeding import seeded_build
from kc.engine.train import resolve_device

__all__ = [
    "ARMS",
    "HEAD_INITS",
    "apply_g",
    "classifier_inputs",
    "make_head",
    "paired_se",
    "train_arm",
    "train_arms",
]

#: The classifier inputs of the two accuracy experiments, in table order.
ARMS = ("raw", "blind_spots_added", "unreliable_removed")

#: How the classifier above the weak feature starts: a fresh initialisation of W's upper
#: architecture, or W's own trained upper layers.
HEAD_INITS = ("fresh", "finetune")


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
        model: the trained (weak) network, built by :func:`kc.engine.zoo.build` for ``arch``.
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
    fresh = seeded_build(
        seed,
        lambda: zoo.build(
            arch,
            num_classes=num_classes,
            input_size=input_size,
            in_channels=first.in_channels,
            width=width,
        ),
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
    budget: Budget,
    device: str = "auto",
    progress: bool = False,
) -> tuple[float, Tensor, float]:
    """Train ``head`` on fixed features (the lower network and g stay frozen, Appendix A).

    Args:
        head: from :func:`make_head` (trained in place), or a function returning one.
        train, test: ``(features (N, C, H, W), labels (N,))``.
        budget: the training budget (the same for every arm).
        device, progress: as in :func:`kc.engine.train.train_head`.

    Returns:
        ``(accuracy %, correct (M,) bool per test image, training seconds)`` (the seconds of
        the training when it was computed, also when the head comes from the cache); with
        ``budget.epochs == 0`` the head is only evaluated.
    """
    if not isinstance(head, nn.Module):
        head = head()
    dev = resolve_device(device)
    if budget.epochs > 0:  # a cache entry: a rerun loads the trained head
        seconds = fine_tune(head, train, test, budget, device=dev, label="arm-head",
                            progress=progress)["ft_seconds"]  # fmt: skip
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
        **train_kwargs: passed to :func:`train_arm` (budget, device, progress).

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
