"""Interrupt and resume on the smoke profile with the cheapest real notebook (the tutorial):
an interrupted run resumed by the same command ends with the outputs of an uninterrupted run,
a second run is skipped, and changing one parameter runs it again (issues 10 and 14)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import default_sigint

from kc.run import runner

ROOT = Path(__file__).resolve().parents[1]
NAME = "00_toy_consistency"
# fewer samples (and epochs, where the notebook has them) than the smoke defaults
_DECLARED = runner.declared_parameters(runner.resolve_notebook(NAME))
FAST = ["-p", "TOY_N", "256", *(["-p", "TOY_EPOCHS", "8"] if "TOY_EPOCHS" in _DECLARED else [])]


def kc(out: Path, *extra: str, interrupt_after_cell: int | None = None) -> tuple[int, str, str]:
    """``kc run 00_toy_consistency --profile smoke`` in a subprocess; with
    ``interrupt_after_cell``, Ctrl-C once the partial copy shows that cell executed."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-m", "kc", "run", NAME, "--profile", "smoke"]
    process = subprocess.Popen(
        [*argv, "--output-root", str(out), *FAST, *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        start_new_session=True, preexec_fn=default_sigint,
    )  # fmt: skip
    if interrupt_after_cell is not None:
        marker = f'"execution_count": {interrupt_after_cell}'
        deadline = time.time() + 300
        while time.time() < deadline and process.poll() is None:
            partial = list((out / "notebooks").glob(f".{NAME}.*.running.ipynb"))
            if partial and marker in partial[0].read_text(errors="replace"):
                break
            time.sleep(0.2)
        os.killpg(process.pid, signal.SIGINT)
    stdout, stderr = process.communicate(timeout=600)
    return process.returncode, stdout, stderr


def outputs(out: Path) -> dict[str, pd.DataFrame]:
    return {p.name: pd.read_csv(p) for p in sorted((out / NAME).glob("*.csv"))}


@pytest.mark.notebooks
def test_interrupt_resume_skip_and_rerun(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("KC_CACHE", str(tmp_path / "cache"))
    resumed, straight = tmp_path / "resumed", tmp_path / "straight"
    # interrupted after the third cell: nothing at the final path, the partial copy kept
    code, _, err = kc(resumed, interrupt_after_cell=3)
    assert code == 130, err
    assert "Traceback" not in err and "kc run: interrupted during 00_toy_consistency" in err
    assert not (resumed / "notebooks" / f"{NAME}.ipynb").exists()
    assert (resumed / "notebooks" / f"{NAME}.failed.ipynb").is_file()
    assert runner.read_record(resumed, NAME)["status"] == "interrupted"
    # the same command resumes and finishes
    code, out, err = kc(resumed)
    assert code == 0, err
    record = runner.read_record(resumed, NAME)
    assert record["status"] == "ok" and record["missing_outputs"] == []
    assert not (resumed / "notebooks" / f"{NAME}.failed.ipynb").exists()
    # the same outputs as an uninterrupted run
    assert kc(straight)[0] == 0
    files = sorted(p.name for p in (straight / NAME).iterdir() if p.name != "run.json")
    assert sorted(p.name for p in (resumed / NAME).iterdir() if p.name != "run.json") == files
    a, b = outputs(resumed), outputs(straight)
    assert a.keys() == b.keys() and {"toy_cases.csv", "toy_lambda.csv"} <= a.keys()
    for name in a:
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=False, rtol=1e-6)
    # nothing changed: skipped, and the executed notebook is untouched
    executed = resumed / "notebooks" / f"{NAME}.ipynb"
    stamp = executed.stat().st_mtime_ns
    code, out, _ = kc(resumed)
    assert code == 0 and f"{NAME}: skipped: unchanged since {record['finished']}" in out
    assert executed.stat().st_mtime_ns == stamp
    # one parameter changed: it runs again, with the new value
    code, out, err = kc(resumed, "-p", "TOY_N", "128")
    assert code == 0 and "skipped" not in out, err
    assert "changed since the last run: parameters" in err
    assert json.loads((resumed / NAME / "run.json").read_text())["parameters"]["TOY_N"] == 128
    assert executed.stat().st_mtime_ns != stamp


def test_interrupt_silences_dead_kernel_task_reports_only(capsys) -> None:
    # the traceback asyncio prints for nbclient's cell task after Ctrl-C shut the kernel down
    from nbclient.exceptions import DeadKernelError

    from kc.run import execution

    execution._quiet_dead_kernel_tasks()
    execution._quiet_dead_kernel_tasks()  # installed once
    logger = logging.getLogger("asyncio")
    assert sum(isinstance(f, execution._DeadKernelTasks) for f in logger.filters) == 1
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        for error in (DeadKernelError("Kernel died"), RuntimeError("other")):
            try:
                raise error
            except Exception:
                logger.error("Task exception was never retrieved", exc_info=True)
    finally:
        logger.removeHandler(handler)
    assert [type(r.exc_info[1]).__name__ for r in records] == ["RuntimeError"]
