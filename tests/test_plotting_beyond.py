"""kc.book.plotting.beyond on hand-made tables, and the package's re-exports."""

import inspect

import matplotlib
import numpy as np
import pandas as pd
import pytest

from kc.book import plotting
from kc.book.plotting import beyond, components, fig4, tables
from kc.core.similarity import PROPERTIES
from kc.studies import baselines as bl
from kc.studies.grounding import run as gr
from kc.studies.planted import run as ps

matplotlib.use("Agg")


def test_the_package_re_exports_every_public_figure_function():
    public = {
        name
        for module in (tables, components, fig4, beyond)
        for name, obj in vars(module).items()
        if inspect.isfunction(obj) and obj.__module__ == module.__name__ and name[0] != "_"
    }
    assert set(plotting.__all__) == public
    for module in (tables, components, fig4, beyond):
        assert set(module.__all__) <= public


def _baselines_table(n: int = 5) -> pd.DataFrame:
    """Rows of the baselines table: every measure rises with the row index, Procrustes (a
    distance) falls, so all of them agree once oriented."""
    gen = np.random.default_rng(0)
    up = np.arange(n) / n + gen.uniform(0, 0.01, n)
    rows = {m: (1 - up if m == "procrustes" else up) for m in PROPERTIES}
    return pd.DataFrame({"arch": "alexnet", "layer": "conv5", "setting": bl.CASE1,
                         **rows, "kc_consistency": up})  # fmt: skip


def test_plot_baselines_draws_both_heatmaps():
    table = _baselines_table()
    corr = bl.agreement(table)
    assert corr.loc["procrustes", "linear_cka"] == pytest.approx(1.0)  # oriented before ranking
    fig = plotting.plot_baselines(table, corr)
    assert len(fig.axes) == 4  # two heatmaps, two colour bars
    assert len(fig.axes[0].get_yticklabels()) == len(table)


def test_plot_planted_case_one_bar_per_measure_and_plant():
    rows = []
    for kind, value in (("nonlinear", 0.5), ("linear", 1.0), ("unrelated", 0.0)):
        rows.append({"kind": kind, **dict.fromkeys(PROPERTIES, value), "procrustes": 1 - value,
                     "kc_consistency": value, "share_higher": value / 2})  # fmt: skip
    fig = plotting.plot_planted_case(pd.DataFrame(rows))
    heights = [p.get_height() for p in fig.axes[0].patches if p.get_width() > 0]
    assert len(heights) == 2 * (len(PROPERTIES) + 2)
    assert max(heights) == pytest.approx(1.0)  # the linear plant scores as identical features do


def test_plot_grounding_one_panel_per_score_with_values():
    table = pd.DataFrame({"measure": ["linear_cka", "kc_consistency"],
                          **{s: [0.2, 0.4] for s in gr.SCORES}})  # fmt: skip
    table["aug_auprc"] = np.nan  # a score no measure has is left out
    fig = plotting.plot_grounding(table)
    assert len(fig.axes) == len(gr.SCORES) - 1


def test_planted_figures_draw_hand_made_runs():
    rows = []
    for depth in (0, 2):
        for varied, noise in (("base", ps.BASE_NOISE), ("noise", 0.0), ("noise", 0.5)):
            planted = {"planted_linear": 0.5, "planted_nonlinear": 0.5 - noise,
                       "planted_noise": noise}  # fmt: skip
            got = {"share_x0": 0.5, "share_higher": 0.5 - noise, "instability": noise}
            rows.append({"depth": depth, "varied": varied, "noise": noise, **planted, **got,
                         "linear_cka": 1 - noise})  # fmt: skip
    table = pd.DataFrame(rows)
    assert len(plotting.plot_recovery(table).axes) == 3
    fig = plotting.plot_planted_baselines(ps.baseline_response(table))
    assert len(fig.axes) == 3  # point plot, heatmap of the noise drop and its colour bar
