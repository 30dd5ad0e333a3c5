"""The planted notebook (identifiability of the order decomposition) runs under smoke."""

import pytest
from nb_beyond import check_figure, check_verdicts, finite_csv


@pytest.mark.notebooks
def test_planted_notebook(smoke_tree):
    out = smoke_tree.output("planted")
    shares = ["planted_linear", "share_x0", "planted_nonlinear", "share_higher", "planted_noise",
              "instability", "err_linear", "err_higher", "err_noise", "linear_cka"]  # fmt: skip
    table = finite_csv(out / "planted.csv", shares)
    # smoke: depths 0 and 2, each base + lam 0 + noise 0 + noise 0.5
    assert len(table) == 8 and set(table["depth"]) == {0, 2}
    assert (
        (table["planted_linear"] + table["planted_nonlinear"] + table["planted_noise"])
        .between(0.95, 1.05)
        .all()
    )
    ident = finite_csv(out / "planted_identifiability.csv", ["depth"])
    assert len(ident) == 8 and ident["identifiable"].dtype == bool
    finite_csv(out / "planted_baselines.csv", ["value"])
    finite_csv(out / "planted_runs.csv", shares)
    drop = finite_csv(out / "planted_noise_drop.csv", ["0", "2"])
    assert "kc_consistency" in set(drop["measure"])
    check_figure(out, "planted")
    check_figure(out, "planted_baselines")
    check_verdicts(out, "planted", {"planted.linear", "planted.nonlinear", "planted.noise",
                                    "planted.cka_vs_noise"})  # fmt: skip
