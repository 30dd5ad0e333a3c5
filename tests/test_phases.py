"""Phase timings (kc.engine.phases): self times add up, nothing is recorded unless asked, kernels report."""

from __future__ import annotations

import os
import time

import nbformat
import pytest

from kc.engine import phases
from kc.run import runner


def test_nested_phases_have_self_times_that_add_up(tmp_path) -> None:
    path = tmp_path / "phases.jsonl"
    with phases.profiling(path):
        with phases.phase("train", "vgg16"):
            time.sleep(0.05)
            with phases.phase("features", "vgg16"):
                time.sleep(0.1)
            phases.record("evaluation", 0.02, "vgg16")
    rows = {r["phase"]: r for r in phases.read(path)}
    assert list(rows) == ["features", "evaluation", "train"]  # in the order they ended
    train = rows["train"]
    assert train["seconds"] >= 0.15  # the recorded evaluation is a part of it, not extra
    inner = rows["features"]["seconds"] + rows["evaluation"]["seconds"]
    assert train["self_seconds"] == pytest.approx(train["seconds"] - inner, abs=2e-4)
    total_self = sum(r["self_seconds"] for r in rows.values())
    assert total_self == pytest.approx(train["seconds"], abs=5e-4)
    assert all(r["load"] >= 0 and r["pid"] == os.getpid() for r in rows.values())


def test_nothing_is_recorded_without_the_variable(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv(phases.ENV_VAR, raising=False)
    with phases.phase("g fit"):
        phases.record("evaluation", 1.0)
    assert phases.timed("g fit")(lambda x: x + 1)(1) == 2
    assert not list(tmp_path.iterdir())
    assert phases.read(tmp_path / "none.jsonl") == []


def test_the_environment_is_restored(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(phases.NOTEBOOK_ENV, "outer")
    with phases.profiling(tmp_path / "p.jsonl"), phases.notebook("inner"):
        assert os.environ[phases.NOTEBOOK_ENV] == "inner"
        phases.record("book", 0.5)
    assert os.environ[phases.NOTEBOOK_ENV] == "outer" and phases.ENV_VAR not in os.environ
    assert phases.read(tmp_path / "p.jsonl")[0]["notebook"] == "inner"


def test_an_unknown_phase_is_refused() -> None:
    with pytest.raises(ValueError, match=r"unknown phase 'training'; phases: \('data', 'train'"):
        phases.record("training", 1.0)


def test_a_notebook_kernel_reports_its_phases_tagged_with_its_name(tmp_path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "from kc.engine import phases\nwith phases.phase('g fit', 'x'):\n    pass"
        )
    ]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path = tmp_path / "timed.ipynb"
    nbformat.write(nb, path)
    with phases.profiling(tmp_path / "p.jsonl"):
        runner.execute(path, profile="smoke", output_root=tmp_path / "out")
    (row,) = phases.read(tmp_path / "p.jsonl")
    assert (row["phase"], row["label"], row["notebook"]) == ("g fit", "x", "timed")
    assert row["pid"] != os.getpid()


def test_self_seconds_leave_out_nested_phases(tmp_path) -> None:
    # a pruned or born-again network trains its base inside its own training phase: the base's
    # training must not be counted again as the outer phase's evaluation
    with phases.profiling(tmp_path / "p.jsonl"):
        with phases.phase("train", "pruned") as block:
            with phases.phase("train", "base"):
                time.sleep(0.2)
            rest = block.self_seconds()
    assert rest < 0.1
    with phases.phase("train") as idle:  # not profiling: nothing to measure
        assert idle.self_seconds() == 0.0
