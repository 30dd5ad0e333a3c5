"""Workers sharing a cache compute each entry once (kc.engine.cache.computing, issue 23)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from filelock import FileLock, Timeout

from kc.engine import cache

ROOT = Path(__file__).resolve().parents[1]

WORKER = """
import sys, time, torch
from kc.engine import cache
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # all workers miss at the same moment
def compute():
    with open(sys.argv[1], "a") as f:
        f.write("computed\\n")
    time.sleep(1.5)
    return torch.arange(4)
print(cache.cached("demo", {"n": 1}, compute).tolist(), flush=True)
"""

HOLDER = """
import time
from kc.engine import cache
with cache.computing("demo", {"n": 1}):
    print("held", flush=True)
    time.sleep(120)
"""


def _python(code: str, *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, text=True, env=env
    )


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("KC_CACHE", str(tmp_path / "cache"))
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "KC_CACHE": str(tmp_path / "cache"), "PYTHONPATH": path,
            "OMP_NUM_THREADS": "1"}  # fmt: skip


def test_two_workers_compute_a_missing_entry_once(tmp_path: Path, env: dict[str, str]) -> None:
    log = tmp_path / "computed.txt"
    start = str(time.time() + 8)  # after every worker has imported torch
    workers = [_python(WORKER, str(log), start, env=env) for _ in range(3)]
    outputs = [w.communicate(timeout=120)[0].strip() for w in workers]
    assert [w.returncode for w in workers] == [0, 0, 0]
    assert outputs == ["[0, 1, 2, 3]"] * 3
    assert log.read_text().splitlines() == ["computed"]


def test_a_lock_held_by_a_dead_worker_is_recovered(env: dict[str, str]) -> None:
    holder = _python(HOLDER, env=env)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        lock = FileLock(str(cache.path_for("demo", {"n": 1}).with_suffix(".lock")))
        with pytest.raises(Timeout):  # really held
            lock.acquire(timeout=0.2)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    start = time.monotonic()
    value = cache.cached("demo", {"n": 1}, lambda: torch.ones(2))
    assert time.monotonic() - start < 10
    torch.testing.assert_close(value, torch.ones(2))


def test_an_interrupted_computation_stores_nothing_and_releases_the_lock(env: dict[str, str]) -> None:
    def interrupted() -> torch.Tensor:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.cached("demo", {"n": 2}, interrupted)
    assert cache.load("demo", {"n": 2}) is None
    calls = []
    value = cache.cached("demo", {"n": 2}, lambda: calls.append(1) or torch.zeros(1))
    assert calls == [1] and value.tolist() == [0.0]
    assert cache.cached("demo", {"n": 2}, lambda: calls.append(1) or torch.zeros(1)).tolist() == [0.0]
    assert calls == [1]  # finished entries are not computed again


def test_waiting_for_a_held_lock_says_so(env: dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    holder = _python(HOLDER, env=env)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        import threading

        threading.Timer(1.0, lambda: holder.send_signal(signal.SIGKILL)).start()
        with caplog.at_level("INFO", logger="kc.engine.cache"):
            with cache.computing("demo", {"n": 1}, poll=0.3):
                pass
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert "waiting for another worker computing demo/" in caplog.text


# ------------------------------------------------------------------ kc run --all -j N

SHARED_BODY = """import os, pathlib, time, torch
from kc.engine import cache
def compute():
    with open(os.environ['KC_TEST_LOG'], 'a') as f:
        f.write('computed\\n')
    time.sleep(2)
    return torch.tensor(float(os.environ.get('OMP_NUM_THREADS', '0')))
threads = cache.cached('demo', {'shared': 1}, compute)
out = pathlib.Path(OUTPUT_DIR) / NAME
out.mkdir(parents=True, exist_ok=True)
(out / 'threads.csv').write_text(f"name,value\\nthreads,{os.environ.get('OMP_NUM_THREADS')}\\n")
"""


def test_run_all_side_by_side_computes_a_shared_entry_once_and_resumes(
    tmp_path: Path, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from test_runner import make_notebook

    from kc.run import runner

    log = tmp_path / "computed.txt"
    monkeypatch.setenv("KC_TEST_LOG", str(log))
    monkeypatch.setenv("PYTHONPATH", env["PYTHONPATH"])
    paths = [
        make_notebook(tmp_path, f"nb{i}", f"PROFILE = 'smoke'\nOUTPUT_DIR = 'outputs'\nNAME = 'nb{i}'",
                      SHARED_BODY)
        for i in range(3)
    ]  # fmt: skip
    out = tmp_path / "out"
    summary = runner.run_all("smoke", notebooks=paths, output_root=out, jobs=2)
    assert [r.status for r in summary.results] == ["ok"] * 3, str(summary)
    assert log.read_text().splitlines() == ["computed"]  # three notebooks, one computation
    for i in range(3):  # each ran on one thread
        assert "threads,1" in (out / f"nb{i}" / "threads.csv").read_text()
    # a second run resumes: nothing runs again, nothing is computed again
    again = runner.run_all("smoke", notebooks=paths, output_root=out, jobs=2)
    assert [r.status for r in again.results] == ["skipped"] * 3
    assert log.read_text().splitlines() == ["computed"]


def test_run_all_refuses_a_bad_number_of_jobs(tmp_path: Path) -> None:
    from kc.run import runner

    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="jobs must be a whole number >= 1"):
            runner.run_all("smoke", notebooks=[], output_root=tmp_path, jobs=bad)  # type: ignore[arg-type]
