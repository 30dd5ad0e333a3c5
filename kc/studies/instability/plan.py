"""What Table 1's notebook computes, declared before it runs: its networks, its fits of g and
the budget fits of its convergence check (:mod:`kc.engine.tasks`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kc.engine.tasks import Task, unique
from kc.studies.instability.convergence import ConvergenceStudy
from kc.studies.instability.run import InstabilityStudy

__all__ = ["plan"]


def plan(params: Mapping[str, Any]) -> list[Task]:
    """The tasks of ``table1_instability`` run with ``params`` (its parameters' values)."""
    tasks = InstabilityStudy.from_params(params).tasks()
    if params.get("CONVERGENCE_BUDGETS"):
        tasks += ConvergenceStudy.from_params(params).tasks()
    return unique(tasks)
