"""Declared cache work on N workers (kc.engine.tasks, kc.run.schedule; issue 23)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import torch

from kc.engine import cache
from kc.engine.tasks import Task, unique
from kc.run import jobs, runner
from kc.run.schedule import run_tasks

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
pytestmark = pytest.mark.filterwarnings("ignore::kc.core.fit.ConvergenceWarning")


def record(log: str, name: str, seconds: float = 0.0) -> None:
    """A fake task: stores cache entry ``name`` after ``seconds``, logging start and end."""

    def compute() -> torch.Tensor:
        with open(log, "a") as f:
            f.write(f"start {name} {time.time()} {os.environ.get('OMP_NUM_THREADS')}\n")
        time.sleep(seconds)
        with open(log, "a") as f:
            f.write(f"end {name} {time.time()}\n")
        return torch.zeros(1)

    cache.cached("fake", {"name": name}, compute)


def fails() -> None:
    raise RuntimeError("planted failure")


def _task(log: Path, name: str, needs: tuple[str, ...] = (), seconds: float = 0.0) -> Task:
    key = cache.key("fake", {"name": name})
    return Task("fake", key, name, record, (str(log), name, seconds), needs=needs)


def _events(log: Path) -> list[list[str]]:
    return [line.split() for line in log.read_text().splitlines()]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KC_CACHE", str(tmp_path / "cache"))
    # submitit's local jobs import this module by name
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), str(TESTS),
                                                      os.environ.get("PYTHONPATH", "")]))  # fmt: skip
    return tmp_path / "log.txt"


def test_in_process_runs_inputs_first_and_resumes(env: Path) -> None:
    a, b = _task(env, "a"), _task(env, "b")
    c = _task(env, "c", needs=(a.key, b.key))
    lines: list[str] = []
    summary = run_tasks([c, a, b, a], say=lines.append)  # c first in the list, a twice
    assert [e[1] for e in _events(env) if e[0] == "start"] == ["a", "b", "c"]
    assert sorted(summary.done) == sorted([a.key, b.key, c.key]) and not summary.failed
    assert lines[0] == "3 of 3 entries to compute (0 cached), 1 at a time"
    assert lines[-1].startswith("entries 3/3 (0 running)") and "fake c done" in lines[-1]
    again = run_tasks([a, b, c], say=lines.append)  # an interrupted or repeated run resumes
    assert again.cached_before == 3 and len(_events(env)) == 6  # nothing ran again


def test_a_failed_input_fails_its_dependents_without_running_them(env: Path) -> None:
    bad = Task("fake", "bad", "bad", fails)
    child = _task(env, "child", needs=("bad",))
    free = _task(env, "free")
    summary = run_tasks([bad, child, free], say=lambda line: None)
    assert summary.failed["bad"] == "RuntimeError: planted failure"
    assert summary.failed[child.key] == "an input failed: bad"
    assert summary.done == [free.key]
    assert [e[1] for e in _events(env) if e[0] == "start"] == ["free"]


def test_two_workers_run_independent_tasks_together_and_each_entry_once(env: Path) -> None:
    slow = [_task(env, f"s{i}", seconds=3.0) for i in range(2)]
    last = _task(env, "last", needs=tuple(t.key for t in slow))
    executor = jobs.make_executor("local", env.parent / "submitit")
    lines: list[str] = []
    summary = run_tasks([*slow, last, slow[0]], jobs=2, executor=executor, poll=0.1,
                        say=lines.append)  # fmt: skip
    assert not summary.failed and len(summary.done) == 3
    events = _events(env)
    starts = {e[1]: float(e[2]) for e in events if e[0] == "start"}
    ends = {e[1]: float(e[2]) for e in events if e[0] == "end"}
    assert sorted(starts) == ["last", "s0", "s1"]  # each once
    assert starts["s1"] < ends["s0"] and starts["s0"] < ends["s1"]  # side by side
    assert starts["last"] >= max(ends["s0"], ends["s1"])  # after its inputs
    assert {e[3] for e in events if e[0] == "start"} == {"1"}  # one thread each
    assert any("about" in line and "left" in line for line in lines[1:])


def test_run_tasks_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="jobs must be a whole number >= 1"):
        run_tasks([], jobs=0)
    with pytest.raises(ValueError, match="needs a submitit executor"):
        run_tasks([], jobs=2)


def test_unique_keeps_the_first_task_of_a_key() -> None:
    one, two = Task("fake", "k", "one", print), Task("fake", "k", "two", print)
    assert unique([one, two, one]) == [one]


class _Recorder:
    """A submitit-like executor that runs each job inline and remembers it (the Slurm path)."""

    def __init__(self) -> None:
        self.submitted: list[str] = []

    def submit(self, fn, *args):  # noqa: ANN001, ANN202
        self.submitted.append(args[0].label)
        value = fn(*args)

        class Job:
            job_id = str(len(self.submitted))

            def done(self) -> bool:
                return True

            def result(self):  # noqa: ANN202
                return value

        return Job()


def test_table1_declares_exactly_the_entries_it_computes(env: Path, monkeypatch) -> None:
    """The planned tasks of Table 1 (smoke), run on a Slurm-like executor, leave the notebook's
    studies nothing to compute in either regime: same cache keys, every fit from the cache."""
    from kc.run.notebook_params import notebook_parameters
    from kc.studies.instability import convergence as cv
    from kc.studies.instability import run as ins
    from kc.studies.regime import Regime

    path = runner.resolve_notebook("table1_instability")
    values = notebook_parameters(path, "smoke", None, env.parent, strict=False)
    tasks = runner.planned_tasks(path, values)
    assert {t.kind for t in tasks} == {"net", "g"} and not any(t.done() for t in tasks)
    recorder = _Recorder()
    monkeypatch.setattr(runner, "make_executor", lambda kind, folder, **kw: recorder)
    summary = runner.prefetch([(path, values)], 2, "slurm", None, env.parent)
    assert not summary.failed and all(t.done() for t in tasks)
    assert len(recorder.submitted) == len(tasks)
    from kc.run.notebook_params import read_cells
    from kc.run.runkey import effective_parameters

    params = effective_parameters(read_cells(path), values)
    study = ins.InstabilityStudy.from_params(params)
    assert ins.networks(study)["from_cache"].all()
    assert ins.fits(study)["from_cache"].all()
    regime = Regime.from_params(params)
    assert regime is not None, "smoke should run the over-fitting regime"
    overfit = study.in_regime(regime)
    assert ins.networks(overfit)["from_cache"].all()
    assert ins.fits(overfit)["from_cache"].all()
    conv = cv.ConvergenceStudy.from_params(params)
    arch, layer = study.layer_list()[0]
    assert conv.fit(arch, layer, conv.steps[0]).info["from_cache"]


# ------------------------------------------------------------ Slurm, with fake sbatch/srun/sacct

FAKE_SBATCH = """#!/bin/bash
# fake sbatch: runs the submission script in the background as job N, as a node would
dir=$(dirname "$0")
n=$(( $(cat "$dir/next_id" 2>/dev/null || echo 100) + 1 )); echo $n > "$dir/next_id"
echo "$n $*" >> "$dir/sbatch.log"
echo RUNNING > "$dir/state_$n"
cp "$1" "$dir/job_$n.sh"  # Slurm keeps a copy: submitit renames the script once sbatch returns
( export SLURM_JOB_ID=$n SLURM_NTASKS=1 SLURM_JOB_NUM_NODES=1 SLURM_NODEID=0 SLURM_PROCID=0 \\
         SLURM_LOCALID=0 SLURM_JOB_NODELIST=localhost
  bash "$dir/job_$n.sh" && state=COMPLETED || state=FAILED; echo $state > "$dir/state_$n"
) > /dev/null 2>&1 &  # sbatch returns at once: nothing of the job may hold its stdout
echo "Submitted batch job $n"
"""

FAKE_SRUN = """#!/bin/bash
# fake srun: drops its options (--output FILE with %j and %t filled in), runs the command
out=/dev/null
while [[ "$1" == --* ]]; do
  case "$1" in
    --unbuffered) shift ;;
    --output) out=$2; shift 2 ;;
    --*=*) shift ;;
    *) shift 2 ;;
  esac
