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


def _synthetic(gap_unreliable, gap_blind, weak="alexnet"):
    """One pair's result with chosen noise gaps: coherence of g(x) 0.5, of x^Delta 0.5 - gap."""
    import pandas as pd

    from kc.studies.components import DIRECTION_PARTS

    def table(gap):
        return pd.DataFrame({"part": list(DIRECTION_PARTS), "var_ratio": [1.0, 0.6, 0.4],
                             "share": [1.0, 0.6, 0.4], "coherence": [0.6, 0.5, 0.5 - gap]})  # fmt: skip

    strong = "resnet34" if weak == "alexnet" else "alexnet"
    layer = {"alexnet": "conv5", "resnet34": "last14"}
    networks = pd.DataFrame([{"role": r, "arch": a, "layer": layer[a]}
                             for r, a in (("weak", weak), ("strong", strong))])  # fmt: skip
    return dfig.DiagnosisFigureResult(
        settings=None, networks=networks, maps={}, shown=None, instability={},
        tables={"unreliable": table(gap_unreliable), "blind spots": table(gap_blind)},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("gaps", "status"),
    [([(0.30, 0.05), (0.25, 0.00), (0.35, 0.10)], "reproduced"),  # clearly above the SE
     ([(0.30, 0.40), (-0.35, 0.20), (0.02, -0.10)], "not reproduced")],  # both signs
)  # fmt: skip
def test_claims_over_synthetic_pairs(gaps, status):
    results = {seed: _synthetic(u, b) for seed, (u, b) in enumerate(gaps)}
    claims = dfig.claims(results)
    assert [c.status for c in claims] == [status, status]
    assert all("over 3 pairs" in c.evidence for c in claims)
    noisy = claims[0].numbers
    mean_gap = sum(u for u, _ in gaps) / 3
    assert noisy["gain"] == pytest.approx(mean_gap) and noisy["n_pairs"] == 3
    assert "roles differ" not in claims[0].evidence
    one = dfig.claims({0: _synthetic(0.3, 0.0)})  # one pair, however clear
    assert [c.shown_status for c in one] == ["not testable: no spread"] * 2
    assert all(c.evidence.startswith("no spread: ") for c in one)


def test_claims_say_when_the_roles_differ_between_pairs():
    results = {0: _synthetic(0.3, 0.0), 4: _synthetic(0.2, 0.1, weak="resnet34")}
    claims = dfig.claims(results)
    expected = "the roles differ between pairs, weak network per pair (seed): 0: alexnet conv5, "
    assert all(expected + "4: resnet34 last14" in c.evidence for c in claims)
    assert "(alexnet conv5 / resnet34 last14)" in claims[0].claim
