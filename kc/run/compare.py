"""Two result trees side by side: what a re-run changed in the committed results.

A result tree is an output root of ``kc run`` (``<root>/<notebook>/*.csv``, ``verdicts.json``).
:func:`compare_notebook` reads one notebook's files in both trees and reports, for every CSV
both hold, the largest absolute difference of each numeric column (rows matched by position)
and the cells of the other columns that differ, and every claim whose verdict changed.
Columns that time the run (:data:`TIMING_COLUMNS`) are reported but never count as a
difference. ``kc compare`` and ``kc verify`` print :func:`report`.

Example:
    >>> import pandas as pd
    >>> a = pd.DataFrame({"x": [1.0, 2.0], "seconds": [3.0, 4.0]})
    >>> b = pd.DataFrame({"x": [1.0, 2.5], "seconds": [9.0, 4.0]})
    >>> d = compare_frames("t.csv", a, b)
    >>> d.columns["x"], d.differs(0.0), d.differs(1.0)
    (0.5, True, False)
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "TIMING_COLUMNS",
    "NotebookDiff",
    "TableDiff",
    "compare_frames",
    "compare_notebook",
    "compare_trees",
    "report",
]

TIMING_COLUMNS = re.compile(r"(^|_)(seconds|secs|minutes|wall|elapsed|from_cache|load)($|_)")
"""Column names that time a run or say what was cached: reported, never counted."""


@dataclass
class TableDiff:
    """One CSV in both trees.

    Attributes:
        columns: numeric column -> largest absolute difference (NaN on one side only: inf).
        text: non-numeric column -> how many cells differ.
        shape: ``(rows, columns)`` in the new and the reference tree, when they differ.
        only_new, only_reference: columns in one tree only.
    """

    file: str
    columns: dict[str, float] = field(default_factory=dict)
    text: dict[str, int] = field(default_factory=dict)
    shape: tuple[tuple[int, int], tuple[int, int]] | None = None
    only_new: list[str] = field(default_factory=list)
    only_reference: list[str] = field(default_factory=list)

    def counted(self) -> dict[str, float]:
        """The numeric columns that count (timing columns left out)."""
        return {c: v for c, v in self.columns.items() if not TIMING_COLUMNS.search(c.lower())}

    def differs(self, tolerance: float = 0.0) -> bool:
        """Whether anything but timing differs by more than ``tolerance``."""
        text = {c: n for c, n in self.text.items() if not TIMING_COLUMNS.search(c.lower())}
        return bool(
            self.shape
            or self.only_new
            or self.only_reference
            or any(n > 0 for n in text.values())
            or any(v > tolerance for v in self.counted().values())
        )


@dataclass
class NotebookDiff:
    """One notebook in both trees.

    Attributes:
        tables: the CSVs both trees hold.
        missing: files (CSV, ``verdicts.json``) in the reference tree only; ``new_only`` the other way.
        verdicts: ``(claim id, reference status, new status)`` for every changed verdict
            (``"absent"`` for a claim one side does not have).
    """

    name: str
    tables: list[TableDiff] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    new_only: list[str] = field(default_factory=list)
    verdicts: list[tuple[str, str, str]] = field(default_factory=list)
    absent: str = ""

    def differs(self, tolerance: float = 0.0) -> bool:
        return bool(
            self.absent
            or self.missing
            or self.verdicts
            or any(t.differs(tolerance) for t in self.tables)
        )


def _numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def compare_frames(file: str, new: pd.DataFrame, reference: pd.DataFrame) -> TableDiff:
    """How ``new`` differs from ``reference``, column by column, rows matched by position."""
    diff = TableDiff(file)
    if new.shape != reference.shape:
        diff.shape = (new.shape, reference.shape)
    diff.only_new = [c for c in new.columns if c not in reference.columns]
    diff.only_reference = [c for c in reference.columns if c not in new.columns]
    rows = min(len(new), len(reference))
    for column in [c for c in new.columns if c in reference.columns]:
        a = new[column].iloc[:rows].reset_index(drop=True)
        b = reference[column].iloc[:rows].reset_index(drop=True)
        if _numeric(a) and _numeric(b):
            x, y = a.to_numpy(dtype=float), b.to_numpy(dtype=float)
            one_nan = np.isnan(x) != np.isnan(y)
            both = ~np.isnan(x) & ~np.isnan(y)
            gap = float(np.max(np.abs(x[both] - y[both]), initial=0.0))
            diff.columns[column] = math.inf if one_nan.any() else gap
        else:
            same = (a.astype(str) == b.astype(str)) | (a.isna() & b.isna())
            diff.text[column] = int((~same).sum())
    return diff


def _claims(path: Path) -> dict[str, str] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return {str(c.get("id")): str(c.get("status")) for c in data.get("claims", [])}


def compare_notebook(name: str, new_root: str | Path, reference_root: str | Path) -> NotebookDiff:
    """Compare ``<new_root>/<name>/`` with ``<reference_root>/<name>/``."""
    new, ref = Path(new_root) / name, Path(reference_root) / name
    diff = NotebookDiff(name)
    if not ref.is_dir():
        diff.absent = f"no results in {reference_root}"
        return diff
    if not new.is_dir():
        diff.absent = f"no results in {new_root}"
        return diff
    ref_files, new_files = _compared_files(ref), _compared_files(new)
    diff.missing = sorted(ref_files - new_files)
    diff.new_only = sorted(new_files - ref_files)
    for file in sorted(ref_files & new_files):
        if file.endswith(".csv"):
            diff.tables.append(compare_frames(file, _read(new / file), _read(ref / file)))
    old_claims, new_claims = _claims(ref / "verdicts.json"), _claims(new / "verdicts.json")
    if old_claims is not None and new_claims is not None:
        for claim in sorted(set(old_claims) | set(new_claims)):
            before, after = old_claims.get(claim, "absent"), new_claims.get(claim, "absent")
            if before != after:
                diff.verdicts.append((claim, before, after))
    return diff


def _compared_files(folder: Path) -> set[str]:
    """The CSVs of a notebook's folder, and its ``verdicts.json`` when there is one."""
    found = {p.name for p in folder.glob("*.csv")}
    if (folder / "verdicts.json").is_file():
        found.add("verdicts.json")
    return found


