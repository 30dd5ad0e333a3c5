"""kc.studies.diagnosis.figure (Fig. 3) on planted fits: roles, directions, shares, claims."""

import matplotlib
import pytest
from figure_fakes import FakeLab, smoke_params

from kc.book import plotting
from kc.studies.diagnosis import figure as dfig
from kc.studies.paper import paper_table

matplotlib.use("Agg")

TEST_LIMIT = 40


def _run(monkeypatch, **lab):
    fake = FakeLab(**lab).install(monkeypatch)
    settings = dfig.Settings.from_params(smoke_params(TEST_LIMIT=TEST_LIMIT))
    return fake, dfig.run(settings, progress=False)


def _pairs(monkeypatch, seeds=(0, 1), **lab):
    fake = FakeLab(**lab).install(monkeypatch)
    settings = dfig.Settings.from_params(smoke_params(TEST_LIMIT=TEST_LIMIT, SEEDS=list(seeds)))
    return fake, dfig.run_pairs(settings, progress=False)


@pytest.mark.parametrize(
    ("accuracy", "weak"), [({"alexnet": 50.0, "resnet34": 70.0}, "alexnet"),
                           ({"alexnet": 80.0, "resnet34": 70.0}, "resnet34")],
)  # fmt: skip
def test_directions_follow_the_measured_roles(monkeypatch, accuracy, weak):
    fake, result = _run(monkeypatch, accuracy=accuracy)
    strong = ({"alexnet", "resnet34"} - {weak}).pop()
    (x1, _, t1, _, kw1), (x2, _, t2, _, kw2) = fake.fits
    assert (x1.spec.arch, t1.spec.arch) == (weak, strong)  # blind spots: weak -> strong
    assert (x2.spec.arch, t2.spec.arch) == (strong, weak)  # unreliable: strong -> weak
    assert kw1["lam"] == kw2["lam"] == 8.0 and kw1 == {**kw2, "lam": kw1["lam"]}
    assert set(result.networks.set_index("role").loc[:, "arch"].items()) == {
        ("weak", weak),
        ("strong", strong),
    }
    assert all(n.seed == 0 and n.task == "all" for n in fake.nets)


def test_tables_and_paper_networks(monkeypatch):
    _, result = _run(monkeypatch, accuracy={"alexnet": 50.0, "resnet34": 70.0})
    shares = dfig.shares_table(result)
    assert len(shares) == 6 and set(shares["direction"]) == set(dfig.DIRECTIONS)
    for _, rows in shares.groupby("direction"):
        assert rows["share"].iloc[1:].sum() == pytest.approx(1.0, abs=1e-5)
    nets = dfig.networks_table(result, paper_table("4.1")).set_index("role")
    assert nets.loc["weak", "paper_accuracy"] == 56.97
    assert nets.loc["strong", "paper_network"] == "ResNet-34"


@pytest.mark.parametrize(("smooth_delta", "status"), [(False, "reproduced"),
                                                      (True, "not reproduced")])  # fmt: skip
def test_noise_claim_follows_the_planted_residual(monkeypatch, smooth_delta, status):
    _, results = _pairs(monkeypatch, smooth_delta=smooth_delta)
    claim = next(c for c in dfig.claims(results) if c.id.endswith("unreliable_noisy"))
    assert claim.status == status and "over 2 pairs" in claim.evidence
    gap = claim.numbers["coherence_reconstructed_weak"] - claim.numbers["coherence_unreliable"]
    assert claim.numbers["noise_gap_unreliable"] == pytest.approx(gap)
    assert (gap > 0) == (status == "reproduced")


@pytest.mark.parametrize(("smooth", "status"), [((1,), "reproduced"), ((2,), "not reproduced")])
def test_contrast_with_the_blind_spots(monkeypatch, smooth, status):
    """Fit 1 is the blind-spot direction, fit 2 the unreliable one; smooth = structured x_Delta."""
    _, results = _pairs(monkeypatch, smooth_delta=smooth)
    claim = next(c for c in dfig.claims(results) if c.id.endswith("noise_vs_blind_spots"))
    assert claim.status == status


def test_claims_not_testable_without_neighbours(monkeypatch):
    _, results = _pairs(monkeypatch, size=1)
    claims = dfig.claims(results)
    assert {c.status for c in claims} == {"not testable"}
    assert all("1 x 1" in c.evidence for c in claims)


def test_one_pair_is_not_testable_no_spread_and_pairs_are_one_per_seed(monkeypatch):
    """One pair's noise gap, however clear, cannot be told from seed noise."""
    _, result = _run(monkeypatch)
    claims = dfig.claims(result)
    assert [c.shown_status for c in claims] == ["not testable: no spread"] * 2
    assert "one pair" in claims[0].evidence
    fake, results = _pairs(monkeypatch, seeds=(2, 0, 1))
    assert list(results) == [2, 0, 1]
    assert sorted({n.seed for n in fake.nets}) == [0, 1, 2]
    assert all(len(r.networks) == 2 for r in results.values())
    with pytest.raises(ValueError, match="at least one pair"):
        dfig.claims([])


def test_figures_one_per_direction(monkeypatch):
    _, result = _run(monkeypatch)
    figs = plotting.diagnosis_figures(result)
    assert set(figs) == set(dfig.DIRECTIONS)
    for fig in figs.values():
        overlays = [im for ax in fig.axes for im in ax.get_images()[1:]]
        size = smoke_params()["INPUT_SIZE"]
        assert len(overlays) == 3 * 4
        assert all(im.get_array().shape == (size, size) for im in overlays)