done
out=${out//%j/$SLURM_JOB_ID}; out=${out//%t/0}
exec "$@" >> "$out" 2>&1
"""

FAKE_SACCT = """#!/bin/bash
# fake sacct -o JobID,State,NodeList --parsable2 -j ID[,ID...]: the states fake sbatch wrote
dir=$(dirname "$0")
ids=${@: -1}
echo "JobID|State|NodeList"
for id in ${ids//,/ }; do echo "$id|$(cat "$dir/state_$id" 2>/dev/null || echo PENDING)|localhost"; done
"""


@pytest.fixture
def fake_slurm(env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A bin folder with fake ``sbatch``, ``srun`` and ``sacct`` first on PATH; returns it."""
    folder = env.parent / "bin"
    folder.mkdir()
    for name, text in (("sbatch", FAKE_SBATCH), ("srun", FAKE_SRUN), ("sacct", FAKE_SACCT)):
        (folder / name).write_text(text)
        (folder / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return folder


def test_slurm_jobs_go_through_sbatch_and_compute_each_entry_once(
    env: Path, fake_slurm: Path
) -> None:
    """The Slurm path end to end: one sbatch per task, inputs before the task that needs them,
    each entry computed once, a failed job reported with its error, and a rerun resumes."""
    a, b = _task(env, "a", seconds=1.0), _task(env, "b", seconds=1.0)
    c = _task(env, "c", needs=(a.key, b.key))
    bad = Task("fake", "bad", "bad", fails)
    executor = jobs.make_executor("slurm", env.parent / "jobs", timeout_min=5)
    summary = run_tasks([a, b, c, bad, a], jobs=2, executor=executor, poll=0.2,
                        say=lambda line: None)  # fmt: skip
    assert sorted(summary.done) == sorted([a.key, b.key, c.key])
    assert "planted failure" in summary.failed["bad"]
    submitted = (fake_slurm / "sbatch.log").read_text().splitlines()
    assert len(submitted) == 4  # a, b, c and bad; a's repeat counts once
    events = _events(env)
    starts = {e[1]: float(e[2]) for e in events if e[0] == "start"}
    ends = {e[1]: float(e[2]) for e in events if e[0] == "end"}
    assert sorted(starts) == ["a", "b", "c"] and len(starts) == len(ends) == 3  # each once
    assert starts["c"] >= max(ends["a"], ends["b"])
    assert {e[3] for e in events if e[0] == "start"} == {"1"}  # one thread per job
    again = run_tasks([a, b, c], jobs=2, executor=executor, say=lambda line: None)
    assert again.cached_before == 3 and len(submitted) == len(
        (fake_slurm / "sbatch.log").read_text().splitlines()
    )  # nothing submitted again
