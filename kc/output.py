"""Writing a notebook's outputs: tables, figures and claims (TEMPORARY minimal version).

Temporary: written on the ``figs2`` branch so the Fig. 4 notebooks can call the agreed
interface before the studies refactor lands; the integrator replaces it with the shared
module. Tables and figures go through :mod:`kc.report`; claims go to ``verdicts.json`` (read by
the book's scorecard) and a human ``verdicts.md``. Only notebooks call this module.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from kc import report
from kc.claims import Claim

__all__ = ["save_claims", "save_figure", "save_table"]


def save_table(df: pd.DataFrame, name: str, out_dir: str | Path) -> Path:
    """Write ``df`` to ``out_dir/name.csv`` and return the path."""
    return report.save_table(df, name, out_dir)


def save_figure(fig: Any, name: str, out_dir: str | Path) -> list[Path]:
    """Write a matplotlib figure as ``name.png`` and ``name.svg``; return both paths."""
    png = report.save_figure(fig, name, out_dir)
    return [png, png.with_suffix(".svg")]


def _plain(value: Any) -> Any:
    """JSON-friendly copy of a parameter value (tuples -> lists, numpy scalars -> Python)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value


def save_claims(
    claims: Iterable[Claim],
    out_dir: str | Path,
    *,
    notebook: str,
    profile: str,
    parameters: Mapping[str, Any],
) -> Path:
    """Write ``out_dir/verdicts.json`` and ``out_dir/verdicts.md``; return the JSON path.

    The JSON is ``{"notebook", "profile", "parameters", "claims": [asdict(claim), ...]}``.
    """
    items = list(claims)
    bad = [type(c).__name__ for c in items if not isinstance(c, Claim)]
    if bad:
        raise ValueError(f"claims must be kc.claims.Claim objects, got {bad}")
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    record = {
        "notebook": notebook,
        "profile": profile,
        "parameters": _plain(dict(parameters)),
        "claims": [asdict(c) for c in items],
    }
    path = folder / "verdicts.json"
    path.write_text(json.dumps(record, indent=2, allow_nan=True) + "\n")
    lines = [f"- **{c.item}**: {c.claim}: {c.status} ({c.evidence})" for c in items]
    (folder / "verdicts.md").write_text("\n".join(lines) + "\n")
    return path
