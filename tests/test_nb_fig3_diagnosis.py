"""The Fig. 3 notebook (blind spots and unreliable components) under the smoke profile."""

import pytest
from figure_notebooks import computed_claims, figures_exist, finite_csv


@pytest.mark.notebooks
def test_fig3_diagnosis_notebook(smoke_tree):
    out = smoke_tree.output("fig3_diagnosis")
    shares = finite_csv(out / "fig3_diagnosis.csv")
    assert len(shares) == 6 and set(shares["direction"]) == {"blind spots", "unreliable"}
    for _, rows in shares.groupby("direction"):
        assert abs(rows["share"].iloc[1:].sum() - 1.0) < 1e-4
        assert rows["coherence"].between(-1, 1).all()
    nets = finite_csv(out / "fig3_diagnosis_networks.csv")
    assert set(nets["arch"]) == {"alexnet", "resnet34"} and set(nets["role"]) == {"weak", "strong"}
    weak = nets.set_index("role").loc["weak", "accuracy"]
    assert weak <= nets.set_index("role").loc["strong", "accuracy"]
    figures_exist(out, "fig3_diagnosis_blind_spots", "fig3_diagnosis_unreliable")
    claims = computed_claims(
        out,
        "fig3_diagnosis",
        ["fig3_diagnosis.unreliable_noisy", "fig3_diagnosis.noise_vs_blind_spots"],
    )
    coh = shares.set_index(["direction", "part"])["coherence"]
    noisy = coh["unreliable", "residual x^Delta"] < coh["unreliable", "reconstructable g(x)"]
    assert (claims[0]["status"] == "reproduced") == bool(noisy)