def _read(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def compare_trees(
    new_root: str | Path, reference_root: str | Path, notebooks: Sequence[str] | None = None
) -> list[NotebookDiff]:
    """:func:`compare_notebook` for every notebook (default: the manifest's)."""
    from kc.run.manifest import MANIFEST

    names = list(notebooks) if notebooks is not None else [nb.name for nb in MANIFEST]
    return [compare_notebook(name, new_root, reference_root) for name in names]


def _number(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.3g}"


def report(diffs: Sequence[NotebookDiff], tolerance: float = 0.0, verbose: bool = False) -> str:
    """The text ``kc compare`` prints: per notebook ``same`` or what differs.

    For a differing CSV, every column that counts with its largest absolute difference;
    timing columns are listed apart. ``verbose`` also lists the columns that agree.
    """
    lines: list[str] = []
    for d in diffs:
        if d.absent:
            lines.append(f"{d.name}: not compared ({d.absent})")
            continue
        state = "DIFFERS" if d.differs(tolerance) else "same"
        lines.append(f"{d.name}: {state}")
        for claim, before, after in d.verdicts:
            lines.append(f"  verdict {claim}: {before} -> {after}")
        for file in d.missing:
            lines.append(f"  missing in the new results: {file}")
        for file in d.new_only:
            lines.append(f"  only in the new results: {file}")
        for t in d.tables:
            if not (t.differs(tolerance) or verbose):
                continue
            parts = [f"{c} {_number(v)}" for c, v in t.counted().items() if verbose or v > tolerance]
            parts += [f"{c}: {n} cells" for c, n in t.text.items() if n]
            timing = {c: v for c, v in t.columns.items() if c not in t.counted()}
            if t.shape:
                parts.insert(0, f"shape {t.shape[1]} -> {t.shape[0]}")
            if t.only_new or t.only_reference:
                parts.append(f"columns only new {t.only_new}, only reference {t.only_reference}")
            extra = f" (timing: {', '.join(f'{c} {_number(v)}' for c, v in timing.items())})"
            lines.append(f"  {t.file}: max |diff| " + "; ".join(parts) + (extra if timing else ""))
    differing = [d.name for d in diffs if not d.absent and d.differs(tolerance)]
    compared = [d for d in diffs if not d.absent]
    lines.append(
        f"{len(compared) - len(differing)} of {len(compared)} notebooks compared are the same"
        + (f" (tolerance {tolerance:g})" if tolerance else "")
        + (f"; differ: {', '.join(differing)}" if differing else "")
    )
    return "\n".join(lines)


def summary_counts(diffs: Sequence[NotebookDiff], tolerance: float = 0.0) -> Mapping[str, Any]:
    """``{"compared", "differ", "verdicts_changed"}`` for an exit status and a test."""
    compared = [d for d in diffs if not d.absent]
    return {
        "compared": len(compared),
        "differ": sum(d.differs(tolerance) for d in compared),
        "verdicts_changed": sum(len(d.verdicts) for d in compared),
    }
