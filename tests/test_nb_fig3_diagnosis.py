"""The Fig. 3 notebook (blind spots and unreliable components) under the smoke profile."""

import pytest
from figure_notebooks import computed_claims, figures_exist, finite_csv


@pytest.mark.notebooks
def test_fig3_diagnosis_notebook(smoke_tree):
    out = smoke_tree.output("fig3_diagnosis")
    shares = finite_csv(out / "fig3_diagnosis.csv")
    # smoke: SEEDS [0, 1], one pair of networks each
    assert len(shares) == 2 * 6 and set(shares["direction"]) == {"blind spots", "unreliable"}
    assert sorted(set(shares["seed"])) == [0, 1]
    for _, rows in shares.groupby(["seed", "direction"]):
        assert abs(rows["share"].iloc[1:].sum() - 1.0) < 1e-4
        assert rows["coherence"].between(-1, 1).all()
    nets = finite_csv(out / "fig3_diagnosis_networks.csv")
    assert set(nets["arch"]) == {"alexnet", "resnet34"} and set(nets["role"]) == {"weak", "strong"}
    for _, pair in nets.groupby("seed"):
        by_role = pair.set_index("role")["accuracy"]
        assert by_role["weak"] <= by_role["strong"]
    figures_exist(out, "fig3_diagnosis_blind_spots", "fig3_diagnosis_unreliable")
    claims = computed_claims(
        out,
        "fig3_diagnosis",
        ["fig3_diagnosis.unreliable_noisy", "fig3_diagnosis.noise_vs_blind_spots"],
    )
    coh = shares.groupby(["direction", "part"])["coherence"].mean()  # the pairs' mean gap
    gap = coh["unreliable", "reconstructable g(x)"] - coh["unreliable", "residual x^Delta"]
    assert claims[0]["numbers"]["gain"] == pytest.approx(gap, abs=1e-6)
    assert "over 2 pairs" in claims[0]["evidence"]
    if claims[0]["status"] == "reproduced":
        assert gap > claims[0]["numbers"]["se"]
