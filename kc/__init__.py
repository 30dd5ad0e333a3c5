"""kc: knowledge consistency between neural networks (Liang et al., ICLR 2020).

The core (Eq. 1-4, Sec. 4.2) is imported eagerly; the experiment engine (``kc.data``,
``kc.zoo``, ``kc.train``, ``kc.cache``, ``kc.experiments``, ...) loads on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from kc.decompose import decompose
from kc.fit import (
    ConvergenceWarning,
    FitReport,
    check_pair,
    fit_consistency,
    prepare,
)
from kc.losses import consistency_loss
from kc.measure import ConsistencyResult, consistency, evaluate_consistency
from kc.metrics import instability, two_way_instability, variance
from kc.model import ConsistencyNet
from kc.normalize import Normalizer, fit_normalizer, normalize

__version__ = "0.1.0"

__all__ = [
    "ConsistencyNet",
    "ConsistencyResult",
    "ConvergenceWarning",
    "FitReport",
    "Normalizer",
    "check_pair",
    "consistency",
    "consistency_loss",
    "decompose",
    "evaluate_consistency",
    "fit_consistency",
    "fit_normalizer",
    "instability",
    "normalize",
    "prepare",
    "two_way_instability",
    "variance",
]

_LAZY = {
    "data", "zoo", "train", "cache", "experiments", "paper", "claims", "output", "plotting",
    "runner", "cli",
}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return importlib.import_module(f"kc.{name}")
    raise AttributeError(f"module 'kc' has no attribute {name!r}")
