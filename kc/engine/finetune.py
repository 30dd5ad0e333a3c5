"""Fine-tuning heads on fixed features with one budget (Appendix A's fairness protocol).

Every row of Tables 3 and 4 trains only the layers above a feature, on precomputed feature
tensors, with the same :class:`Budget`; :func:`compare_rows` does that for a set of rows. Sec.
4.1's classifiers (:mod:`kc.studies.diagnosis.arms`) use the same budget.

Each fine-tuned head (:func:`fine_tune`) is a cache entry (kind ``"head"``), keyed by what determines it: the head's
class and initial weights, the features and labels (their contents, hashed), the budget and the
device type. A rerun, or a run resumed after an interruption, loads the rows it has already
trained instead of training them again.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn

from kc.engine import cache, phases
from kc.engine.train import OPTIMIZERS, TrainReport, evaluate, resolve_device, train_head

__all__ = ["Budget", "compare_rows", "fine_tune", "tensor_digest"]

#: The code a fine-tuned row depends on (its cache entries' version).
_HEAD_CODE = ("kc.engine.train", "kc.engine.finetune")


def tensor_digest(*tensors: Tensor) -> str:
    """A hash of the tensors' dtypes, shapes and values, in order (16 hex digits).

    Example:
        >>> a = torch.arange(6.0).reshape(2, 3)
        >>> tensor_digest(a) == tensor_digest(a.clone()) != tensor_digest(a.reshape(3, 2))
        True
        >>> tensor_digest(torch.tensor(3)) != tensor_digest(torch.tensor([3]))  # 0-dim too
        True
    """
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().to("cpu").contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def _module_digest(module: nn.Module) -> str:
    """A hash of a module's structure (its repr) and its parameters' and buffers' values."""
    state = module.state_dict()
    names = hashlib.sha256(f"{type(module).__qualname__}\n{module!r}\n{list(state)}".encode())
    return names.hexdigest()[:16] + tensor_digest(*state.values())


@dataclass(frozen=True)
class Budget:
    """One fine-tuning budget, used unchanged for every row of a table (Appendix A).

    Attributes:
        epochs: passes over the training features (FT_EPOCHS).
        lr: peak learning rate, cosine-annealed (FT_LR).
        batch_size: features per step.
        optimizer: ``"adam"`` or ``"sgd"``.
        seed: shuffling and dropout seed.
    """

    epochs: int
    lr: float
    batch_size: int = 128
    optimizer: str = "adam"
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 0:
            raise ValueError(f"epochs must be an int >= 0, got {self.epochs!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")

    def train_kwargs(self) -> dict[str, Any]:
        """The budget as keyword arguments of :func:`kc.engine.train.train_head`."""
        return {
            "epochs": self.epochs,
            "lr": self.lr,
            "batch_size": self.batch_size,
            "optimizer": self.optimizer,
            "seed": self.seed,
        }

    def train(
        self,
        head: nn.Module,
        train: tuple[Tensor, Tensor],
        test: tuple[Tensor, Tensor],
        *,
        device: str | torch.device = "cpu",
        progress: bool = False,
    ) -> TrainReport:
        """Fine-tune ``head`` in place on ``train`` = (features (N, ...), labels (N,)) with this
        budget; its accuracy is on ``test`` (timed as the phase ``fine-tune``, :mod:`kc.engine.phases`)."""
        with phases.phase("fine-tune"):
            return train_head(
                head,
                *train,
                test_x=test[0],
                test_y=test[1],
                **self.train_kwargs(),
                device=device,
                progress=progress,
            )


