"""Where the time of a run goes: phase timings for ``benchmarks/bench_phases.py``.

When ``$KC_PROFILE_PHASES`` names a file, every :func:`phase` block appends one JSON line to it;
without it a block costs one environment lookup and records nothing. The variable is inherited
by the papermill kernels, so one file collects the phases of every notebook of ``kc run --all``
(the runner also sets ``$KC_PROFILE_NOTEBOOK`` to the notebook's name while it runs).

A line holds ``phase`` (one of :data:`PHASES`), ``label`` (e.g. the architecture),
``seconds`` (wall time of the block), ``self_seconds`` (minus the phases nested in it, so the
self times of a run add up without double counting), ``notebook``, ``pid``, ``end`` (Unix time)
and ``load`` (the 1-minute load average when the block ended: the machine's business beside
every figure).

Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "phases.jsonl")
    >>> with profiling(path):
    ...     with phase("train", "vgg16"):
    ...         record("evaluation", 0.0)
    >>> [(r["phase"], r["label"]) for r in read(path)]
    [('evaluation', ''), ('train', 'vgg16')]
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "ENV_VAR",
    "Block",
    "NOTEBOOK_ENV",
    "PHASES",
    "environ",
    "notebook",
    "phase",
    "profiling",
    "read",
    "record",
    "timed",
]

ENV_VAR = "KC_PROFILE_PHASES"
NOTEBOOK_ENV = "KC_PROFILE_NOTEBOOK"
PHASES = ("data", "train", "evaluation", "features", "g fit", "fine-tune", "book")
"""Training networks, their test evaluation (and g's), feature extraction, fitting g,
fine-tuning heads on fixed features, building the book; ``data`` is building the data sets."""

F = TypeVar("F", bound=Callable[..., Any])


class Block:
    """An open phase: when it started and how long the phases nested in it took so far."""

    def __init__(self, recording: bool) -> None:
        self.recording = recording
        self.start = time.perf_counter()
        self.nested = 0.0

    def self_seconds(self) -> float:
        """Seconds since the start, minus the nested phases (0 while not profiling)."""
        return time.perf_counter() - self.start - self.nested if self.recording else 0.0


_open: list[Block] = []  # the open phases, innermost last


def _check(name: str) -> None:
    if name not in PHASES:
        raise ValueError(f"unknown phase {name!r}; phases: {PHASES}")


def _append(path: str, name: str, label: str, seconds: float, self_seconds: float) -> None:
    line = {
        "phase": name,
        "label": label,
        "seconds": round(seconds, 4),
        "self_seconds": round(max(self_seconds, 0.0), 4),
        "notebook": os.environ.get(NOTEBOOK_ENV, ""),
        "pid": os.getpid(),
        "end": round(time.time(), 3),
        "load": round(os.getloadavg()[0], 2),
    }
    with open(path, "a", encoding="utf-8") as f:  # one short line per write: O_APPEND is atomic
        f.write(json.dumps(line) + "\n")


@contextlib.contextmanager
def phase(name: str, label: str = "") -> Iterator[Block]:
    """Time the block as phase ``name`` (:data:`PHASES`) when ``$KC_PROFILE_PHASES`` is set;
    yields the open :class:`Block` (for :meth:`Block.self_seconds`)."""
    _check(name)
    path = os.environ.get(ENV_VAR)
    if not path:
        yield Block(recording=False)
        return
    block = Block(recording=True)
    _open.append(block)
    try:
        yield block
    finally:
        seconds = time.perf_counter() - block.start
        _open.pop()
        if _open:
            _open[-1].nested += seconds
        _append(path, name, label, seconds, seconds - block.nested)


def record(name: str, seconds: float, label: str = "") -> None:
    """A phase measured by someone else's clock (e.g. the evaluation inside a training): it
    counts as nested in the open phase, whose self time it reduces."""
    _check(name)
    path = os.environ.get(ENV_VAR)
    if not path:
        return
    seconds = max(float(seconds), 0.0)
    if _open:
        _open[-1].nested += seconds
    _append(path, name, label, seconds, seconds)


def timed(name: str) -> Callable[[F], F]:
    """Decorator form of :func:`phase` (label ``""``)."""
    _check(name)

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            with phase(name):
                return fn(*args, **kwargs)

        return inner  # type: ignore[return-value]

    return wrap


@contextlib.contextmanager
def environ(values: dict[str, str]) -> Iterator[None]:
    """Set the environment variables ``values`` for the block (inherited by kernels started in
    it), then restore the earlier values."""
    before = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def profiling(path: str | Path) -> contextlib.AbstractContextManager[None]:
    """Record the phases of the block (and of kernels started in it) into ``path``."""
    return environ({ENV_VAR: str(path)})


@contextlib.contextmanager
def notebook(name: str) -> Iterator[None]:
    """While profiling, tag the phases of the block (and of kernels started in it) ``name``."""
    if not os.environ.get(ENV_VAR):
        yield
        return
    with environ({NOTEBOOK_ENV: name}):
        yield


def read(path: str | Path) -> list[dict[str, Any]]:
    """The phase lines of ``path`` (``[]`` if it does not exist)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]
