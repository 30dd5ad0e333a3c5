"""The Fig. 4 (right) notebook (born-again networks, Sec. 4.5) runs under the smoke profile."""

import json

import numpy as np
import pytest
from conftest import read_csv

from kc.run.runner import load_profile
from kc.studies.claims import STATUSES

NAME = "fig4_born_again"


@pytest.mark.notebooks
def test_fig4_born_again_notebook(smoke_tree):
    out = smoke_tree.output(NAME)
    smoke = load_profile("smoke")
    gens, seeds = smoke["GENERATIONS"], smoke["FIG4_SEEDS"]

    nets = read_csv(out / f"{NAME}_networks.csv")
    assert len(nets) == (gens + 1) * len(seeds) and nets["accuracy"].between(0, 100).all()
    assert sorted(set(nets["generation"])) == list(range(gens + 1))

    fits = read_csv(out / f"{NAME}_fits.csv")
    assert len(fits) == (gens + 1) * len(seeds)  # every earlier generation + the reference
    assert (fits["source"] == "independent").sum() == len(seeds)
    numeric = ["Var(xDelta)", "Var(xDelta) raw", "instability"]
    assert np.isfinite(fits[numeric].to_numpy()).all() and (fits["Var(xDelta)"] > 0).all()

    table = read_csv(out / f"{NAME}.csv")
    assert table["source"].tolist() == [f"generation {g}" for g in range(gens)] + ["independent"]
    assert np.isfinite(table.drop(columns=["generation"]).select_dtypes("number").to_numpy()).all()

    for stem in (NAME, f"{NAME}_blind_spots"):
        assert (out / f"{stem}.png").stat().st_size > 1000, stem
        assert not (out / f"{stem}.svg").exists()  # each figure kept once

    record = json.loads((out / "verdicts.json").read_text())
    assert record["notebook"] == NAME and record["profile"] == "smoke"
    assert record["parameters"]["GENERATIONS"] == gens
    claim, overfit = record["claims"]  # ours, and the paper's over-fitting regime's
    assert claim["id"] == "fig4_born_again.blind_spots_shrink" and claim["status"] in STATUSES
    assert overfit["id"] == "fig4_born_again.blind_spots_shrink.overfit"
    overfit_fits = read_csv(out / "fig4_born_again_overfit_fits.csv")
    assert len(overfit_fits) == len(fits) and overfit["status"] in STATUSES
    # computed from the fits: each lineage's least-squares slope recomputed from the CSV
    lineage = fits[fits["source"] != "independent"]
    for seed, rows in lineage.groupby("seed"):
        slope = np.polyfit(rows["generation"], rows["instability"], 1)[0]
        assert claim["numbers"][f"slope_seed{seed}"] == pytest.approx(slope, rel=1e-6)
    holds = claim["numbers"]["slope"] < 0 and claim["numbers"]["p"] < 0.05
    assert claim["status"] == ("reproduced" if holds else "not reproduced")
    vs = read_csv(out / f"{NAME}_vs_paper.csv")
    assert vs.loc[1, "ours"] == np.sign(claim["numbers"]["slope"])
    assert (out / f"{NAME}_timing.csv").exists()
