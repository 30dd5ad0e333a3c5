"""benchmarks/bench_phases.py runs end to end on the smallest setting and writes its tables."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_phases.py"


def _load_script(monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_phases", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_phases", module)  # dataclasses look it up
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_bench_phases_smoke(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KC_CACHE", str(tmp_path / "outer-cache"))
    bench = _load_script(monkeypatch)
    argv = ["--profile", "smoke", "--phases-only", "--archs", "alexnet", "--g-arch", "alexnet"]
    assert bench.main([*argv, "--cache", str(tmp_path / "cache"), "--out", str(tmp_path)]) == 0

    assert os.environ["KC_CACHE"] == str(tmp_path / "outer-cache")  # restored
    assert any((tmp_path / "cache" / "g").glob("*.pt"))  # the given cache was used
    table = pd.read_csv(tmp_path / "phases_smoke.csv")
    assert list(table["name"]) == [
        "data load",
        "train alexnet",
        "features alexnet",
        "g setup alexnet",
        "g fit alexnet",
    ]
    assert (table["seconds"] > 0).all()
    assert table.loc[0, "x_data"] == pytest.approx(1.0)
    phases = table[table["kind"] == "phase"]
    assert phases["x_min"].min() == pytest.approx(1.0)
    assert table["torch_threads"].iloc[0] >= 1
    meta = json.loads((tmp_path / "phases_smoke.json").read_text())
    assert meta["profile"] == "smoke" and meta["layers"] == {"alexnet": "conv5"}
    assert "train alexnet" in capsys.readouterr().out
