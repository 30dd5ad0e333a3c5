"""Shared fixtures.

``run_smoke`` executes a notebook of the manifest under the ``smoke`` profile into one output
tree shared by the whole test session, with one cache (notebooks reuse each other's trained
networks there, as they do under ``small``). Under pytest-xdist (``make test`` runs two
workers) the tree is shared by the workers: each notebook is run under a lock of its own, so
it runs once per session whichever worker asks first, and the other reads its outputs (the
run key skips a notebook whose outputs are there). A run with explicit parameters goes to a
folder of its own, so it never overwrites what another test reads.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
from collections.abc import Callable, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest


def pytest_configure(config) -> None:
    """One torch thread per xdist worker (and per notebook kernel it starts): two workers on
    two cores, not four threads fighting over them."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = "1"
        import torch

        torch.set_num_threads(1)


@pytest.fixture(scope="session")
def smoke_root(tmp_path_factory) -> Path:
    """The session's smoke tree: ``outputs/``, ``cache/``, ``variants/`` and ``locks/``; one
    folder for all xdist workers of the run."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return tmp_path_factory.mktemp("smoke")
    shared = tmp_path_factory.getbasetemp().parent / "smoke"
    shared.mkdir(exist_ok=True)
    return shared


def smoke_run(
    smoke_root: Path, notebook: str | Path, parameters: Mapping[str, Any] | None = None
) -> Path:
    """Run ``notebook`` (a manifest name or a path) under smoke in the session's tree, once
    per session and parameters: under a lock per notebook, skipped by its run key when another
    test or worker ran it already. Returns the output root it went to."""
    from filelock import FileLock

    from kc.runner import run_notebook

    name = Path(str(notebook)).stem
    root = smoke_root / "outputs"
    if parameters:
        digest = hashlib.sha256(json.dumps(parameters, sort_keys=True).encode()).hexdigest()
        root = smoke_root / "variants" / digest[:12]
    (smoke_root / "locks").mkdir(exist_ok=True)
    cache, before = str(smoke_root / "cache"), os.environ.get("KC_CACHE")
    os.environ["KC_CACHE"] = cache
    try:
        with FileLock(str(smoke_root / "locks" / f"{name}.lock")):
            run_notebook(
                notebook, profile="smoke", parameters=parameters or None, output_root=root
            )
    finally:
        if before is None:
            os.environ.pop("KC_CACHE", None)
        else:
            os.environ["KC_CACHE"] = before
    return root


@pytest.fixture
def run_smoke(smoke_root: Path, monkeypatch) -> Callable[..., Path]:
    """Run a notebook under the smoke profile (:func:`smoke_run`); returns its output folder."""
    monkeypatch.setenv("KC_CACHE", str(smoke_root / "cache"))

    def run(name: str, **parameters) -> Path:
        return smoke_run(smoke_root, name, parameters) / Path(name).stem

    return run


def read_claims(out: Path, notebook: str) -> dict[str, dict]:
    """The claims a notebook saved in ``out/verdicts.json``, by id, after checking the record."""
    import json

    from kc.claims import STATUSES

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

    from kc import zoo
    from kc.paper import ARCH_DEPTH

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
    from kc import experiments as ex
    from kc.studies import instability as ins

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

    from kc.runner import notebooks_dir

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
