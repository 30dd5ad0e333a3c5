"""The Table 2 notebook (variances of the orders, Sec. 4.2) runs under the smoke profile."""

import numpy as np
import pytest
from conftest import read_claims, read_csv

from kc.studies.paper import paper_table

ROWS = ["Var(x0)", "Var(x1)", "Var(x2)", "Var(xDelta)"]


@pytest.mark.notebooks
def test_table2_notebook_reads_table1_fits_from_the_cache(smoke_tree):
    # the smoke tree runs the manifest in order: Table 1 filled the cache before Table 2
    out = smoke_tree.output("table2_order_variances")

    fits = read_csv(out / "table2_fits.csv")
    assert len(fits) == 5 and fits["from_cache"].all()  # 5 layers x 1 pair, no new fit

    table = read_csv(out / "table2.csv")
    assert list(table.columns) == [
        "arch",
        "layer",
        "column",
        "units",
        "row",
        "value",
        "std",
        "n_fits",
    ]
    assert len(table) == 5 * 3 * (len(ROWS) + 1)
    assert np.isfinite(table["value"]).all() and table["value"].ge(0).all()
    frac = table[table["units"] == "fraction"].set_index(["column", "row"])["value"]
    assert frac.xs("Var(x*)", level="row").eq(1.0).all()
    assert frac.xs("Var(xDelta)", level="row").between(0, 1.5).all()  # the instability

    vs = read_csv(out / "table2_vs_paper.csv")
    assert len(vs) == 2 * 4 * 5 and vs["paper"].notna().all()
    raw = vs[vs["units"] == "raw"].set_index(["row", "column"])["paper"]
    assert raw["Var(x0)", "conv4 @ AlexNet"] == pytest.approx(105.80)

    units = read_csv(out / "paper_units_check.csv")
    assert len(units) == 5 and units["ratio"].between(0.95, 1.05).all()
    assert set(units["column"]) == set(paper_table(2)["column"])

    claims = read_claims(out, "table2_order_variances")
    assert set(claims) == {"table2.orders_decrease", "table2.x0_majority", "table2.magnitudes"}
    assert all(c["status"] != "not testable" for c in claims.values())
    assert (out / "table2.png").exists()

    centre = read_csv(out / "table2_centre.csv")
    assert list(centre.columns) == [
        "arch", "layer", "column", "units", "row", "global", "channel", "difference"
    ]  # fmt: skip
    assert len(centre) == len(table)
    np.testing.assert_allclose(centre["difference"], centre["channel"] - centre["global"])
    both = table.merge(centre, on=["column", "units", "row"])  # global = Table 2 as printed
    np.testing.assert_allclose(both["global"], both["value"], rtol=1e-6)
    normalised = centre[centre["units"] == "normalised"]
    assert (normalised["channel"] <= normalised["global"] + 1e-9).all()  # total variance
    verdicts = read_csv(out / "table2_centre_verdicts.csv")
    assert list(verdicts.columns) == ["id", "claim", "global", "channel", "flips"]
    assert set(verdicts["id"]) == set(claims)
    assert verdicts.set_index("id")["global"].to_dict() == {
        k: c["status"] for k, c in claims.items()
    }
