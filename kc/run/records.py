"""Run records: what a notebook's last run was, whether it can be skipped, how long is left.

Each run writes ``<output_root>/<name>/run.json`` (:func:`write_record`), holding ``notebook``,
``source`` (relative to the repository), ``profile``, ``parameters`` (as injected),
``executed_notebook`` (relative to the output root), ``started`` and ``finished`` (UTC,
ISO 8601), ``status`` (``"ok"``, ``"failed"`` or ``"interrupted"``), ``seconds``,
``load_at_start`` and ``load`` (the 1-minute load average when it started and ended),
``commit`` and ``dirty`` (the repository's commit, and whether ``kc/``, ``notebooks/`` or the
paper data had uncommitted changes), ``cores`` and ``threads``, ``run_key`` (``notebook``,
``parameters``, ``code``, ``data``, ``key``, ``modules``, ``module_digests``, ``versions``; see
:mod:`kc.run.runkey`), ``warnings`` (the cache's warnings while it ran), and ``outputs`` and
``missing_outputs`` after a success, or ``error`` and ``failed_notebook`` (the kept partial
copy, relative to the output root) after a failure. A skipped notebook keeps the record of the
run it stands for. Nothing in a record names a path of the machine inside the repository, so a
record can be committed (:mod:`kc.run.results`).

:func:`up_to_date` decides the skip: the key of the last successful run equals the new key
(:func:`staleness` names what changed when it does not) and every output is present. :func:`progress_line` and :func:`estimate` give the position, the
elapsed time and the time left from the records of earlier runs. :class:`RunResult` and
:class:`RunSummary` are the outcomes that ``kc run`` prints.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from kc.run.manifest import manifest_entry

__all__ = [
    "KERNEL_LOG",
    "RUN_RECORD",
    "RunResult",
    "RunSummary",
    "error_text",
    "estimate",
    "now",
    "plan_line",
    "progress_line",
    "read_record",
    "recorded_seconds",
    "staleness",
    "up_to_date",
    "write_record",
]

RUN_RECORD = "run.json"
KERNEL_LOG = "kernel.log"


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def write_record(folder: Path, record: dict[str, Any]) -> None:
    """Write ``record`` to ``<folder>/run.json`` atomically."""
    from kc.engine.cache import atomic_write_text

    atomic_write_text(json.dumps(record, indent=2, default=str) + "\n", folder / RUN_RECORD)


def read_record(root: str | Path, name: str) -> dict[str, Any]:
    """The run record ``<root>/<name>/run.json``, or ``{}`` when missing or unreadable."""
    try:
        record = json.loads((Path(root) / name / RUN_RECORD).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _expected_outputs(root: Path, name: str, record: Mapping[str, Any]) -> list[str]:
    entry = manifest_entry(name)
    listed = set(entry.outputs) if entry is not None else set()
    return sorted(listed | set(record.get("outputs", [])))


#: How many changed modules :func:`staleness` names before it counts the rest.
MAX_NAMED = 8


def staleness(
    record: Mapping[str, Any], key: Mapping[str, Any], parameters: Mapping[str, Any] | None = None
) -> list[str]:
    """What changed between the run ``record`` stands for and a run with ``key``.

    Args:
        record: a run record (``run.json``).
        key: the new run key (:func:`kc.run.runkey.run_key`).
        parameters: the new run's parameters, to name the ones that differ.

    Returns:
        One phrase per changed part, naming what changed where it can: ``"kc modules:
        kc.studies.instability.run"``, ``"parameters: SEEDS"``, ``"notebook cells"``, ``"paper
        data"``; ``[]`` when the keys agree.

    Example:
        >>> old = {"run_key": {"notebook": "a", "parameters": "p", "code": "c", "data": "",
        ...        "module_digests": {"kc.x": "1", "kc.y": "2"}}, "parameters": {"SEEDS": [0]}}
        >>> new = {"notebook": "a", "parameters": "q", "code": "d", "data": "",
        ...        "module_digests": {"kc.x": "1", "kc.y": "3"}}
        >>> staleness(old, new, {"SEEDS": [0, 1]})
        ['kc modules: kc.y', 'parameters: SEEDS']
        >>> moved = dict(new, module_digests={f"kc.m{i}": "9" for i in range(10)})
        >>> staleness(old, moved)[0]
        'kc modules: kc.m0, kc.m1, kc.m2, kc.m3, kc.m4, kc.m5, kc.m6, kc.m7, and 4 more'
    """
    from kc.run.runkey import NOT_KEYED

    old = record.get("run_key") or {}
    found: list[str] = []
    if old.get("code") != key.get("code"):
        before, after = old.get("module_digests") or {}, key.get("module_digests") or {}
        names = sorted(m for m in set(before) | set(after) if before.get(m) != after.get(m))
        if len(names) > MAX_NAMED:  # e.g. modules moved: name a few, count the rest
            names = [*names[:MAX_NAMED], f"and {len(names) - MAX_NAMED} more"]
        found.append(f"kc modules: {', '.join(names)}" if names and before else "kc code")
    if old.get("parameters") != key.get("parameters"):
        if "effective" in old and "effective" in key:  # every value, defaults included
            was, now_ = old["effective"], key["effective"]
        else:
            was = record.get("parameters") or {}
            now_ = parameters or {}
        was = {k: v for k, v in was.items() if k not in NOT_KEYED}
        now_ = {k: v for k, v in now_.items() if k not in NOT_KEYED}
        names = sorted(k for k in set(was) | set(now_) if was.get(k) != now_.get(k))
        found.append(f"parameters: {', '.join(names)}" if names else "parameters")
    if old.get("notebook") != key.get("notebook"):
        found.append("notebook cells")
    if old.get("data") != key.get("data"):
        found.append("paper data")
    return found


def up_to_date(
    root: Path, name: str, key: Mapping[str, Any], parameters: Mapping[str, Any] | None = None
) -> tuple[bool, str]:
    """Whether the last run of ``name`` under ``root`` can stand for a run with ``key``.

    Returns:
        ``(True, "unchanged since <time>")``, or ``(False, why it must run)``; a changed key
        names what changed (:func:`staleness`).
    """
    record = read_record(root, name)
    if not record:
        return False, "no earlier run"
    if record.get("status") != "ok":
        return False, f"the last run {record.get('status', 'did not finish')}"
    changed = staleness(record, key, parameters)
    if changed:
        return False, f"changed since the last run: {'; '.join(changed)}"
    if not (root / "notebooks" / f"{name}.ipynb").is_file():
        return False, "the executed notebook is missing"
    missing = [f for f in _expected_outputs(root, name, record) if not (root / name / f).exists()]
    if missing:
        return False, f"outputs missing: {', '.join(missing)}"
    return True, f"unchanged since {record.get('finished') or record.get('started')}"


def plan_line(root: Path, name: str, why: str) -> str:
    """One line of the plan ``kc run --all`` prints before it starts: the notebook, why it
    runs, and how long its last successful run took (its record under ``root``)."""
    record = read_record(root, name)
    seconds = record.get("seconds")
    if isinstance(seconds, int | float) and record.get("status") == "ok":
        last = f"last run {seconds / 60:.1f} min" if seconds >= 90 else f"last run {seconds:.0f} s"
    else:
        last = "no recorded time"
    return f"{name}: {why} ({last})"


@dataclass
class RunResult:
    """Outcome of one notebook.

    Attributes:
        status: ``"ok"``, ``"failed"`` or ``"skipped"`` (unchanged since its last run, or a
            planned notebook not written yet; ``note`` says which).
        warnings: the cache's warnings while it ran (also in its ``run.json``).
    """

    name: str
    status: str
    seconds: float = 0.0
    executed: Path | None = None
    error: str = ""
    note: str = ""
    warnings: list[str] = field(default_factory=list)


@dataclass
class RunSummary:
    """Outcomes of :func:`kc.run.runner.run_all`; ``returncode`` is 1 when a notebook failed."""

    results: list[RunResult] = field(default_factory=list)

    @property
    def failures(self) -> list[str]:
        return [r.name for r in self.results if r.status == "failed"]

    @property
    def returncode(self) -> int:
        return 1 if self.failures else 0

    def __str__(self) -> str:
        width = max([len(r.name) for r in self.results] + [8])
        lines = [f"{'notebook':<{width}}  status   seconds"]
        for r in self.results:
            text = r.error.splitlines()[0][:100] if r.error else r.note
            note = f"  {text}" if text else ""
            lines.append(f"{r.name:<{width}}  {r.status:<7}  {r.seconds:7.1f}{note}")
            if r.error and r.note:
                lines.append(f"{'':<{width}}  {r.note}")
        for r in self.results:
            lines += [f"warning ({r.name}): {w}" for w in r.warnings]
        ran = sum(r.status == "ok" for r in self.results)
        skipped = sum(r.status == "skipped" for r in self.results)
        if self.failures:
            lines.append(f"FAILED: {', '.join(self.failures)}")
        else:
            lines.append(f"{ran} notebooks ran, {skipped} skipped")
        return "\n".join(lines)


def error_text(error: BaseException) -> str:
    """One readable line (or a few) for a notebook's failure."""
    ename, evalue = getattr(error, "ename", None), getattr(error, "evalue", None)
    if ename:  # papermill's PapermillExecutionError: the cell's exception, not the banner
        return f"{ename}: {evalue} (in cell [{getattr(error, 'exec_count', '?')}])"
    text = str(error).strip() or type(error).__name__
    return f"{type(error).__name__}: {text}" if not text.startswith(type(error).__name__) else text


