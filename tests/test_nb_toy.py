"""The course lab runs top to bottom under the smoke profile: its solutions pass their checks
(each solution cell asserts its check) and it writes its tables and verdicts."""

import json
import os
import shutil
import subprocess
import sys

import nbformat
import numpy as np
import pytest
from conftest import read_claims, read_csv

from kc.run.runner import notebooks_dir, project_root


@pytest.mark.notebooks
def test_toy_notebook(smoke_tree):
    out = smoke_tree.output("00_toy_consistency")
    table = read_csv(out / "toy_cases.csv")
    assert list(table["case"]) == ["permuted", "linear", "nonlinear", "half", "independent"]
    assert {"Var(x0)", "Var(x1)", "Var(x2)", "Var(delta)", "Var(x*)", "instability"} <= set(table)
    assert np.isfinite(table.drop(columns="case").to_numpy()).all()
    assert table["instability"].between(0, 1.5).all()
    inst = table.set_index("case")["instability"]
    assert inst["permuted"] < 0.5 < inst["independent"]
    cka = read_csv(out / "toy_cka.csv").set_index("case")["linear CKA"]
    assert cka["permuted"] == pytest.approx(1.0, abs=1e-6) and cka["linear"] < 0.95
    directions = read_csv(out / "toy_directions.csv")["instability"]
    assert directions[0] < directions[1]
    for name in ("toy_cases.png", "toy_components.png", "toy_lambda.csv", "verdicts.md"):
        assert (out / name).exists(), name
    claims = read_claims(out, "00_toy_consistency")
    assert len(claims) == 6 and {c["status"] for c in claims.values()} <= {"reproduced", "not reproduced"}
    # every check printed its verdict on the solution
    executed = nbformat.read(smoke_tree.executed("00_toy_consistency"), 4)
    printed = "".join(
        o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs
    )
    assert printed.count("Correct.") == 5, printed


def test_lab_structure():
    """Each exercise has an unanswered answer cell, a check cell and a hidden solution."""
    nb = nbformat.read(notebooks_dir() / "00_toy_consistency.ipynb", 4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and code.index(params[0]) == 0
    answers = [
        c
        for c in code
        if c.source.lstrip().startswith("answer_") or c.source.startswith("my_target = None")
    ]
    assert len(answers) == 5 and all("= None" in c.source for c in answers)
    solutions = [c for c in code if "hide-cell" in c.metadata.get("tags", [])]
    assert len(solutions) == 5
    for sol in solutions:
        assert sol.source.startswith("# Solution") and "assert toy.check_" in sol.source
        assert sol.metadata["jupyter"]["source_hidden"] is True
        before = code[code.index(sol) - 1].source
        assert before.startswith("toy.check_"), before  # the student's check comes first
    assert not any(c.outputs for c in code), "commit the lab without outputs"
    json.dumps(nb)  # serialisable as committed


@pytest.mark.notebooks
def test_lab_under_nbval(tmp_path):
    """The lab as a student gets it (its own defaults, no papermill) runs cleanly under nbval."""
    pytest.importorskip("nbval", reason="nbval is in the dev extra; pip install -e '.[dev]'")
    lab = tmp_path / "lab.ipynb"
    shutil.copy(notebooks_dir() / "00_toy_consistency.ipynb", lab)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(project_root()), *sys.path]))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "-q", "-p", "no:cacheprovider", lab.name],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert (tmp_path / "outputs" / "00_toy_consistency" / "verdicts.md").exists()
