"""Training, evaluation, magnitude pruning (Sec. 4.4) and distillation (Sec. 4.5).

Everything works on any ``nn.Module`` classifier and any map-style ``Dataset`` of
``(image, label)`` pairs. Training follows the paper's setting: no data augmentation, no
pre-training. The learning rate follows a cosine schedule from ``lr`` to 0 over all
iterations (stepped after every batch, so that it also anneals within a one-epoch run).

On the CPU a run is deterministic under ``seed``: each epoch shuffles with its own
``torch.Generator`` seeded from ``(seed, epoch)``, and the global RNG (dropout) is seeded
inside ``torch.random.fork_rng`` so callers' random state is left untouched. With
``checkpoint=path`` the model, optimiser, scheduler, history and RNG state are saved
atomically after every epoch, and a later call with the same path resumes from the last
finished epoch and ends bit-identical to an uninterrupted run.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import prune
from torch.utils.data import DataLoader, Dataset, TensorDataset
from tqdm import tqdm

from kc.engine.cache import atomic_save, safe_load

__all__ = [
    "OPTIMIZERS",
    "TrainReport",
    "distillation_loss",
    "evaluate",
    "finalize_pruning",
    "prune_magnitude",
    "resolve_device",
    "sparsity",
    "train",
    "train_distilled",
    "train_head",
]

log = logging.getLogger(__name__)

OPTIMIZERS = ("adam", "sgd")
_PRUNABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
# loss_fn(model, images, labels) -> (loss, logits)
LossFn = Callable[[nn.Module, Tensor, Tensor], tuple[Tensor, Tensor]]


@dataclass
class TrainReport:
    """What :func:`train` returns.

    Attributes:
        accuracy: top-1 accuracy (%) on ``test_ds`` after training, or None without one.
        train_accuracy: top-1 accuracy (%) on the training batches of the last epoch, measured
            on the fly in training mode (0.0 when no epoch was run).
        seconds: wall-clock training time, summed over resumed runs (evaluation excluded).
        epochs_run: epochs finished, including those restored from a checkpoint.
        history: one dict per epoch: ``epoch``, ``loss``, ``train_accuracy``, ``lr`` (at the
            end of the epoch), ``seconds``.
    """

    accuracy: float | None
    train_accuracy: float
    seconds: float
    epochs_run: int
    history: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (loadable with ``torch.load(weights_only=True)``)."""
        return {
            "accuracy": self.accuracy,
            "train_accuracy": self.train_accuracy,
            "seconds": self.seconds,
            "epochs_run": self.epochs_run,
            "history": [dict(h) for h in self.history],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainReport:
        return cls(
            d["accuracy"],
            d["train_accuracy"],
            d["seconds"],
            d["epochs_run"],
            [dict(h) for h in d["history"]],
        )


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else as ``torch.device``."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


# ---------------------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate(
    model: nn.Module,
    ds: Dataset,
    *,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    num_workers: int = 0,
) -> float:
    """Top-1 accuracy (%) of ``model`` on ``ds`` in eval mode (the mode is restored after).

    Example:
        >>> net = nn.Linear(2, 2, bias=False)
        >>> _ = net.weight.data.copy_(torch.eye(2))
        >>> ds = TensorDataset(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 0]))
        >>> evaluate(net, ds)
        50.0
    """
    if len(ds) == 0:
        raise ValueError("cannot evaluate on an empty data set")
    dev = resolve_device(device)
    was_training = model.training
    model.to(dev).eval()
    correct = 0
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    for images, labels in loader:
        logits = model(images.to(dev))
        correct += int((logits.argmax(1) == labels.to(dev)).sum())
    model.train(was_training)
    return 100.0 * correct / len(ds)


# ---------------------------------------------------------------------------- training


