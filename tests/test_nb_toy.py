"""The tutorial notebook runs under the smoke profile and writes its tables."""

import numpy as np
import pytest
from conftest import read_claims, read_csv


@pytest.mark.notebooks
def test_toy_notebook(run_smoke):
    out = run_smoke("00_toy_consistency", TOY_EPOCHS=8, TOY_N=256)
    table = read_csv(out / "toy_cases.csv")
    assert list(table["case"]) == ["permuted", "linear", "nonlinear", "half", "independent"]
    assert {"Var(x0)", "Var(x1)", "Var(x2)", "Var(delta)", "Var(x*)", "instability"} <= set(table)
    assert np.isfinite(table.drop(columns="case").to_numpy()).all()
    assert table["instability"].between(0, 1.5).all()
    # even a short fit separates a permuted copy from unrelated noise
    inst = table.set_index("case")["instability"]
    assert inst["permuted"] < 0.5 < inst["independent"]
    assert (out / "toy_cases.png").exists() and (out / "toy_components.svg").exists()
    assert len(read_claims(out, "00_toy_consistency")) == 5
