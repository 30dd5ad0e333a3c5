"""The one module that writes a notebook's outputs: tables, figures and claims.

Every notebook writes into ``<OUTPUT_DIR>/<notebook name>/``: tables as CSV (diffable),
figures as PNG (one copy each: :func:`save_figure` shows the file's own bytes in the notebook,
and ``kc run`` keeps only a reference to the file in the executed copy, see
:mod:`kc.run.results`), and its claims as ``verdicts.json`` (read by the book's scorecard)
and ``verdicts.md`` (for people). Studies and plotting functions return data and figures;
only notebooks call this module.

Example:
    >>> import tempfile, pandas as pd
    >>> from kc.studies.claims import check
    >>> root = tempfile.mkdtemp()
    >>> out = output_dir("demo", root)
    >>> save_table(pd.DataFrame({"a": [1]}), "numbers", out).name
    'numbers.csv'
    >>> c = check("demo.one", "Table 0", "one is positive", 1 > 0, evidence="1")
    >>> path = save_claims([c], out, notebook="demo", profile="smoke", parameters={}, show=False)
    >>> path.name
    'verdicts.json'
"""

from __future__ import annotations

import base64
import json
import math
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from kc.studies.claims import Claim, claims_markdown

__all__ = [
    "OUTPUT_DIR",
    "Stopwatch",
    "notebook_parameters",
    "output_dir",
    "save_claims",
    "save_figure",
    "save_table",
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


FIGURE_KEY = "kc_figure"
"""Output metadata naming the file a displayed figure was read from (``<notebook>/<name>.png``)."""


def save_figure(
    fig: Any, name: str, out_dir: str | Path, dpi: int = PNG_DPI, show: bool = True
) -> Path:
    """Write a matplotlib figure as ``name.png`` (at ``dpi``), close it, and show that file.

    The figure is shown as the PNG's own bytes, with ``{"kc_figure": "<folder>/<name>.png"}``
    in the output's metadata, and closed so the inline backend does not draw a second copy;
    ``kc run`` then keeps one copy of each figure (:func:`kc.run.results.pack_figures`). Metadata
    carrying dates or versions is left out so reruns produce the same file.

    Returns:
        The PNG's path.
    """
    import matplotlib.pyplot as plt

    png = _target(name, out_dir, ".png")
    fig.savefig(png, dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    if show:
        _display_png(png)
    return png


def _display_png(png: Path) -> None:
    """Show ``png`` in a notebook (nothing outside IPython)."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # pragma: no cover - IPython comes with papermill
        return
    if get_ipython() is None:
        return
    encoded = base64.b64encode(png.read_bytes()).decode("ascii")
    data = {"image/png": encoded, "text/plain": f"<Figure {png.name}>"}
    display(data, raw=True, metadata={FIGURE_KEY: f"{png.parent.name}/{png.name}"})


def _jsonable(value: Any) -> Any:
    """Parameters as JSON: tuples -> lists, NumPy scalars -> Python, NaN -> None."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # NumPy / torch scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def save_claims(
    claims: Iterable[Claim],
    out_dir: str | Path,
    *,
    notebook: str,
    profile: str,
    parameters: Mapping[str, Any],
    show: bool = True,
) -> Path:
    """Write ``verdicts.json`` and ``verdicts.md`` into ``out_dir``; return the JSON path.

    ``verdicts.json`` is ``{"notebook", "profile", "parameters", "claims": [asdict(c), ...]}``
    (non-finite numbers become ``null``); ``verdicts.md`` is :func:`kc.studies.claims.claims_markdown`.
    With ``show`` the Markdown is also displayed (in a notebook) or printed.
    """
    items = list(claims)
    if not all(isinstance(c, Claim) for c in items):
        kinds = sorted({type(c).__name__ for c in items})
        raise TypeError(f"claims must be kc.studies.claims.Claim objects, got {kinds}")
    markdown = claims_markdown(items)  # also checks that ids are unique
    record = {
        "notebook": str(notebook),
        "profile": str(profile),
        "parameters": _jsonable(dict(parameters)),
        "claims": [_jsonable(asdict(c)) for c in items],
    }
    path = _target("verdicts", out_dir, ".json")
    _write_atomically(path, json.dumps(record, indent=1) + "\n")
    _write_atomically(_target("verdicts", out_dir, ".md"), markdown)
    if show:
        _display_markdown(markdown)
    return path


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` beside ``path`` and move it into place: readers see old or new, never half."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _display_markdown(markdown: str) -> None:
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
    except ImportError:  # pragma: no cover - IPython is a dependency of ipykernel
        get_ipython = None  # type: ignore[assignment]
    if get_ipython is not None and get_ipython() is not None:
        display(Markdown(markdown))
    else:
        print(markdown, end="")


class Stopwatch:
    """Wall time since creation (no enter/exit to pair up across notebook cells).

    Also a context manager for one step: ``with Stopwatch() as t: ...`` then ``t.seconds`` is
    the step's duration, frozen at the end of the block.

    Example:
        >>> clock = Stopwatch()
        >>> clock.seconds >= 0
        True
        >>> with Stopwatch() as step:
        ...     _ = sum(range(10))
        >>> step.seconds >= 0
        True
    """

    def __init__(self) -> None:
        self._start = time.perf_counter()
        self._stop: float | None = None

    @property
    def seconds(self) -> float:
        """Seconds from creation (or entering the block) to now, or to the block's end."""
        end = self._stop if self._stop is not None else time.perf_counter()
        return end - self._start

    def __enter__(self) -> Stopwatch:
        self._start, self._stop = time.perf_counter(), None
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop = time.perf_counter()

    def __repr__(self) -> str:
        return f"Stopwatch(seconds={self.seconds:.3f})"


def notebook_parameters(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The notebook's parameters: the UPPER_CASE names of ``namespace`` holding plain data.

    Call it as ``PARAMS = output.notebook_parameters(globals())`` right after the parameters
    cell; modules, functions and classes are left out.

    Example:
        >>> notebook_parameters({"SEEDS": [0, 1], "seed": 3, "PATH": Path, "ORDER": 2})
        {'SEEDS': [0, 1], 'ORDER': 2}
    """
    plain = (bool, int, float, str, list, tuple, dict, type(None))
    return {
        name: value
        for name, value in namespace.items()
        if name.isupper() and not name.startswith("_") and isinstance(value, plain)
    }