def _cross_entropy(model: nn.Module, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    logits = model(images)
    return F.cross_entropy(logits, labels), logits


def _make_optimizer(
    params: Iterator[nn.Parameter], optimizer: str, lr: float, momentum: float, weight_decay: float
) -> torch.optim.Optimizer:
    if optimizer == "adam":  # L2 regularisation coupled to the gradient (torch.optim.Adam)
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


def _cosine(total_steps: int) -> Callable[[int], float]:
    def factor(step: int) -> float:
        return 0.5 * (1.0 + math.cos(math.pi * min(step, total_steps) / max(total_steps, 1)))

    return factor


def _rng_state(dev: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if dev.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(dev)
    return state


def _set_rng_state(state: dict[str, Any], dev: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if dev.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], dev)


def _fit(
    model: nn.Module,
    train_ds: Dataset,
    loss_fn: LossFn,
    *,
    epochs: int,
    batch_size: int,
    optimizer: str,
    lr: float,
    momentum: float,
    weight_decay: float,
    seed: int,
    device: str | torch.device,
    test_ds: Dataset | None,
    checkpoint: str | Path | None,
    progress: bool,
    num_workers: int,
    desc: str,
) -> TrainReport:
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    if epochs < 0 or batch_size < 1:
        raise ValueError(f"epochs must be >= 0 and batch_size >= 1, got {epochs} and {batch_size}")
    if lr <= 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    n = len(train_ds)
    if n == 0:
        raise ValueError("cannot train on an empty data set")
    dev = resolve_device(device)
    model.to(dev)
    opt = _make_optimizer(model.parameters(), optimizer, lr, momentum, weight_decay)
    # A final batch of one sample would break BatchNorm in training mode: drop it.
    drop_last = n % batch_size == 1 and n > 1
    steps_per_epoch = n // batch_size if drop_last else math.ceil(n / batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _cosine(epochs * steps_per_epoch))
    signature = {
        "epochs": epochs,
        "batch_size": batch_size,
        "optimizer": optimizer,
        "lr": lr,
        "momentum": momentum,
        "weight_decay": weight_decay,
        "seed": seed,
        "n": n,
    }

    history: list[dict[str, float]] = []
    seconds, start_epoch = 0.0, 0
    ckpt_path = Path(checkpoint) if checkpoint is not None else None
    state = safe_load(ckpt_path, map_location=str(dev)) if ckpt_path is not None else None
    if state is not None and state.get("signature") != signature:
        log.warning(
            "ignoring checkpoint %s made with other settings (%s != %s)",
            ckpt_path,
            state.get("signature"),
            signature,
        )
        state = None

    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(seed)
        if state is not None:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            _set_rng_state(state["rng"], dev)
            history, seconds, start_epoch = state["history"], state["seconds"], state["epoch"]
            log.info("resuming %s at epoch %d/%d", ckpt_path, start_epoch, epochs)

        for epoch in range(start_epoch, epochs):
            t0 = time.perf_counter()
            shuffle = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
            loader = DataLoader(
                train_ds,
                batch_size=batch_size,
                shuffle=True,
                generator=shuffle,
                drop_last=drop_last,
                num_workers=num_workers,
            )
            model.train()
            total_loss, correct, seen = 0.0, 0, 0
            bar = tqdm(
                loader, desc=f"{desc} epoch {epoch + 1}/{epochs}", disable=not progress, leave=False
            )
            for images, labels in bar:
                images, labels = images.to(dev), labels.to(dev)
                loss, logits = loss_fn(model, images, labels)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total_loss += float(loss.detach()) * labels.shape[0]
                correct += int((logits.argmax(1) == labels).sum())
                seen += labels.shape[0]
                bar.set_postfix(loss=f"{total_loss / seen:.3f}", acc=f"{100 * correct / seen:.1f}")
            seconds += time.perf_counter() - t0
            history.append(
                {
                    "epoch": epoch + 1,
                    "loss": total_loss / seen,
                    "train_accuracy": 100.0 * correct / seen,
                    "lr": opt.param_groups[0]["lr"],
                    "seconds": seconds,
                }
            )
            if ckpt_path is not None:
                atomic_save(
                    {
                        "signature": signature,
                        "epoch": epoch + 1,
                        "model": model.state_dict(),
                        "optimizer": opt.state_dict(),
                        "scheduler": sched.state_dict(),
                        "rng": _rng_state(dev),
                        "history": history,
                        "seconds": seconds,
                    },
                    ckpt_path,
                )

    model.eval()
    accuracy = evaluate(model, test_ds, device=dev) if test_ds is not None else None
    train_accuracy = history[-1]["train_accuracy"] if history else 0.0
    return TrainReport(accuracy, train_accuracy, seconds, len(history), history)


def train(
    model: nn.Module,
    train_ds: Dataset,
    *,
    epochs: int,
    batch_size: int = 128,
    optimizer: str = "adam",
    lr: float,
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    seed: int = 0,
    device: str | torch.device = "cpu",
    test_ds: Dataset | None = None,
    checkpoint: str | Path | None = None,
    progress: bool = True,
    num_workers: int = 0,
) -> TrainReport:
    """Train a classifier with cross-entropy, no augmentation, cosine learning rate.

    The model is trained in place on ``device`` and left there in eval mode.

    Args:
        model: any classifier mapping images (B, C, H, W) to logits (B, num_classes).
        train_ds: Dataset of (image (C, H, W), label int).
        epochs: passes over ``train_ds`` (0 only evaluates).
        batch_size: images per step (a final batch of a single image is dropped).
        optimizer: ``"adam"`` (``torch.optim.Adam``, L2 ``weight_decay``) or ``"sgd"``
            (with ``momentum``).
        lr: peak learning rate; cosine-annealed to 0 over ``epochs * steps_per_epoch`` steps.
        momentum: SGD momentum (ignored by Adam).
        weight_decay: L2 penalty on all parameters.
        seed: seeds the shuffling and any randomness in the forward pass (dropout); the
            initialisation is the caller's business (seed before building the model).
        device: ``"cpu"``, ``"cuda"``, ``"auto"``...
        test_ds: evaluated once after training for ``TrainReport.accuracy``.
        checkpoint: file saved atomically after every epoch and resumed from if present
            (ignored with a warning if it was made with other settings).
        progress: tqdm bar over the batches of each epoch.
        num_workers: DataLoader worker processes.

    Returns:
        A :class:`TrainReport`.
    """
    return _fit(
        model,
        train_ds,
        _cross_entropy,
        epochs=epochs,
        batch_size=batch_size,
        optimizer=optimizer,
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        seed=seed,
        device=device,
        test_ds=test_ds,
        checkpoint=checkpoint,
        progress=progress,
        num_workers=num_workers,
        desc="train",
    )


# ---------------------------------------------------------------------------- distillation


def distillation_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    targets: Tensor,
    *,
    tau: float = 1.0,
    weight: float = 0.5,
) -> Tensor:
    r"""Footnote 3: Hinton et al.'s distillation loss, ``CE + weight * KD`` (batch means).

    .. math::

        L = \mathrm{CE}(s, y) + w\,\tau^2\,\frac1B\sum_b
            \Big(-\sum_c \mathrm{softmax}(t_b/\tau)_c \log \mathrm{softmax}(s_b/\tau)_c\Big)

    KD is the *soft-target cross-entropy* of Hinton et al. (2014) (not the KL divergence: the
    two differ by the teacher's entropy, a constant with the same gradient), multiplied by
    ``tau**2`` as Hinton et al. advise so that gradients keep their scale when ``tau`` changes;
    with the paper's ``tau = 1`` the factor is 1. The paper (after Mishra & Marr, 2018) uses
    ``tau = 1.0``, ``weight = 0.5``: ``Loss = Loss_classify + 0.5 Loss_distill``.

    Args:
        student_logits: (B, C).
        teacher_logits: (B, C), treated as constants (detached).
        targets: (B,) int64 class labels.
        tau: temperature.
        weight: factor of the distillation term.

    Returns:
        A scalar tensor.

    Example:
        >>> s = torch.zeros(1, 2); t = torch.zeros(1, 2); y = torch.tensor([0])
        >>> round(float(distillation_loss(s, t, y)), 4)  # ln 2 + 0.5 ln 2
        1.0397
    """
    if student_logits.shape != teacher_logits.shape or student_logits.dim() != 2:
        raise ValueError(
            f"expected student and teacher logits of the same shape (B, C), got "
            f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}"
        )
    if tau <= 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    ce = F.cross_entropy(student_logits, targets)
    soft = F.softmax(teacher_logits.detach() / tau, dim=1)
    kd = -(soft * F.log_softmax(student_logits / tau, dim=1)).sum(1).mean()
    return ce + weight * tau**2 * kd


