"""Writing a notebook's outputs: tables (CSV), figures (PNG + SVG) and claims (verdicts).

Minimal version for the figure notebooks, TO BE REPLACED by the studies helper's
``kc/output.py`` at merge (same three functions, same files). Only notebooks call it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd

from kc import report
from kc.claims import Claim

__all__ = ["save_claims", "save_figure", "save_table"]


def save_table(df: pd.DataFrame, name: str, out_dir: str | Path) -> Path:
    """Write ``df`` to ``out_dir/name.csv`` (no index); return the path."""
    return report.save_table(df, name, out_dir)


def save_figure(fig: Any, name: str, out_dir: str | Path) -> list[Path]:
    """Write ``fig`` as ``out_dir/name.png`` and ``name.svg``; return both paths."""
    png = report.save_figure(fig, name, out_dir)
    return [png, png.with_suffix(".svg")]


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
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
) -> Path:
    """Write ``verdicts.json`` ({"notebook", "profile", "parameters", "claims"}) and
    ``verdicts.md`` into ``out_dir``; return the JSON path."""
    items = list(claims)
    if not items or not all(isinstance(c, Claim) for c in items):
        raise ValueError(f"expected one or more kc.claims.Claim, got {items!r}")
    record = {
        "notebook": notebook,
        "profile": profile,
        "parameters": _jsonable(dict(parameters)),
        "claims": [_jsonable(asdict(c)) for c in items],
    }
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "verdicts.json"
    path.write_text(json.dumps(record, indent=1) + "\n")
    lines = [
        f"**{c.status}**: {c.item}, {c.claim} ({c.evidence}"
        + (f"; paper: {c.paper})" if c.paper else ")")
        for c in items
    ]
    report.show_verdicts(lines, folder)  # writes verdicts.md and displays it
    return path
