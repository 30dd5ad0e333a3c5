"""The Sec. 4.1 diagnosis notebook runs under the smoke profile and writes its tables."""

import numpy as np
import pytest
from conftest import read_claims, read_csv

from kc.studies.paper import SEC41_ROWS


@pytest.mark.notebooks
def test_sec41_notebook(smoke_tree):
    out = smoke_tree.output("sec41_diagnosis")
    table = read_csv(out / "sec41.csv")
    assert list(table.columns) == ["setting", "row", "column", "value", "se", "unit", "n_pairs"]
    assert len(table) == 9 and set(table["n_pairs"]) == {2}  # smoke: SEEDS [0, 1], two pairs
    pairs = read_csv(out / "sec41_pairs.csv")
    assert sorted(set(pairs["seed"])) == [0, 1] and len(pairs) == 2 * 9
    assert set(SEC41_ROWS.values()) <= set(zip(table["setting"], table["row"], strict=True))
    assert np.isfinite(table["value"]).all()
    acc = table[table["unit"] == "top-1 %"]["value"]
    assert len(acc) == 5 and acc.between(0, 100).all()
    gains = table[table["unit"] == "points"]
    assert len(gains) == 2 and gains["value"].between(-100, 100).all()
    assert (gains["se"] >= 0).all()
    inst = table[table["unit"] == "ratio"]["value"]
    assert len(inst) == 2 and inst.between(0, 1.5).all()

    vs = read_csv(out / "sec41_vs_paper.csv")
    assert {"ours", "paper", "difference"} <= set(vs.columns)
    assert vs["paper"].notna().sum() == 5
    claims = read_claims(out, "sec41_diagnosis")
    main = ["sec41.roles", "sec41.blind_spots", "sec41.unreliable"]
    assert list(claims) == [*main, *(f"{c}.overfit" for c in main)]  # and the paper's regime
    assert all(c["status"] != "not testable" for c in claims.values())  # two pairs: a spread
    assert all("over 2 pairs" in c["evidence"] for c in claims.values())
    gaps = read_csv(out / "sec41_gaps.csv")
    assert sorted(gaps["regime"]) == ["current"] * 4 + ["overfit"] * 4  # 2 networks x 2 pairs
    assert len(read_csv(out / "sec41_overfit.csv")) == len(read_csv(out / "sec41.csv"))
    assert (out / "sec41_components.png").exists()