def train_distilled(
    student: nn.Module,
    teacher: nn.Module,
    train_ds: Dataset,
    *,
    tau: float = 1.0,
    weight: float = 0.5,
    **train_kwargs: Any,
) -> TrainReport:
    """:func:`train` ``student`` with :func:`distillation_loss` against a frozen ``teacher``.

    The teacher runs in eval mode without gradients on the same batches (born-again networks,
    Sec. 4.5); ``train_kwargs`` are those of :func:`train` (``epochs``, ``lr``, ``checkpoint``...).
    """
    dev = resolve_device(train_kwargs.get("device", "cpu"))
    teacher.to(dev).eval()

    def loss_fn(model: nn.Module, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        with torch.no_grad():
            teacher_logits = teacher(images)
        logits = model(images)
        return distillation_loss(logits, teacher_logits, labels, tau=tau, weight=weight), logits

    kwargs: dict[str, Any] = {
        "batch_size": 128,
        "optimizer": "adam",
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "seed": 0,
        "device": "cpu",
        "test_ds": None,
        "checkpoint": None,
        "progress": True,
        "num_workers": 0,
    }
    unknown = set(train_kwargs) - set(kwargs) - {"epochs", "lr"}
    if unknown:
        raise ValueError(f"unknown arguments for train: {sorted(unknown)}")
    kwargs.update(train_kwargs)
    return _fit(student, train_ds, loss_fn, desc="distil", **kwargs)


# ---------------------------------------------------------------------------- heads on features


def train_head(
    head: nn.Module,
    train_x: Tensor,
    train_y: Tensor,
    *,
    test_x: Tensor,
    test_y: Tensor,
    epochs: int,
    lr: float,
    batch_size: int = 128,
    optimizer: str = "adam",
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
    checkpoint: str | Path | None = None,
) -> TrainReport:
    """Train the layers above a feature on fixed features (Tables 3-4, Sec. 4.1, Appendix A).

    The features are precomputed (by a frozen lower network, or by a frozen g), so only
    ``head`` learns: the fairness protocol of Appendix A.

    Args:
        head: maps features (B, C, H, W) to logits (B, num_classes), e.g. :func:`kc.engine.zoo.split`'s
            upper part.
        train_x, train_y: training features (N, C, H, W) and labels (N,).
        test_x, test_y: held-out features (M, C, H, W) and labels (M,).
        epochs, lr, batch_size, optimizer, momentum, weight_decay, seed, device, progress,
        checkpoint: as in :func:`train`.

    Returns:
        A :class:`TrainReport` whose ``accuracy`` is on ``(test_x, test_y)``.
    """
    for name, x, y in (("train", train_x, train_y), ("test", test_x, test_y)):
        if x.shape[0] != y.shape[0]:
            raise ValueError(
                f"{name}_x and {name}_y must have the same length, got "
                f"{x.shape[0]} and {y.shape[0]}"
            )
    train_ds = TensorDataset(train_x, train_y.long())
    test_ds = TensorDataset(test_x, test_y.long())
    return _fit(
        head,
        train_ds,
        _cross_entropy,
        epochs=epochs,
        batch_size=batch_size,
        optimizer=optimizer,
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        seed=seed,
        device=device,
        test_ds=test_ds,
        checkpoint=checkpoint,
        progress=progress,
        num_workers=0,
        desc="head",
    )


# ---------------------------------------------------------------------------- pruning


def _prunable(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, _PRUNABLE)]


