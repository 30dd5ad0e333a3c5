"""Cached work declared before it runs: a network to train, a fit of g to make.

A study lists the cache entries it will need as :class:`Task` objects (e.g.
:meth:`kc.studies.instability.run.InstabilityStudy.tasks`). Each task computes one entry by
calling the same function, with the same arguments, as the study does when it runs, so the
study then finds it in the cache. Tasks are data (picklable), so a scheduler can run them in
other processes or Slurm jobs (:mod:`kc.run.schedule`); the cache's per-entry locks make two
workers that reach the same entry compute it once.

Example:
    >>> from kc.engine.experiments import NetSpec
    >>> a, b = NetSpec("alexnet", seed=0), NetSpec("alexnet", seed=1)
    >>> fit = consistency_task(a, "conv4", b, "conv4", lam=8.0)
    >>> fit.kind, fit.needs == (net_task(a).key, net_task(b).key)
    ('g', True)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kc.engine import cache
from kc.engine import experiments as ex

__all__ = ["Task", "consistency_task", "net_task", "unique"]


@dataclass(frozen=True)
class Task:
    """One cache entry to compute.

    Attributes:
        kind: the cache kind of the entry (``"net"``, ``"g"``).
        key: its cache key (two tasks with one key are one task).
        label: what it is, for people.
        call: a module-level function that computes (or loads) the entry; ``args`` and
            ``kwargs`` its arguments. Its return value is dropped.
        needs: keys of the tasks that must be done first (their entries are its inputs).
    """

    kind: str
    key: str
    label: str
    call: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    needs: tuple[str, ...] = ()

    def done(self) -> bool:
        """Whether the entry is in the cache already."""
        return (cache.cache_root() / self.kind / f"{self.key}.pt").is_file()

    def run(self) -> None:
        """Compute the entry (a hit if another worker stored it meanwhile)."""
        self.call(*self.args, **dict(self.kwargs))


def _train(spec: ex.NetSpec, device: str) -> None:
    ex.get_net(spec, device=device, progress=False)


def _fit(x: ex.NetSpec, x_layer: str, t: ex.NetSpec, t_layer: str, kwargs: Mapping[str, Any]) -> None:
    ex.get_consistency(x, x_layer, t, t_layer, **{**kwargs, "progress": False})


def net_task(spec: ex.NetSpec, *, device: str = "auto") -> Task:
    """Train (or load) the network of ``spec``, as :func:`kc.engine.experiments.get_net`."""
    return Task("net", ex._net_key(spec), spec.label, _train, (spec, device))


def consistency_task(
    x: ex.NetSpec, x_layer: str, target: ex.NetSpec, target_layer: str, **kwargs: Any
) -> Task:
    """Fit (or load) g from ``x`` at ``x_layer`` to ``target`` at ``target_layer`` with the
    arguments of :func:`kc.engine.experiments.get_consistency`; needs both networks."""
    kwargs.pop("progress", None)
    key = ex.consistency_key(x, x_layer, target, target_layer, **kwargs)
    label = f"{x.label}/{x_layer} -> {target.label}/{target_layer}"
    device = kwargs.get("device", "auto")
    needs = (net_task(x, device=device).key, net_task(target, device=device).key)
    return Task("g", key, label, _fit, (x, x_layer, target, target_layer, kwargs), needs=needs)


def unique(tasks: Iterable[Task]) -> list[Task]:
    """``tasks`` without repeats (same key), in first-seen order."""
    seen: dict[str, Task] = {}
    for task in tasks:
        seen.setdefault(task.key, task)
    return list(seen.values())
