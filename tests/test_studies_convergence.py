"""kc.studies.instability.convergence: g's step budgets against Table 1's fits; fast, synthetic features."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from conftest import notebook_params

import kc
import kc.core.fit
from kc.studies.instability import convergence as cv


def permutation_fit(n_fit: int = 96, seed: int = 0):
    """``fit(steps)`` on a planted pair: x* is an exact channel permutation of x."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n_fit + 64, 8, 8, 8, generator=gen)
    perm = torch.randperm(8, generator=gen)
    calls: list[int] = []

    def fit(steps: int) -> kc.ConsistencyResult:
        calls.append(steps)
        return kc.consistency(x[:n_fit], x[:n_fit, perm], test=(x[n_fit:], x[n_fit:, perm]),
                              max_steps=steps, min_steps=steps, progress=False)  # fmt: skip

    return fit, calls


def test_a_permuted_copy_converges_with_the_budget() -> None:
    fit, calls = permutation_fit()
    rows = cv.budget_rows(fit, [50, 800])
    assert calls == [50, 800]
    assert list(rows.columns) == [
        "steps", "instability", "train_loss", "holdout_loss", "best_step", "seconds", "from_cache",
    ]  # fmt: skip
    assert list(rows["steps"]) == [50, 800]
    # the plateau rule is off: each fit runs its whole budget (its last check is its best)
    assert list(rows["best_step"]) == [50, 800]
    first, last = rows["instability"]
    assert last < 0.02 < first
    assert rows["train_loss"].iloc[1] < rows["train_loss"].iloc[0]
    assert rows["holdout_loss"].isna().all()  # 96 images: too few for a held-out slice
    assert (rows["seconds"] > 0).all() and not rows["from_cache"].any()


def test_budget_fits_do_not_warn(recwarn) -> None:
    fit, _ = permutation_fit(n_fit=32)
    cv.budget_rows(fit, [20])
    assert not [w for w in recwarn if issubclass(w.category, kc.core.fit.ConvergenceWarning)]