def _effective_weight(module: nn.Module) -> Tensor:
    if prune.is_pruned(module) and hasattr(module, "weight_mask"):
        return (module.weight_orig * module.weight_mask).detach()
    return module.weight.detach()


def prune_magnitude(
    model: nn.Module, amount: float | None = None, *, threshold: float | None = None
) -> nn.Module:
    """Magnitude pruning after Han et al. (2016), for Sec. 4.4; in place, returns ``model``.

    Removes weights of all conv and linear layers (not biases) with the smallest ``|w|``,
    either a global fraction ``amount`` of them, or all with ``|w| <= threshold`` (Han et
    al.'s threshold rule, with one absolute threshold for all layers). The masks are
    ``torch.nn.utils.prune`` re-parametrisations, so they stay fixed while the pruned model is
    fine-tuned with :func:`train`; :func:`finalize_pruning` makes them permanent.

    ``amount`` is the fraction of zero weights *afterwards*, counted over all conv and linear
    weights (ties are broken in module order); pruning an already pruned model again only
    removes more weights (masks are combined).

    Example:
        >>> net = nn.Sequential(nn.Linear(10, 10), nn.Linear(10, 10))
        >>> sparsity(prune_magnitude(net, 0.3))
        0.3
    """
    if (amount is None) == (threshold is None):
        raise ValueError(f"give exactly one of amount and threshold, got {amount} and {threshold}")
    modules = _prunable(model)
    if not modules:
        raise ValueError("model has no conv or linear layer to prune")
    weights = [_effective_weight(m) for m in modules]
    if threshold is not None:
        if threshold < 0:
            raise ValueError(f"threshold must be >= 0, got {threshold}")
        masks = [(w.abs() > threshold).to(w.dtype) for w in weights]
    else:
        if not 0.0 <= amount <= 1.0:
            raise ValueError(f"amount must lie in [0, 1], got {amount}")
        magnitudes = torch.cat([w.abs().flatten().float() for w in weights])
        k = round(amount * magnitudes.numel())
        if k == 0:
            masks = [torch.ones_like(w) for w in weights]
        else:
            cut = magnitudes.kthvalue(k).values
            below = int((magnitudes < cut).sum())
            ties_to_remove = k - below
            masks = []
            for w in weights:
                a = w.abs().float()
                mask = (a > cut).flatten()
                tie = (a == cut).flatten().nonzero().flatten()
                keep = tie[ties_to_remove:]  # remove the first ties, keep the others
                ties_to_remove = max(ties_to_remove - tie.numel(), 0)
                mask[keep] = True
                masks.append(mask.view_as(w).to(w.dtype))
    for module, mask in zip(modules, masks, strict=True):
        prune.custom_from_mask(module, "weight", mask)
    return model


def finalize_pruning(model: nn.Module) -> nn.Module:
    """Fold the pruning masks into the weights (``prune.remove``): a plain state_dict again."""
    for module in _prunable(model):
        if prune.is_pruned(module) and hasattr(module, "weight_mask"):
            prune.remove(module, "weight")
    return model


def sparsity(model: nn.Module) -> float:
    """Fraction of zero weights over all conv and linear layers (biases excluded)."""
    weights = [_effective_weight(m) for m in _prunable(model)]
    total = sum(w.numel() for w in weights)
    if total == 0:
        raise ValueError("model has no conv or linear weights")
    return sum(int((w == 0).sum()) for w in weights) / total
