"""One smoke output tree per test run: every notebook of the manifest executed once.

:func:`shared_tree` runs ``kc.run.runner.run_all("smoke")`` into ``<folder>/smoke`` with its own
cache (``<folder>/smoke/cache``), where ``<folder>`` is shared by every pytest-xdist worker of
the run. The first worker to ask builds the tree under a file lock; the others wait on the lock
and read what it wrote (``built.json``: each notebook's status, error and seconds). Tests only
read the tree; a test that needs another parameter set calls the study function instead.
"""

from __future__ import annotations

import json
import os
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from filelock import FileLock

BUILT = "built.json"
FAILED = "(the build)"  # the key of a build that raised before running the notebooks


@dataclass(frozen=True)
class SmokeTree:
    """The session's smoke outputs: ``root/outputs/<notebook>/`` and each notebook's outcome."""

    root: Path
    results: dict[str, dict]

    @property
    def outputs(self) -> Path:
        return self.root / "outputs"

    def output(self, notebook: str) -> Path:
        """The output folder of ``notebook``; fails the calling test if the notebook failed."""
        if FAILED in self.results:
            pytest.fail(f"the smoke tree could not be built:\n{self.results[FAILED]['error']}")
        result = self.results.get(notebook)
        if result is None:
            pytest.fail(f"{notebook} is not in the smoke tree (not in the manifest?)")
        if result["status"] != "ok":
            pytest.fail(f"{notebook} failed under smoke: {result['error'] or result['note']}")
        return self.outputs / notebook

    def executed(self, notebook: str) -> Path:
        """The executed copy of ``notebook`` (``outputs/notebooks/<notebook>.ipynb``)."""
        self.output(notebook)
        return self.outputs / "notebooks" / f"{notebook}.ipynb"


@contextmanager
def _env(name: str, value: str) -> Iterator[None]:
    old = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


def build(root: Path) -> dict[str, dict]:
    """Run every notebook of the manifest under smoke into ``root`` (one cache, in order)."""
    from kc.run import runner

    root.mkdir(parents=True, exist_ok=True)
    with _env("KC_CACHE", str(root / "cache")):
        summary = runner.run_all("smoke", output_root=root / "outputs")
    return {
        r.name: {"status": r.status, "error": r.error, "note": r.note, "seconds": r.seconds}
        for r in summary.results
    }


def shared_tree(folder: Path) -> SmokeTree:
    """The smoke tree in ``folder / "smoke"``, built once by whichever process asks first."""
    root = folder / "smoke"
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder / "smoke.lock")):
        done = root / BUILT
        if not done.is_file():
            try:
                results = build(root)
            except Exception:  # e.g. a profile value refused: every smoke test shows why, once
                results = {FAILED: {"status": "failed", "error": traceback.format_exc()}}
            done.write_text(json.dumps(results, indent=1))
        return SmokeTree(root, json.loads(done.read_text()))


def read_timings(folder: Path) -> dict[str, float] | None:
    """Seconds per notebook of the tree in ``folder`` (None when no tree was built there)."""
    done = folder / "smoke" / BUILT
    if not done.is_file():
        return None
    results = json.loads(done.read_text())
    return {name: r["seconds"] for name, r in results.items() if name != FAILED}
