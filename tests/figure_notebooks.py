"""Reading what a figure notebook wrote in the smoke tree."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd


def finite_csv(path: Path, nan_allowed: tuple[str, ...] = ()) -> pd.DataFrame:
    """The CSV at ``path``; every numeric value must be finite (except in ``nan_allowed``)."""
    assert path.exists(), f"the notebook did not write {path.name}"
    frame = pd.read_csv(path)
    numbers = frame.drop(columns=list(nan_allowed)).select_dtypes("number").to_numpy(dtype=float)
    assert len(frame) > 0 and np.isfinite(numbers).all(), f"{path.name} holds non-finite values"
    return frame


def figures_exist(out: Path, *names: str) -> None:
    """The PNG of every figure, non-empty, and no second copy of it (no SVG)."""
    for name in names:
        path = out / f"{name}.png"
        assert path.exists() and path.stat().st_size > 1000, f"missing or empty {path.name}"
        assert not path.with_suffix(".svg").exists()


def computed_claims(out: Path, notebook: str, ids: list[str]) -> list[dict]:
    """verdicts.json's claims: the expected ids, a valid status, finite numbers behind it."""
    record = json.loads((out / "verdicts.json").read_text())
    assert record["notebook"] == notebook and record["profile"] == "smoke"
    assert record["parameters"]["PROFILE"] == "smoke"
    claims = record["claims"]
    assert [c["id"] for c in claims] == ids
    for c in claims:
        assert c["status"] in ("reproduced", "not reproduced", "not testable")
        if c["status"] != "not testable":
            assert c["numbers"] and all(math.isfinite(v) for v in c["numbers"].values())
    assert (out / "verdicts.md").read_text().count("\n- ") + 1 == len(ids)
    return claims