@pytest.mark.parametrize(
    ("steps", "match"),
    [
        ([], "at least one step budget, got"),
        ([100, 100], r"strictly increasing, got \[100, 100\]"),
        ([300, 100], r"strictly increasing, got \[300, 100\]"),
        ([0, 100], r">= 1 \(optimiser steps\), got \[0, 100\]"),
        ([-5], r">= 1 \(optimiser steps\), got \[-5\]"),
        ([100, 2.5], r"integers, got \[100, 2.5\]"),
        ([True, 3], "integers"),
        (1000, "a list of step budgets, got 1000"),
        ("100", "a list of step budgets"),
    ],
)
def test_bad_budgets_are_refused_with_the_values(steps, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        cv.check_steps(steps)
    fit, calls = permutation_fit()
    with pytest.raises(ValueError, match=match):
        cv.budget_rows(fit, steps)
    assert calls == []  # refused before any fit


def test_study_reads_its_parameter() -> None:
    study = cv.ConvergenceStudy.from_params(notebook_params("table1_instability"))
    assert study.steps == cv.check_steps(
        notebook_params("table1_instability")["CONVERGENCE_BUDGETS"]
    )
    x, t = study.pair("vgg16")
    assert (x.seed, t.seed) == tuple(study.instability.case1_pairs()[0])
    with pytest.raises(ValueError, match="strictly increasing"):
        cv.ConvergenceStudy.from_params(
            notebook_params("table1_instability", CONVERGENCE_BUDGETS=[10, 5])
        )
    params = notebook_params("table1_instability")
    del params["CONVERGENCE_BUDGETS"]
    with pytest.raises(ValueError, match=r"lack \['CONVERGENCE_BUDGETS'\]"):
        cv.ConvergenceStudy.from_params(params)


def test_study_fits_pass_the_budget_as_both_step_limits(monkeypatch, fake_consistency) -> None:
    calls: list = []
    monkeypatch.setattr(cv.ex, "get_consistency", fake_consistency(calls))
    study = cv.ConvergenceStudy.from_params(notebook_params("table1_instability"))
    study.fit("alexnet", "conv4", 300)
    x, x_layer, t, t_layer, kwargs = calls[0]
    assert (x_layer, t_layer, x.seed, t.seed) == ("conv4", "conv4", 0, 1)
    assert kwargs["g_steps"] == 300 and kwargs["min_steps"] == 300
    table1 = study.instability.g.kwargs("alexnet")
    assert {k: kwargs[k] for k in ("order", "lam", "fit_limit", "test_limit", "g_lr")} == {
        k: table1[k] for k in ("order", "lam", "fit_limit", "test_limit", "g_lr")
    }


def _stops(values: dict[str, tuple[int, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"column": c, "steps": s, "instability": v, "stopped_by": "plateau"}
         for c, (s, v) in values.items()]
    )  # fmt: skip


def test_verdicts_compare_the_profile_fit_with_the_largest_budget() -> None:
    budgets = pd.DataFrame(
        {
            "column": ["a"] * 3 + ["b"] * 3 + ["c"] * 2,
            "steps": [100, 1000, 300] * 2 + [100, 1000],  # unsorted on purpose
            "instability": [0.5, 0.20, 0.25, 0.5, 0.10, 0.2, 0.3, 0.2],
        }
    )
    stops = _stops({"a": (400, 0.205), "b": (250, 0.18), "c": (1000, 0.2)})
    v = cv.convergence_verdicts(budgets, stops, tol=0.01).set_index("column")
    assert v.loc["a", "converged"] is True and v.loc["b", "converged"] is False
    assert v.loc["a", "largest_steps"] == 1000 and v.loc["b", "largest_instability"] == 0.10
    assert v.loc["b", "difference"] == pytest.approx(0.08)
    assert v.loc["a", "tail_change"] == pytest.approx(0.20 - 0.25)
    assert v.loc["a", "verdict"].startswith("converged: the profile's fit (400 steps, plateau)")
    assert "NOT converged" in v.loc["b", "verdict"] and "+0.080" in v.loc["b", "verdict"]
    # c: the largest budget is the profile's own length, the same fit: no verdict
    assert not v.loc["c", "testable"] and v.loc["c", "converged"] is None
    assert v.loc["c", "verdict"].startswith("cannot tell") and v.loc["a", "testable"]
    # a looser tolerance flips b; a longer reach makes a (400 steps vs 1000) untestable
    assert (
        cv.convergence_verdicts(budgets, stops, tol=0.1).set_index("column").loc["b", "converged"]
    )
    far = cv.convergence_verdicts(budgets, stops, reach=3.0).set_index("column")
    assert list(far["testable"]) == [False, True, False]
    with pytest.raises(ValueError, match="tol must be > 0 and reach >= 1, got 0 and 2.0"):
        cv.convergence_verdicts(budgets, stops, tol=0)
    with pytest.raises(ValueError, match="got 0.01 and 0.5"):
        cv.convergence_verdicts(budgets, stops, reach=0.5)
    with pytest.raises(ValueError, match="expected one profile fit for 'b', got 0"):
        cv.convergence_verdicts(budgets, stops[stops["column"] != "b"])


def test_convergence_frame_keeps_both_kinds_of_fit() -> None:
    budgets = pd.DataFrame([{c: 1 for c in cv.BUDGET_COLUMNS}] * 2)
    stops = pd.DataFrame([{c: 2 for c in cv.STOP_COLUMNS}])
    frame = cv.convergence_frame(budgets, stops)
    assert list(frame["fit"]) == ["budget", "budget", "profile"]
    assert list(frame.columns) == ["fit", *cv.BUDGET_COLUMNS, "max_steps", "converged",
                                   "stopped_by"]  # fmt: skip
    assert frame.loc[frame["fit"] == "budget", "max_steps"].isna().all()


def test_plot_convergence_one_line_and_one_star_per_layer() -> None:
    import matplotlib

    matplotlib.use("Agg")
    from kc.book import plotting

    budgets = pd.DataFrame(
        {"column": ["a", "a", "b", "b"], "steps": [100, 300] * 2, "instability": [0.4, 0.3] * 2}
    )
    stops = pd.DataFrame({"column": ["a", "b"], "steps": [250, 200], "instability": [0.31, 0.3]})
    history = pd.DataFrame(
        {"column": ["a"] * 3 + ["b"] * 2, "step": [0, 50, 100, 50, 100],
         "loss": [1.0, 0.5, 0.4, 0.6, 0.5]}
    )  # fmt: skip
    fig = plotting.plot_convergence(budgets, stops, history)
    curves, losses = fig.axes
    assert curves.get_xscale() == "log" and losses.get_yscale() == "log"
    lines = [line for line in curves.lines if len(line.get_xdata())]
    assert len(lines) == 4  # a curve and a star per layer
    star = next(line for line in lines if line.get_marker() == "*")
    assert list(star.get_xdata()) == [250]
    assert [len(line.get_xdata()) for line in losses.lines] == [2, 2]  # step 0 left out (log x)
