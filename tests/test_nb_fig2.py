"""The Fig. 2 notebook draws g from the model and writes its figure and parameter counts."""

import numpy as np
import pytest
from conftest import notebook_params, read_claims, read_csv


@pytest.mark.notebooks
def test_fig2_notebook(smoke_tree):
    out = smoke_tree.output("fig2_architecture")
    params = notebook_params("fig2_architecture")
    order, k = params["FIG2_ORDER"], params["KERNEL_SIZE"]
    c_in, c_out = params["FIG2_IN_CHANNELS"], params["FIG2_OUT_CHANNELS"]
    table = read_csv(out / "fig2_architecture.csv")
    assert list(table["branch"]) == list(range(order + 1))
    # branch 0 owns W(0) (C -> C*); each higher branch owns a conv W(k) (C -> C) and p(k)
    higher = c_in * c_in * k * k + 1
    assert list(table["own_params"]) == [c_out * c_in * k * k] + [higher] * order
    sizes = read_csv(out / "fig2_sizes.csv")
    assert np.all(np.diff(sizes["parameters"]) == higher)
    assert (out / "fig2_architecture.png").stat().st_size > 1000
    assert not (out / "fig2_architecture.svg").exists()  # each figure kept once
    claims = read_claims(out, "fig2_architecture")
    assert [c["status"] for c in claims.values()] == ["reproduced"] * 3, claims
