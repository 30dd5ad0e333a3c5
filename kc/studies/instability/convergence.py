"""Is Table 1's g converged? Held-out instability against g's step budget (issue 8).

Every number of Table 1 is a property of a fitted g. This study refits g for one Case 1 pair
per Table 1 layer (the first pair of seeds, :meth:`InstabilityStudy.case1_pairs`) with a list of
fixed step budgets, the plateau rule switched off (``min_steps = max_steps``, so each fit takes
exactly its budget and the learning-rate schedule spans it), and puts the held-out instability
of each budget beside that of the profile's own fit (the plateau rule on, as Table 1 uses it).
A layer's number is called converged when the profile's fit lies within ``tol`` of the largest
budget's, provided that budget is at least ``reach`` times the steps the profile's fit took
(:func:`convergence_verdicts`).

The budget fits go through :func:`kc.engine.experiments.get_consistency` with Table 1's settings and
only ``g_steps`` / ``min_steps`` changed, so they are cached like Table 1's and a re-run is free.
The core, :func:`budget_rows`, takes any ``fit(steps)`` callable, so it runs unchanged on
synthetic features (tests) and on the networks' features (:func:`budget_table`).

Nothing here writes files (the notebook saves the tables with :mod:`kc.book.output`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from kc.core.fit import ConvergenceWarning
from kc.core.measure import ConsistencyResult
from kc.engine import experiments as ex
from kc.engine.tasks import Task, consistency_task
from kc.studies.common import pick
from kc.studies.instability.run import InstabilityStudy
from kc.studies.paper import paper_column

__all__ = [
    "BUDGET_COLUMNS",
    "HISTORY_COLUMNS",
    "REACH",
    "STOP_COLUMNS",
    "TOLERANCE",
    "ConvergenceStudy",
    "budget_rows",
    "budget_table",
    "check_steps",
    "convergence_frame",
    "convergence_verdicts",
    "profile_fits",
]

#: Largest |instability at the profile's fit - instability at the largest budget| for which
#: a layer's Table 1 number is called converged (in units of Var(x_Delta) / Var(x*)).
TOLERANCE = 0.01
#: The largest budget must be at least this many times the steps of the profile's fit for
#: the comparison to say anything (:func:`convergence_verdicts`).
REACH = 2.0

BUDGET_COLUMNS = [
    "arch", "layer", "column", "x", "target", "steps", "instability", "train_loss",
    "holdout_loss", "best_step", "seconds", "from_cache",
]  # fmt: skip
STOP_COLUMNS = [
    "arch", "layer", "column", "x", "target", "steps", "best_step", "max_steps", "converged",
    "stopped_by", "monitor", "instability", "train_loss", "holdout_loss", "seconds", "from_cache",
]  # fmt: skip
HISTORY_COLUMNS = ["arch", "layer", "column", "step", "seconds", "loss", "monitor"]


def check_steps(steps: Any) -> tuple[int, ...]:
    """CONVERGENCE_BUDGETS as a tuple: a non-empty, strictly increasing list of ints >= 1.

    Example:
        >>> check_steps([100, 300, 1000])
        (100, 300, 1000)
        >>> check_steps([300, 100])
        Traceback (most recent call last):
        ...
        ValueError: CONVERGENCE_BUDGETS must be strictly increasing, got [300, 100]
    """
    if isinstance(steps, (str, bytes)) or not isinstance(steps, Sequence):
        raise ValueError(f"CONVERGENCE_BUDGETS must be a list of step budgets, got {steps!r}")
    values = list(steps)
    if not values:
        raise ValueError("CONVERGENCE_BUDGETS must name at least one step budget, got []")
    bad = [s for s in values if isinstance(s, bool) or not isinstance(s, (int, np.integer))]
    if bad:
        raise ValueError(f"CONVERGENCE_BUDGETS must be integers, got {values} ({bad} are not)")
    if min(values) < 1:
        raise ValueError(f"CONVERGENCE_BUDGETS must be >= 1 (optimiser steps), got {values}")
    if any(b <= a for a, b in zip(values, values[1:], strict=False)):
        raise ValueError(f"CONVERGENCE_BUDGETS must be strictly increasing, got {values}")
    return tuple(int(s) for s in values)


def _report(res: ConsistencyResult) -> dict[str, Any]:
    fit = res.info.get("fit")
    if not fit:
        raise ValueError(
            "the result carries no fit report (result.info['fit']); fit g with "
            "kc.fit_consistency, which attaches one"
        )
    return fit


def budget_rows(fit: Callable[[int], ConsistencyResult], steps: Sequence[int]) -> pd.DataFrame:
    """Held-out instability of g fitted with each step budget: the core of :func:`budget_table`.

    Args:
        fit: ``fit(s)`` returns the :class:`kc.ConsistencyResult` of g fitted with exactly
            ``s`` optimiser steps (the plateau rule off) and measured on held-out features.
            The :class:`kc.core.fit.ConvergenceWarning` such a fit raises is expected and silenced.
        steps: the budgets, checked with :func:`check_steps`.

    Returns:
        One row per budget: ``steps, instability`` (Var(x_Delta) / Var(x*), Sec. 4.2),
        ``train_loss`` (Eq. 2, mean over the last check window), ``holdout_loss`` (Eq. 2 on
        the fit's held-out slice, NaN without one), ``best_step`` (the kept state),
        ``seconds`` (the fit's own time) and ``from_cache``.

    Example:
        >>> import torch, kc
        >>> x = torch.randn(96, 4, 5, 5, generator=torch.Generator().manual_seed(0))
        >>> fit = lambda s: kc.consistency(x[:64], x[:64, [1, 0, 3, 2]],
        ...     test=(x[64:], x[64:, [1, 0, 3, 2]]), max_steps=s, min_steps=s, progress=False)
        >>> list(budget_rows(fit, [20, 40])["steps"])
        [20, 40]
    """
    rows = []
    for s in check_steps(steps):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # the budget is the point
            res = fit(s)
        report = _report(res)
        holdout = report.get("holdout_loss")
        rows.append(
            {
                "steps": s,
                "instability": float(res.instability),
                "train_loss": float(report["final_loss"]),
                "holdout_loss": float("nan") if holdout is None else float(holdout),
                "best_step": int(report["best_step"]),
                "seconds": float(report["seconds"]),
                "from_cache": bool(res.info.get("from_cache", False)),
            }
        )
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class ConvergenceStudy:
    """Table 1's study and the step budgets of the convergence check.

    Attributes:
        instability: Table 1's :class:`InstabilityStudy` (networks, layers, g's settings).
        steps: CONVERGENCE_BUDGETS, strictly increasing budgets of optimiser steps.
    """

    instability: InstabilityStudy
    steps: tuple[int, ...]

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> ConvergenceStudy:
        """From Table 1's parameters and CONVERGENCE_BUDGETS."""
        steps = pick(params, ["CONVERGENCE_BUDGETS"])["CONVERGENCE_BUDGETS"]
        return cls(instability=InstabilityStudy.from_params(params), steps=check_steps(steps))

    def __post_init__(self) -> None:
        object.__setattr__(self, "steps", check_steps(self.steps))

    def pair(self, arch: str) -> tuple[ex.NetSpec, ex.NetSpec]:
        """The (x, x*) networks of the first Case 1 pair of ``arch``."""
        a, b = self.instability.case1_pairs()[0]
        return self.instability.spec(arch, a), self.instability.spec(arch, b)

    def _kwargs(self, arch: str, steps: int) -> dict[str, Any]:
        study = self.instability
        return {**study.g.kwargs(arch), "g_steps": int(steps), "min_steps": int(steps),
                "device": study.device}  # fmt: skip

    def fit(self, arch: str, layer: str, steps: int) -> ConsistencyResult:
        """Table 1's fit of the first pair at ``layer`` with exactly ``steps`` steps (cached)."""
        x, t = self.pair(arch)
        return ex.get_consistency(x, layer, t, layer, **self._kwargs(arch, steps),
                                  progress=self.instability.progress)  # fmt: skip

    def tasks(self) -> list[Task]:
        """Every budget fit of :func:`budget_table`, declared before it runs."""
        out = []
        for arch, layer in self.instability.layer_list():
            x, t = self.pair(arch)
            out += [consistency_task(x, layer, t, layer, **self._kwargs(arch, s)) for s in self.steps]
        return out


def _where(study: ConvergenceStudy, arch: str, layer: str) -> dict[str, Any]:
    x, t = study.pair(arch)
    return {"arch": arch, "layer": layer, "column": paper_column(1, arch, layer),
            "x": x.label, "target": t.label}  # fmt: skip


def budget_table(study: ConvergenceStudy) -> pd.DataFrame:
    """:func:`budget_rows` for the first Case 1 pair of every Table 1 layer.

    Returns:
        Columns :data:`BUDGET_COLUMNS`, one row per layer and budget.
    """
    parts = []
    for arch, layer in study.instability.layer_list():
        rows = budget_rows(lambda s, a=arch, la=layer: study.fit(a, la, s), study.steps)
        parts.append(rows.assign(**_where(study, arch, layer)))
    return pd.concat(parts, ignore_index=True)[BUDGET_COLUMNS]


def profile_fits(study: ConvergenceStudy) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Where the plateau rule stopped Table 1's own fits of the first pairs, and their histories.

    The fits are Table 1's (:meth:`InstabilityStudy.fit`, the same cache entries).

    Returns:
        ``(stops, history)``: ``stops`` has one row per layer, columns :data:`STOP_COLUMNS`
        (``steps`` taken, ``best_step`` kept, ``max_steps`` = G_STEPS, ``converged`` = stopped
        by the rule, the held-out ``instability``); ``history`` the fit reports' checks as a
        long table, columns :data:`HISTORY_COLUMNS` (``loss`` is Eq. 2 on the monitored set).
    """
    stops, history = [], []
    for arch, layer in study.instability.layer_list():
        x, t = study.pair(arch)
        res = study.instability.fit(x, t, layer)
        report, where = _report(res), _where(study, arch, layer)
        holdout = report.get("holdout_loss")
        stops.append(
            {
                **where,
                "steps": int(report["steps"]),
                "best_step": int(report["best_step"]),
                "max_steps": int(report["max_steps"]),
                "converged": bool(report["converged"]),
                "stopped_by": report["stopped_by"],
                "monitor": report["monitor"],
                "instability": float(res.instability),
                "train_loss": float(report["final_loss"]),
                "holdout_loss": float("nan") if holdout is None else float(holdout),
                "seconds": float(report["seconds"]),
                "from_cache": bool(res.info.get("from_cache", False)),
            }
        )
        history += [
            {**{k: where[k] for k in ("arch", "layer", "column")}, "step": int(s),
             "seconds": float(sec), "loss": float(loss), "monitor": report["monitor"]}
            for s, sec, loss in report["history"]
        ]  # fmt: skip
    return pd.DataFrame(stops, columns=STOP_COLUMNS), pd.DataFrame(history, columns=HISTORY_COLUMNS)


def convergence_verdicts(
    budgets: pd.DataFrame, stops: pd.DataFrame, tol: float = TOLERANCE, reach: float = REACH
) -> pd.DataFrame:
    """Per layer: is the profile's number within ``tol`` of the largest budget's?

    The comparison says something only when the largest budget goes well beyond the steps
    the profile's fit took: with a budget equal to G_STEPS and a fit that ran to G_STEPS the
    two are the same fit. So a layer is judged only when the largest budget is at least
    ``reach`` times the profile's steps; otherwise ``converged`` is None ("cannot tell").

    Args:
        budgets: :func:`budget_table` (or :func:`budget_rows` with ``column`` added).
        stops: the ``stops`` of :func:`profile_fits`.
        tol: the tolerance on the held-out instability (absolute).
        reach: how many times the profile's steps the largest budget must be (>= 1).

    Returns:
        One row per layer: ``column, profile_steps, profile_instability, largest_steps,
        largest_instability, difference`` (profile - largest), ``tail_change`` (largest
        budget - the one before it; NaN with one budget), ``tol``, ``testable`` (largest
        budget >= ``reach`` x profile steps), ``converged`` (``|difference| < tol``, None when
        not testable) and ``verdict``, a sentence built from these numbers.
    """
    if not tol > 0 or not reach >= 1:
        raise ValueError(f"tol must be > 0 and reach >= 1, got {tol} and {reach}")
    rows = []
    for column, group in budgets.groupby("column", sort=False):
        group = group.sort_values("steps")
        match = stops[stops["column"] == column]
        if len(match) != 1:
            raise ValueError(f"expected one profile fit for {column!r}, got {len(match)}")
        prof, last = match.iloc[0], group.iloc[-1]
        p_steps, l_steps = int(prof["steps"]), int(last["steps"])
        diff = float(prof["instability"] - last["instability"])
        tail = (
            float(last["instability"] - group.iloc[-2]["instability"])
            if len(group) > 1
            else float("nan")
        )
        testable = l_steps >= reach * p_steps
        ok = abs(diff) < tol if testable else None
        fit = (
            f"the profile's fit ({p_steps} steps, {prof['stopped_by']}) gives "
            f"{prof['instability']:.3f}"
        )
        if not testable:
            verdict = (
                f"cannot tell: {fit}; the largest budget ({l_steps} steps) is less than "
                f"{reach:g}x its steps (add a larger budget)"
            )
        else:
            verdict = (
                f"{'converged' if ok else 'NOT converged'}: {fit}, "
                f"{'within' if ok else 'not within'} {tol:g} of {l_steps} steps "
                f"({last['instability']:.3f}, difference {diff:+.3f})"
            )
        rows.append(
            {
                "column": column,
                "profile_steps": p_steps,
                "profile_instability": float(prof["instability"]),
                "largest_steps": l_steps,
                "largest_instability": float(last["instability"]),
                "difference": diff,
                "tail_change": tail,
                "tol": float(tol),
                "testable": bool(testable),
                "converged": ok,
                "verdict": verdict,
            }
        )
    return pd.DataFrame(rows)


def convergence_frame(budgets: pd.DataFrame, stops: pd.DataFrame) -> pd.DataFrame:
    """The budget fits and the profile's fits in one long table (``table1_convergence.csv``).

    Returns:
        :data:`BUDGET_COLUMNS` with ``fit`` (``"budget"``: plateau rule off; ``"profile"``:
        Table 1's fit, plateau rule on), and the profile rows' ``max_steps``, ``converged``,
        ``stopped_by`` (empty for budget rows).
    """
    extra = ["max_steps", "converged", "stopped_by"]
    a = budgets.assign(fit="budget")
    b = stops.assign(fit="profile")
    columns = ["fit", *BUDGET_COLUMNS, *extra]
    return pd.concat([a, b], ignore_index=True).reindex(columns=columns)
