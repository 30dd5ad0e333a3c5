"""benchmarks/bench_phases.py: the whole-profile run (cold, then warm and skipped) and the quick
in-process pipeline, on the smallest settings, write their tables with the load beside them."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_phases.py"


def _load_script(monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_phases", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_phases", module)  # dataclasses look it up
    spec.loader.exec_module(module)
    return module


def _timed_notebook(folder: Path) -> Path:
    """A notebook that spends 0.3 s in the phase `g fit` and writes one output."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("PROFILE = 'smoke'\nOUTPUT_DIR = 'outputs'")
    params.metadata["tags"] = ["parameters"]
    body = (
        "import pathlib, time\nfrom kc.engine import phases\n"
        "with phases.phase('g fit', 'planted'):\n    time.sleep(0.3)\n"
        "out = pathlib.Path(OUTPUT_DIR) / 'timed'\nout.mkdir(exist_ok=True)\n"
        "(out / 'done.txt').write_text('done')"
    )
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path = folder / "timed.ipynb"
    nbformat.write(nb, path)
    return path


def test_whole_profile_cold_then_warm(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KC_CACHE", str(tmp_path / "outer-cache"))
    bench = _load_script(monkeypatch)
    notebook = _timed_notebook(tmp_path)
    argv = ["--profile", "smoke", "--notebooks", str(notebook), "--no-book", "--out", str(tmp_path)]
    assert bench.main(argv) == 0

    assert os.environ["KC_CACHE"] == str(tmp_path / "outer-cache")  # restored
    table = pd.read_csv(tmp_path / "phases_smoke.csv").set_index("name")
    walls = table[table["kind"] == "wall"]
    assert list(walls.index) == [
        "cold kc run --all", "cold total", "warm kc run --all", "warm total"
    ]  # fmt: skip
    cold = walls.loc["cold total", "seconds"]
    assert walls.loc["cold total", "share"] == pytest.approx(1.0)
    assert walls.loc["warm total", "seconds"] < cold  # the warm run skipped the notebook
    assert table.loc["g fit", "seconds"] >= 0.3 and table.loc["g fit", "calls"] == 1
    phases = table[table["kind"] == "phase"]
    assert phases["seconds"].sum() == pytest.approx(cold, rel=1e-6)  # "other" closes the sum
    assert table.loc["timed", "kind"] == "notebook" and table.loc["timed", "note"] == "ok"
    assert (table.loc[[*walls.index, *phases.index, "timed"], "load"] >= 0).all()  # beside each
    meta = json.loads((tmp_path / "phases_smoke.json").read_text())
    assert meta["warm_skipped"] == 1 and meta["warm_phases"] == 0
    assert len(meta["load_before"]) == 3
    assert "warm: 1 notebooks skipped, 0 phases ran" in capsys.readouterr().out


def test_phases_of_several_workers_are_worker_seconds(monkeypatch):
    bench = _load_script(monkeypatch)
    lines = [{"phase": "g fit", "label": "", "self_seconds": 7.0, "load": 2.0},
             {"phase": "g fit", "label": "", "self_seconds": 6.0, "load": 2.0}]  # fmt: skip
    serial = {r.name: r for r in bench.phase_rows(lines, 20.0, 1.0)}
    assert serial["other"].seconds == pytest.approx(7.0) and serial["g fit"].share == 13 / 20
    two = {r.name: r for r in bench.phase_rows(lines, 10.0, 2.0, jobs=2)}  # 13 s of work in 10 s
    assert two["other"].seconds == pytest.approx(7.0) and two["g fit"].share == 13 / 20
    assert "idle" in two["other"].note and sum(r.share for r in two.values()) == pytest.approx(1)


@pytest.mark.slow
def test_pipeline_smoke(tmp_path, monkeypatch, capsys):
    bench = _load_script(monkeypatch)
    argv = ["--profile", "smoke", "--pipeline", "--archs", "alexnet", "--g-arch", "alexnet"]
    assert bench.main([*argv, "--cache", str(tmp_path / "cache"), "--out", str(tmp_path)]) == 0

    assert any((tmp_path / "cache" / "g").glob("*.pt"))  # the given cache was used
    table = pd.read_csv(tmp_path / "phases_smoke.csv").set_index("name")
    assert {"train alexnet", "evaluation", "features", "g fit", "other"} <= set(table.index)
    assert table.loc["train alexnet", "calls"] == 2  # seeds 0 and 1
    phases = table[table["kind"] == "phase"]
    assert phases["share"].sum() == pytest.approx(1.0, rel=1e-6)
    assert (phases.drop("other")["seconds"] > 0).all()
    assert "train alexnet" in capsys.readouterr().out
