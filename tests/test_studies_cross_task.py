"""kc.studies.cross_task (Fig. 5, Sec. 4.6): the networks, the fits, the summary and claim."""

import math

import matplotlib
import pandas as pd
import pytest
from figure_fakes import FakeLab, smoke_params

from kc.book import plotting
from kc.studies import cross_task as ct

matplotlib.use("Agg")

# the mixture's test split is mostly garments (10000 vs ~800 digits): 128 images hold both
TEST_LIMIT = 128


def _fits(values: dict[int, tuple[float, float]]) -> pd.DataFrame:
    """Rows of runs_table from {seed: (A -> B, B -> A)} instabilities."""
    rows = [
        {"seed": s, "direction": d, "instability": v}
        for s, pair in values.items()
        for d, v in zip(ct.DIRECTIONS, pair, strict=True)
    ]
    return pd.DataFrame(rows)


def test_settings_validation():
    s = ct.Settings.from_params(smoke_params())
    assert s.datasets == ("fashion-mnist", "mnist-5k") and (s.arch, s.layer) == ("vgg16", "conv4_3")
    assert s.spec("A", 1).task == "all" and s.spec("B", 1).task == "binary"
    with pytest.raises(ValueError, match="MIX_DATASETS must name two"):
        ct.Settings.from_params(smoke_params(MIX_DATASETS=["fashion-mnist"]))
    with pytest.raises(ValueError, match="distinct seeds"):
        ct.Settings.from_params(smoke_params(SEEDS=[]))


def test_run_fits_both_directions_per_seed_on_the_fine_tasks_images(monkeypatch):
    fake = FakeLab().install(monkeypatch)
    result = ct.run(ct.Settings.from_params(smoke_params(TEST_LIMIT=TEST_LIMIT)), progress=False)
    assert [(n.task, n.seed) for n in fake.nets] == [
        ("all", 0), ("binary", 0), ("all", 1), ("binary", 1)
    ]  # fmt: skip
    assert [(x.spec.task, t.spec.task) for x, _, t, _, _ in fake.fits] == [
        ("all", "binary"), ("binary", "all")
    ] * 2  # fmt: skip
    assert all(kw["task"] == "all" and kw["lam"] == 0.1 for *_, kw in fake.fits)
    assert list(result.fits["direction"]) == list(ct.DIRECTIONS) * 2
    # images from both data sets of the mixture (labels 0-9 garments, 10-19 digits)
    assert min(result.shown.labels) < 10 <= max(result.shown.labels)
    assert set(plotting.cross_task_figures(result)) == set(ct.DIRECTIONS)


def test_summary_gives_mean_spread_and_the_difference():
    summary = ct.summary_table(_fits({0: (0.2, 0.5), 1: (0.4, 0.5)})).set_index("direction")
    assert summary.loc["A -> B", "mean"] == pytest.approx(0.3)
    assert summary.loc["A -> B", "std"] == pytest.approx(0.1)
    assert summary.loc["B -> A minus A -> B", "mean"] == pytest.approx(0.2)
    assert summary.loc["B -> A minus A -> B", "min"] == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("values", "status", "agree"),
    [
        ({0: (0.2, 0.5), 1: (0.4, 0.5), 2: (0.6, 0.5)}, "reproduced", 2),
        ({0: (0.6, 0.5), 1: (0.4, 0.45)}, "not reproduced", 1),
        ({0: (0.3, 0.4)}, "reproduced", 1),
    ],
)
def test_claim_is_computed_from_the_seeds(values, status, agree):
    (claim,) = ct.claims(_fits(values))
    assert claim.status == status and claim.numbers["seeds_agree"] == agree
    diff = sum(b - a for a, b in values.values()) / len(values)
    assert claim.numbers["difference"] == pytest.approx(diff)
    assert f"of {len(values)} seeds" in claim.evidence


def test_claim_not_testable_without_a_finite_pair():
    (claim,) = ct.claims(_fits({0: (math.nan, 0.5)}))
    assert claim.status == "not testable"
    (claim,) = ct.claims(_fits({0: (0.3, 0.5)}).query("direction == 'A -> B'"))
    assert claim.status == "not testable"


def test_instability_figure_one_bar_per_direction():
    fig = plotting.cross_task_instability(_fits({0: (0.2, 0.5), 1: (0.4, 0.5)}))
    assert len(fig.axes[0].patches) == 2
