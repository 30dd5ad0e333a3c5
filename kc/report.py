"""Saving what a notebook shows, and comparing it with the paper.

Every notebook writes into ``<OUTPUT_DIR>/<notebook name>/``: tables as CSV (diffable), figures
as PNG and SVG, and its verdicts as Markdown. A verdict is computed from the notebook's data,
never typed in by hand::

    holds = bool(ours["instability"].is_monotonic_increasing)
    v = verdict("instability grows with depth", holds, f"values {ours['instability'].tolist()}")
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "OUTPUT_DIR",
    "Timer",
    "output_dir",
    "save_figure",
    "save_table",
    "show_verdicts",
    "side_by_side",
    "verdict",
]

OUTPUT_DIR = Path("outputs")
"""Default root of the notebooks' outputs (relative to the working directory)."""

PNG_DPI = 120


def output_dir(notebook_name: str, root: str | Path = OUTPUT_DIR) -> Path:
    """Create (if needed) and return ``root/notebook_name``."""
    if not notebook_name or Path(notebook_name).name != notebook_name:
        raise ValueError(f"notebook_name must be a plain folder name, got {notebook_name!r}")
    path = Path(root) / notebook_name
    path.mkdir(parents=True, exist_ok=True)
    return path


def _target(name: str, out_dir: str | Path, suffix: str) -> Path:
    if not name or Path(name).name != name:
        raise ValueError(f"name must be a plain file name, got {name!r}")
    stem = name[: -len(suffix)] if name.endswith(suffix) else name
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{stem}{suffix}"


def save_table(df: pd.DataFrame, name: str, out_dir: str | Path) -> Path:
    """Write ``df`` to ``out_dir/name.csv`` (without the index) and return the path."""
    path = _target(name, out_dir, ".csv")
    df.to_csv(path, index=False)
    return path


def save_figure(fig: Any, name: str, out_dir: str | Path, dpi: int = PNG_DPI) -> Path:
    """Write a matplotlib figure as ``name.png`` (at ``dpi``) and ``name.svg``; return the PNG.

    Metadata carrying dates or versions is left out so reruns produce the same files.
    """
    import matplotlib

    png = _target(name, out_dir, ".png")
    fig.savefig(png, dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    # A fixed salt makes the SVG's element ids, and so the file, the same on every run.
    with matplotlib.rc_context({"svg.hashsalt": f"kc-{png.stem}"}):
        fig.savefig(png.with_suffix(".svg"), bbox_inches="tight", metadata={"Date": None})
    return png


def side_by_side(
    ours: pd.DataFrame,
    paper: pd.DataFrame,
    on: Sequence[str],
    ours_value: str = "value",
    paper_value: str = "value",
    how: str = "outer",
) -> pd.DataFrame:
    """Put our numbers next to the paper's.

    Args:
        ours: our results, with the key columns ``on`` and a value column ``ours_value``.
        paper: the paper's rows (e.g. from :func:`kc.paper.paper_table`), with the key columns
            and a value column ``paper_value``.
        on: key columns present in both frames (e.g. ``["setting", "column"]``).
        ours_value, paper_value: names of the value columns in ``ours`` and ``paper``.
        how: the merge; ``"outer"`` keeps rows only one side has (the other is NaN).

    Returns:
        Columns ``*on, ours, paper, difference`` with ``difference = ours - paper``.

    Example:
        >>> a = pd.DataFrame({"k": ["x", "y"], "value": [1.0, 2.0]})
        >>> b = pd.DataFrame({"k": ["x", "y"], "value": [1.5, 2.0]})
        >>> side_by_side(a, b, on=["k"])["difference"].tolist()
        [-0.5, 0.0]
    """
    keys = list(on)
    if not keys:
        raise ValueError("on must name at least one key column")
    for label, frame, value in (("ours", ours, ours_value), ("paper", paper, paper_value)):
        missing = [c for c in [*keys, value] if c not in frame.columns]
        if missing:
            raise ValueError(f"{label} lacks columns {missing}; it has {list(frame.columns)}")
        if frame.duplicated(keys).any():
            dups = frame[frame.duplicated(keys, keep=False)][keys].drop_duplicates()
            raise ValueError(
                f"{label} has several rows per key {keys}:\n{dups.to_string(index=False)}"
            )
    left = ours[[*keys, ours_value]].rename(columns={ours_value: "ours"})
    right = paper[[*keys, paper_value]].rename(columns={paper_value: "paper"})
    merged = left.merge(right, on=keys, how=how, sort=False)
    merged["ours"] = merged["ours"].astype(float)
    merged["paper"] = merged["paper"].astype(float)
    merged["difference"] = merged["ours"] - merged["paper"]
    return merged.reset_index(drop=True)


class Timer:
    """Context manager that measures wall time.

    Example:
        >>> with Timer("fit g") as t:
        ...     _ = sum(range(10))
        >>> t.seconds >= 0
        True
    """

    def __init__(self, label: str = "", verbose: bool = False) -> None:
        self.label = label
        self.verbose = verbose
        self.seconds: float = float("nan")
        self._start: float | None = None

    def __enter__(self) -> Timer:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._start is not None
        self.seconds = time.perf_counter() - self._start
        if self.verbose:
            print(f"{self.label or 'elapsed'}: {self.seconds:.1f} s")

    def __repr__(self) -> str:
        return f"Timer(label={self.label!r}, seconds={self.seconds:.3f})"


def verdict(claim: str, holds: bool, evidence: str) -> str:
    """Format the outcome of checking one of the paper's claims on our numbers.

    Args:
        claim: the claim, in words.
        holds: whether our data support it; computed by the notebook, never a literal.
        evidence: the numbers that decided it.

    Returns:
        ``"<claim>: reproduced (<evidence>)"`` or ``"<claim>: NOT reproduced (<evidence>)"``.

    Example:
        >>> verdict("conv5 is less stable than conv4", 0.12 > 0.09, "0.12 vs 0.09")
        'conv5 is less stable than conv4: reproduced (0.12 vs 0.09)'
    """
    if not isinstance(holds, bool | np.bool_):
        raise TypeError(f"holds must be a bool computed from the data, got {holds!r}")
    if not claim.strip():
        raise ValueError("claim must not be empty")
    status = "reproduced" if bool(holds) else "NOT reproduced"
    return f"{claim}: {status} ({evidence})"


def show_verdicts(verdicts: str | Iterable[str], out_dir: str | Path | None = None) -> str:
    """Display verdicts as a Markdown list (in a notebook) or print them; return the Markdown.

    If ``out_dir`` is given the list is also written to ``out_dir/verdicts.md``, where the book's
    summary page finds it.
    """
    items = [verdicts] if isinstance(verdicts, str) else list(verdicts)
    markdown = "\n".join(f"- {item}" for item in items) + "\n"
    if out_dir is not None:
        _target("verdicts", out_dir, ".md").write_text(markdown)
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
    except ImportError:  # pragma: no cover - IPython is a dependency of ipykernel
        get_ipython = None  # type: ignore[assignment]
    if get_ipython is not None and get_ipython() is not None:
        display(Markdown(markdown))
    else:
        print(markdown, end="")
    return markdown
