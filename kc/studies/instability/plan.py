"""What Table 1's notebook computes, declared before it runs: its networks, its fits of g, the
same again in the over-fitting regime (issue 24) and the budget fits of its convergence check
(:mod:`kc.engine.tasks`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kc.engine.tasks import Task, unique
from kc.studies.instability.convergence import ConvergenceStudy
from kc.studies.instability.run import InstabilityStudy
from kc.studies.regime import Regime

__all__ = ["plan"]


def plan(params: Mapping[str, Any]) -> list[Task]:
    """The tasks of ``table1_instability`` run with ``params`` (its parameters' values)."""
    study = InstabilityStudy.from_params(params)
    tasks = study.tasks()
    regime = Regime.from_params(params)
    if regime is not None:
        tasks += study.in_regime(regime).tasks()
    if params.get("CONVERGENCE_BUDGETS"):
        tasks += ConvergenceStudy.from_params(params).tasks()
    return unique(tasks)
