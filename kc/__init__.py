"""kc: knowledge consistency between neural networks (Liang et al., ICLR 2020).

The public API is the core (Eq. 1-4, Sec. 4.2), re-exported here from :mod:`kc.core`. The other
layers are imported by their paths: :mod:`kc.engine` (data, networks, training, cache),
:mod:`kc.studies` (one per table or figure), :mod:`kc.run` (running notebooks) and :mod:`kc.book`;
CONTRIBUTING.md has the map.
"""

from __future__ import annotations

from kc.core.decompose import decompose
from kc.core.fit import (
    ConvergenceWarning,
    FitReport,
    check_pair,
    fit_consistency,
    prepare,
)
from kc.core.losses import consistency_loss
from kc.core.measure import ConsistencyResult, consistency, evaluate_consistency
from kc.core.metrics import instability, two_way_instability, variance
from kc.core.model import ConsistencyNet
from kc.core.normalize import Normalizer, fit_normalizer, normalize

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
