"""The Fig. 2 notebook draws g from the model and writes its figure and parameter counts."""

import numpy as np
import pytest
from conftest import read_claims, read_csv


@pytest.mark.notebooks
def test_fig2_notebook(run_smoke):
    out = run_smoke(
        "fig2_architecture",
        FIG2_ORDER=2,
        FIG2_IN_CHANNELS=16,
        FIG2_OUT_CHANNELS=8,
    )
    table = read_csv(out / "fig2_architecture.csv")
    assert list(table["branch"]) == [0, 1, 2]
    assert list(table["own_params"]) == [8 * 16 * 9, 16 * 16 * 9 + 1, 16 * 16 * 9 + 1]
    sizes = read_csv(out / "fig2_sizes.csv")
    assert np.all(np.diff(sizes["parameters"]) == 16 * 16 * 9 + 1)
    assert (out / "fig2_architecture.png").stat().st_size > 1000
    assert not (out / "fig2_architecture.svg").exists()  # each figure kept once
    claims = read_claims(out, "fig2_architecture")
    assert [c["status"] for c in claims.values()] == ["reproduced"] * 3, claims
