"""Shared by the smoke tests of the beyond-the-paper notebooks (baselines, grounding, planted)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from kc.studies.claims import STATUSES


def finite_csv(path: Path, columns: list[str]) -> pd.DataFrame:
    """Read a CSV the notebook wrote and check that ``columns`` are present and finite."""
    assert path.exists(), f"the notebook did not write {path.name}"
    frame = pd.read_csv(path)
    assert len(frame) and set(columns) <= set(frame.columns), (path.name, list(frame.columns))
    assert np.isfinite(frame[columns].to_numpy(dtype=float)).all(), path.name
    return frame


def check_figure(out: Path, name: str) -> None:
    path = out / f"{name}.png"
    assert path.exists() and path.stat().st_size > 1000, path.name
    assert not path.with_suffix(".svg").exists()  # each figure kept once


def check_verdicts(out: Path, notebook: str, ids: set[str]) -> list[dict]:
    record = json.loads((out / "verdicts.json").read_text())
    assert record["notebook"] == notebook and record["profile"] == "smoke"
    claims = record["claims"]
    assert {c["id"] for c in claims} == ids
    assert all(c["status"] in STATUSES and c["item"] == "Beyond the paper" for c in claims)
    tested = [c for c in claims if c["status"] != "not testable"]
    assert tested and all(c["numbers"] for c in tested)
    assert (out / "verdicts.md").read_text().count("\n- ") + 1 == len(ids)
    return claims