def clock(seconds: float) -> str:
    """``65`` -> ``"1:05"``, ``3725`` -> ``"1:02:05"``."""
    minutes, secs = divmod(int(round(seconds)), 60)
    return (
        f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"
        if minutes >= 60
        else f"{minutes}:{secs:02d}"
    )


def progress_line(
    index: int, total: int, name: str, elapsed: float, remaining: float, unknown: int
) -> str:
    """``notebook 2/6 table1_instability; elapsed 1:05; about 12:30 left`` (``unknown``: how
    many of the notebooks still to run have no earlier run to estimate from).

    Example:
        >>> progress_line(2, 6, "table1", 65, 750, 1)
        'notebook 2/6 table1; elapsed 1:05; about 12:30 left (+1 never run)'
    """
    left = f"about {clock(remaining)} left" if remaining or not unknown else "time left unknown"
    more = f" (+{unknown} never run)" if unknown and remaining else ""
    return f"notebook {index}/{total} {name}; elapsed {clock(elapsed)}; {left}{more}"


def estimate(
    root: Path, todo: Sequence[tuple[str, Path]], plans: Mapping[str, bool], profile: str
) -> dict[str, float | None]:
    """Expected seconds per notebook of ``todo`` (``(name, path)`` pairs).

    0 if it will be skipped (``plans[name]`` true), else the wall time of its last successful
    run with the same ``profile`` (the profile's name), else ``None``: a smoke run says
    nothing about how long the small profile takes.
    """
    expected: dict[str, float | None] = {}
    for name, _ in todo:
        record = read_record(root, name)
        seconds = record.get("seconds")
        if plans.get(name):
            expected[name] = 0.0
        elif (
            record.get("status") == "ok"
            and record.get("profile") == profile
            and isinstance(seconds, (int, float))
        ):
            expected[name] = float(seconds)
        else:
            expected[name] = None
    return expected


def recorded_seconds(root: Path, name: str, start: float) -> float:
    """Wall time of a notebook: from the run record it wrote, else since ``start``."""
    record = root / name / RUN_RECORD
    try:
        if record.stat().st_mtime >= start:
            return float(json.loads(record.read_text())["seconds"])
    except (OSError, ValueError, KeyError):
        pass
    return time.time() - start
