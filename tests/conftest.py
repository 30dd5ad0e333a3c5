"""Shared fixtures.

``smoke_tree`` is the session's smoke output tree (tests/smoke_tree.py): every notebook of the
manifest executed once under the ``smoke`` profile, with one temporary cache (notebooks reuse
each other's trained networks there, as they do under ``small``), shared by all pytest-xdist
workers of the run. Tests that read it are put in one xdist group (``--dist loadgroup`` runs
them on one worker while the other runs the rest). Every worker also gets its own default
cache (``$KC_CACHE``), so no test reads or writes a cache folder another process writes, and
``cpu_count // workers`` torch threads.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
from smoke_tree import SmokeTree, read_timings, shared_tree

#: The xdist group of the tests that read the smoke tree or the book site built from it.
SMOKE_GROUP = "smoke"


def _workers() -> int:
    return int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, split the cores between the workers (one thread each on 2 cores);
    notebook kernels inherit ``OMP_NUM_THREADS``."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return
    threads = max(1, (os.cpu_count() or 1) // _workers())
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["MKL_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that use the smoke tree or the book site go to one worker (``--dist loadgroup``)."""
    for item in items:
        if {"smoke_tree", "site"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.xdist_group(SMOKE_GROUP))
    if getattr(config.option, "loadgroup", False):
        _group_suffixes(items)


def _group_suffixes(items: list[pytest.Item]) -> None:
    """``<nodeid>@<group>`` for the items of an xdist group, the ids ``--dist loadgroup``
    schedules by. pytest-xdist 3.8 sets them through ``item._nodeid``, which pytest 9 no longer
    reads (its node ids live in ``item._id``), so without this every group is split."""
    try:
        from _pytest.nodeid import NodeId
    except ImportError:  # pytest < 9: xdist's own suffixes work
        return
    for item in items:
        marks = item.iter_markers("xdist_group")
        groups = sorted({str(m.args[0] if m.args else m.kwargs.get("name", "default")) for m in marks})
        if groups and "@" not in item.nodeid.rpartition("]")[2] and hasattr(item, "_id"):
            item._id = NodeId.parse(f"{item.nodeid}@{'_'.join(groups)}")


def _shared_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of this test run shared by its xdist workers (the parent of their basetemps)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if "PYTEST_XDIST_WORKER" in os.environ else base


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """This process's default cache for the whole session (tests may set their own)."""
    folder = tmp_path_factory.mktemp("kc-cache")
    old = os.environ.get("KC_CACHE")
    os.environ["KC_CACHE"] = str(folder)
    yield folder
    if old is None:
        os.environ.pop("KC_CACHE", None)
    else:
        os.environ["KC_CACHE"] = old


@pytest.fixture(scope="session")
def smoke_tree(tmp_path_factory: pytest.TempPathFactory) -> SmokeTree:
    """Every notebook run once under smoke, shared by the workers (built by the first to ask)."""
    return shared_tree(_shared_folder(tmp_path_factory))


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """The seconds of each notebook of the smoke tree, when this run built one."""
    factory = getattr(config, "_tmp_path_factory", None)
    if factory is None or getattr(config, "workerinput", None) is not None:
        return
    try:
        timings = read_timings(factory.getbasetemp())
    except OSError:
        return
    if timings:
        terminalreporter.section("smoke tree: seconds per notebook")
        for name, seconds in sorted(timings.items(), key=lambda kv: -kv[1]):
            terminalreporter.write_line(f"{seconds:7.1f}  {name}")


def read_claims(out: Path, notebook: str) -> dict[str, dict]:
    """The claims a notebook saved in ``out/verdicts.json``, by id, after checking the record."""
    import json

    from kc.studies.claims import STATUSES

    record = json.loads((out / "verdicts.json").read_text())
    assert list(record) == ["notebook", "profile", "parameters", "claims"]
    assert record["notebook"] == notebook and record["profile"] == "smoke"
    assert record["parameters"]["PROFILE"] == "smoke"
    claims = {c["id"]: c for c in record["claims"]}
    assert len(claims) == len(record["claims"]) and all(
        c["status"] in STATUSES for c in claims.values()
    )
    assert (out / "verdicts.md").read_text().count("\n- ") + 1 == len(claims)
    return claims


def read_csv(path: Path) -> pd.DataFrame:
    assert path.exists(), f"the notebook did not write {path.name}"
    return pd.read_csv(path)


@pytest.fixture
def fake_consistency() -> Callable[[list], Callable[..., Any]]:
    """``fake_consistency(calls)``: a stand-in for ``get_consistency`` that records its calls."""
    return _fake_consistency


def _fake_consistency(calls: list) -> Callable[..., Any]:
    """A stand-in for get_consistency: instability grows with arch depth and layer depth,
    and is a little higher when the target is a later seed."""

    from kc.engine import zoo
    from kc.studies.paper import ARCH_DEPTH

    def fake(x_spec, x_layer, t_spec, t_layer, **kwargs):
        calls.append((x_spec, x_layer, t_spec, t_layer, kwargs))
        base = 0.1 * (1 + list(ARCH_DEPTH).index(x_spec.arch))
        inst = base + 0.05 * zoo.layers(x_spec.arch).index(x_layer) + 0.01 * t_spec.seed
        inst += 0.002 * (t_spec.task == "half0")
        v = pd.Series(
            [1.0 - inst - 0.05, 0.04, 0.01, inst, 1.0],
            index=["Var(x0)", "Var(x1)", "Var(x2)", "Var(delta)", "Var(x*)"],
        )
        return SimpleNamespace(
            instability=inst, variances=v, variances_raw=v * 9.0, info={"from_cache": True}
        )

    return fake


@pytest.fixture
def faked_fits(monkeypatch) -> tuple[Any, pd.DataFrame, list]:
    """The fits of a 3-seed Tables 1-2 study with g faked by :func:`_fake_consistency`:
    (study, ``instability.fits`` rows, the calls made to ``get_consistency``)."""
    from kc.engine import experiments as ex
    from kc.studies.instability import run as ins

    calls: list = []
    monkeypatch.setattr(ex, "get_consistency", _fake_consistency(calls))
    study = ins.InstabilityStudy.from_params(notebook_params("table1_instability", SEEDS=[0, 1, 2]))
    return study, ins.fits(study), calls


def notebook_params(name: str, **overrides: Any) -> dict[str, Any]:
    """The defaults of a notebook's ``parameters`` cell (the smoke settings), with overrides.

    Studies' tests build their settings from these, so that no test keeps its own copy of the
    defaults.
    """
    import json

    from kc.run.runner import notebooks_dir

    cells = json.loads((notebooks_dir() / f"{name}.ipynb").read_text())["cells"]
    source = next(
        "".join(c["source"]) for c in cells if "parameters" in c["metadata"].get("tags", [])
    )
    namespace: dict[str, Any] = {}
    exec(source, namespace)  # noqa: S102 - the project's own parameters cell: assignments only
    params = {k: v for k, v in namespace.items() if k.isupper()}
    unknown = sorted(set(overrides) - set(params))
    if unknown:
        raise KeyError(f"{name} has no parameters {unknown}")
    return {**params, **overrides}


def default_sigint() -> None:
    """``preexec_fn`` for a child that a test interrupts with SIGINT, as Ctrl-C does.

    A shell without job control starts background commands with SIGINT ignored, and an ignored
    signal stays ignored across exec: run from such a job (`make test &`, nohup), the child
    would never see the test's Ctrl-C. Restoring the default lets Python install its
    KeyboardInterrupt handler as in a terminal.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
