"""Running declared cache work (:class:`kc.engine.tasks.Task`) on N workers.

:func:`run_tasks` starts every task whose inputs are done, up to ``jobs`` at a time, each as a
submitit job on one thread (the local executor on this machine, Slurm on a cluster), or in this
process when ``jobs`` is 1 and no executor is given. Tasks whose entry is already cached are
done before anything starts, so an interrupted run resumes where it stopped. Two workers never
compute one entry: a task's key appears once, and entries that several tasks reach through
their inputs (features) are computed under the cache's per-entry lock. One progress line per
finished task: entries done of total, and the time left, from the seconds of the tasks of the
same kind finished so far.

Example:
    >>> from kc.engine.tasks import Task
    >>> summary = run_tasks([Task("demo", "k1", "one", print, ("hello",))], jobs=1)
    hello
    >>> summary.done, summary.failed
    (['k1'], {})
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from kc.engine.tasks import Task, unique
from kc.run.jobs import check_jobs, set_threads
from kc.run.records import clock

__all__ = ["TaskSummary", "progress", "run_tasks"]

log = logging.getLogger(__name__)


@dataclass
class TaskSummary:
    """What :func:`run_tasks` did: keys done (cached before or computed now), keys failed
    with their error, seconds per computed key."""

    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    cached_before: int = 0


def progress(
    done: int, total: int, running: int, elapsed: float, left: float | None, unknown: int
) -> str:
    """``entries 12/55 (2 running); elapsed 4:10; about 31:00 left``.

    Example:
        >>> progress(12, 55, 2, 250, 1860, 0)
        'entries 12/55 (2 running); elapsed 4:10; about 31:00 left'
        >>> progress(0, 5, 1, 3, None, 5)
        'entries 0/5 (1 running); elapsed 0:03; time left unknown'
    """
    text = f"entries {done}/{total} ({running} running); elapsed {clock(elapsed)}; "
    if left is None:
        return text + "time left unknown"
    return text + f"about {clock(left)} left" + (f" (+{unknown} of unmeasured kinds)" if unknown else "")


def _time_left(todo: Iterable[Task], seconds: dict[str, list[float]], jobs: int) -> tuple[float | None, int]:
    known, unknown = 0.0, 0
    for task in todo:
        if seconds.get(task.kind):
            known += sum(seconds[task.kind]) / len(seconds[task.kind])
        else:
            unknown += 1
    if known == 0 and unknown:
        return None, unknown
    return known / jobs, unknown


def _one_thread_job(task: Task) -> float:
    """Body of a job: the task on one thread; its seconds."""
    set_threads(1)
    return _timed(task)


def run_tasks(
    tasks: Iterable[Task],
    *,
    jobs: int = 1,
    executor: Any | None = None,
    poll: float = 0.5,
    say: Callable[[str], None] | None = None,
) -> TaskSummary:
    """Compute the entries of ``tasks``, each after the tasks it needs.

    Args:
        tasks: the work (repeats of a key count once); a need that is not a task of the list
            is taken as done (the task computes it itself if it is missing).
        jobs: how many run at once.
        executor: a submitit executor (``kc.run.jobs.make_executor``); ``None``: in this
            process (then ``jobs`` must be 1).
        poll: seconds between looks at the running jobs.
        say: where progress lines go (default: this module's logger).

    Returns:
        A :class:`TaskSummary`. A task whose input failed fails too, without running.
    """
    check_jobs(jobs)
    if executor is None and jobs != 1:
        raise ValueError("jobs > 1 needs a submitit executor (kc.run.jobs.make_executor)")
    say = say or (lambda line: log.info("%s", line))
    todo = unique(tasks)
    keys = {t.key for t in todo}
    summary = TaskSummary()
    finished = {t.key for t in todo if t.done()}
    summary.cached_before = len(finished)
    summary.done += [t.key for t in todo if t.key in finished]
    waiting = [t for t in todo if t.key not in finished]
    total, begin = len(todo), time.time()
    seconds: dict[str, list[float]] = {}
    running: dict[str, tuple[Task, Any]] = {}
    if waiting:
        say(f"{len(waiting)} of {total} entries to compute ({summary.cached_before} cached), "
            f"{jobs} at a time")  # fmt: skip

    def ready(task: Task) -> bool:
        return all(n in finished or n not in keys for n in task.needs)

    def end(task: Task, outcome: Callable[[], float]) -> None:
        try:
            took = float(outcome())
        except Exception as error:  # noqa: BLE001 - report it, go on with the others
            summary.failed[task.key] = f"{type(error).__name__}: {error}"
            log.error("%s failed: %s", task.label, summary.failed[task.key])
        else:
            finished.add(task.key)
            summary.done.append(task.key)
            summary.seconds[task.key] = took
            seconds.setdefault(task.kind, []).append(took)
        left, unknown = _time_left([*waiting, *(t for t, _ in running.values())], seconds, jobs)
        say(progress(len(summary.done), total, len(running), time.time() - begin, left, unknown)
            + f"; {task.kind} {task.label} {'failed' if task.key in summary.failed else 'done'}")  # fmt: skip

    while waiting or running:
        for task in [t for t in waiting if any(n in summary.failed for n in t.needs)]:
            waiting.remove(task)
            summary.failed[task.key] = "an input failed: " + ", ".join(
                n for n in task.needs if n in summary.failed
            )
        startable = [t for t in waiting if ready(t)]
        if executor is None:
            if not startable:
                break
            task = startable[0]
            waiting.remove(task)
            end(task, lambda task=task: _timed(task))
            continue
        for task in startable[: jobs - len(running)]:
            waiting.remove(task)
            running[task.key] = (task, executor.submit(_one_thread_job, task))
        over = [k for k, (_, job) in running.items() if job.done()]
        for key in over:
            task, job = running.pop(key)
            end(task, job.result)
        if not over:
            if not running and not startable:
                break  # nothing can start: the remaining tasks wait for missing inputs
            time.sleep(poll)
    for task in waiting:
        summary.failed.setdefault(task.key, "its inputs never became ready")
    return summary


def _timed(task: Task) -> float:
    start = time.perf_counter()
    task.run()
    return time.perf_counter() - start
