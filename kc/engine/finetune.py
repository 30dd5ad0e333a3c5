"""Fine-tuning heads on fixed features with one budget (Appendix A's fairness protocol).

Every row of Tables 3 and 4 trains only the layers above a feature, on precomputed feature
tensors, with the same :class:`Budget`; :func:`compare_rows` does that for a set of rows. Sec.
4.1's classifiers (:mod:`kc.studies.diagnosis.arms`) use the same budget.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn

from kc.engine import phases
from kc.engine.train import OPTIMIZERS, TrainReport, evaluate, resolve_device, train_head

__all__ = ["Budget", "compare_rows"]


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
            head maps features to logits and is trained in place.
        train_y, test_y: labels (N,) and (M,), shared by all rows (same images for every row).
        budget: the one fine-tuning budget.
        device: where to train.

    Returns:
        One row per candidate, in order: ``row``, ``accuracy`` (top-1 % on the test features
        after fine-tuning), ``accuracy_before`` (before), ``train_accuracy`` (last epoch),
        ``epochs``, ``n_train``, ``n_test``, ``ft_seconds``.
    """
    if not candidates:
        raise ValueError("need at least one candidate row")
    dev = resolve_device(device)
    records = []
    for name, (head, train_x, test_x) in candidates.items():
        if train_x.shape[0] != train_y.shape[0] or test_x.shape[0] != test_y.shape[0]:
            raise ValueError(
                f"row {name!r}: features and labels differ in length: train {train_x.shape[0]} vs "
                f"{train_y.shape[0]}, test {test_x.shape[0]} vs {test_y.shape[0]}"
            )
        before = evaluate(head, torch.utils.data.TensorDataset(test_x, test_y.long()), device=dev)
        start = time.perf_counter()
        report = budget.train(head, (train_x, train_y), (test_x, test_y), device=dev)
        records.append(
            {
                "row": name,
                "accuracy": float(report.accuracy),
                "accuracy_before": before,
                "train_accuracy": report.train_accuracy,
                "epochs": report.epochs_run,
                "n_train": int(train_x.shape[0]),
                "n_test": int(test_x.shape[0]),
                "ft_seconds": time.perf_counter() - start,
            }
        )
    return pd.DataFrame.from_records(records)