def fine_tune(
    head: nn.Module,
    train: tuple[Tensor, Tensor],
    test: tuple[Tensor, Tensor],
    budget: Budget,
    *,
    device: str | torch.device = "cpu",
    label: str = "head",
    progress: bool = False,
) -> dict[str, Any]:
    """Fine-tune ``head`` in place with ``budget``, once: the result is a cache entry.

    The entry (kind ``"head"``) is keyed by the head's class and initial weights, the
    ``train`` = (features (N, ...), labels (N,)) and ``test`` = (features (M, ...), labels (M,))
    contents, the budget and the device type; on a hit the head is given the trained weights.

    Returns:
        ``accuracy`` (top-1 % on ``test`` after fine-tuning), ``accuracy_before``,
        ``train_accuracy`` (last epoch), ``epochs`` and ``ft_seconds`` (the fine-tuning's
        seconds when it was computed, also on a cache hit).
    """
    dev = resolve_device(device)
    train_x, train_y = train
    test_x, test_y = test
    config = {
        "head": _module_digest(head),
        "train": tensor_digest(train_x, train_y),
        "test": tensor_digest(test_x, test_y),
        "budget": budget.train_kwargs(),
        "device": dev.type,
    }

    def compute() -> dict[str, Any]:
        before = evaluate(head, torch.utils.data.TensorDataset(test_x, test_y.long()), device=dev)
        start = time.perf_counter()
        report = budget.train(head, train, test, device=dev, progress=progress)
        return {
            "state": {k: v.detach().to("cpu") for k, v in head.state_dict().items()},
            "accuracy": float(report.accuracy),
            "accuracy_before": float(before),
            "train_accuracy": float(report.train_accuracy),
            "epochs": int(report.epochs_run),
            "ft_seconds": time.perf_counter() - start,
        }

    entry = cache.cached("head", config, compute, version=cache.code_version(_HEAD_CODE),
                         label=label)  # fmt: skip
    head.load_state_dict(entry["state"])  # trained in place, also on a cache hit
    return {k: v for k, v in entry.items() if k != "state"}


def compare_rows(
    candidates: Mapping[str, tuple[nn.Module, Tensor, Tensor]],
    train_y: Tensor,
    test_y: Tensor,
    budget: Budget,
    *,
    device: str | torch.device = "cpu",
) -> pd.DataFrame:
    """Fine-tune each candidate head on its features with the same budget; report accuracies.

    Args:
        candidates: row name -> (head, train features (N, ...), test features (M, ...)); the
            head maps features to logits and is trained in place (on a cache hit, it is given
            the weights the cached run trained).
        train_y, test_y: labels (N,) and (M,), shared by all rows (same images for every row).
        budget: the one fine-tuning budget.
        device: where to train.

    Returns:
        One row per candidate, in order: ``row``, ``accuracy`` (top-1 % on the test features
        after fine-tuning), ``accuracy_before`` (before), ``train_accuracy`` (last epoch),
        ``epochs``, ``n_train``, ``n_test``, ``ft_seconds`` (the fine-tuning's seconds when it
        was computed, also when the row comes from the cache).
    """
    if not candidates:
        raise ValueError("need at least one candidate row")
    dev = resolve_device(device)
    for name, (_, train_x, test_x) in candidates.items():
        if train_x.shape[0] != train_y.shape[0] or test_x.shape[0] != test_y.shape[0]:
            raise ValueError(
                f"row {name!r}: features and labels differ in length: train {train_x.shape[0]} vs "
                f"{train_y.shape[0]}, test {test_x.shape[0]} vs {test_y.shape[0]}"
            )
    records = []
    for name, (head, train_x, test_x) in candidates.items():
        entry = fine_tune(head, (train_x, train_y), (test_x, test_y), budget, device=dev,
                          label=f"head-{name}")  # fmt: skip
        records.append(
            {
                "row": name,
                "accuracy": entry["accuracy"],
                "accuracy_before": entry["accuracy_before"],
                "train_accuracy": entry["train_accuracy"],
                "epochs": entry["epochs"],
                "n_train": int(train_x.shape[0]),
                "n_test": int(test_x.shape[0]),
                "ft_seconds": entry["ft_seconds"],
            }
        )
    return pd.DataFrame.from_records(records)
