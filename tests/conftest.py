"""Shared fixtures.

``run_smoke`` executes a notebook of the manifest under the ``smoke`` profile, with one
temporary cache shared by the whole test session (notebooks reuse each other's trained
networks there, as they do under ``small``) and outputs in a temporary folder.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest


@pytest.fixture(scope="session")
def smoke_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("smoke")


@pytest.fixture
def run_smoke(smoke_root: Path, monkeypatch) -> Callable[..., Path]:
    """Run a notebook under the smoke profile; returns its output folder."""
    from kc.runner import run_notebook

    monkeypatch.setenv("KC_CACHE", str(smoke_root / "cache"))

    def run(name: str, **parameters) -> Path:
        out = smoke_root / "outputs"
        run_notebook(name, profile="smoke", parameters=parameters or None, output_root=out)
        return out / name

    return run


def read_csv(path: Path) -> pd.DataFrame:
    assert path.exists(), f"the notebook did not write {path.name}"
    return pd.read_csv(path)
