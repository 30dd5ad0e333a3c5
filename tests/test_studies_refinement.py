"""kc.studies.refinement.run, refinement_tables and finetune (Sec. 4.3, Tables 3-4): fast, on tiny
random features."""

from __future__ import annotations

import math

import matplotlib
import pandas as pd
import pytest
import torch
from conftest import notebook_params
from torch import nn

import kc
from kc.book import plotting
from kc.core.normalize import fit_normalizer
from kc.engine import finetune as ft
from kc.studies.paper import REFINEMENT_COLUMNS, paper_table
from kc.studies.refinement import run as rf
from kc.studies.refinement import tables as rt
from kc.studies.regime import Regime, tag_claims

matplotlib.use("Agg")


def _perfect_g(x_a: torch.Tensor, x_b: torch.Tensor, order: int, mode: str) -> kc.ConsistencyNet:
    """A g that reconstructs x_b exactly when x_b is an affine copy of x_a (same normalisation).

    W(0) is the identity (1x1), the higher branches are closed (W(k) = 0 for k >= 1).
    """
    channels = x_a.shape[1]
    g = kc.ConsistencyNet(channels, channels, order=order, kernel_size=1)
    with torch.no_grad():
        for k, w in enumerate(g.weights):
            w.weight.zero_()
            if k == 0:
                w.weight[:, :, 0, 0] = torch.eye(channels)
    nx, ns = fit_normalizer(x_a, mode), fit_normalizer(x_b, mode)
    g.x_mean, g.x_std, g.x_star_mean, g.x_star_std = nx.mean, nx.std, ns.mean, ns.std
    return g.eval()


@pytest.mark.parametrize("mode", ["global", "channel"])
@pytest.mark.parametrize("order", [0, 2])
def test_refined_features_restore_x_b_when_g_is_perfect(mode: str, order: int) -> None:
    gen = torch.Generator().manual_seed(0)
    x_a = torch.randn(40, 3, 4, 4, generator=gen, dtype=torch.float64).float()
    scale = torch.tensor([2.0, 0.5, 3.0]).view(1, 3, 1, 1) if mode == "channel" else 2.5
    x_b = x_a * scale + 1.5  # normalised x_b equals normalised x_a
    g = _perfect_g(x_a, x_b, order, mode)
    refined = rf.refined_features(g, x_a, batch_size=16)
    assert list(refined) == rf.component_rows(order)
    for name, feature in refined.items():
        torch.testing.assert_close(feature, x_b, atol=1e-4, rtol=1e-4, msg=name)


def test_to_raw_inverts_the_target_normaliser_of_a_fitted_g() -> None:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(64, 4, 3, 3, generator=gen)
    x_star = 3.0 * x[:, [1, 0, 3, 2]] - 2.0 + 0.1 * torch.randn(64, 4, 3, 3, generator=gen)
    res = kc.consistency(x, x_star, order=1, max_steps=100, progress=False)
    torch.testing.assert_close(rf.to_raw(res.target, res.model), x_star, atol=1e-4, rtol=1e-4)
    refined = rf.refined_features(res.model, x)
    torch.testing.assert_close(
        refined["x0+x1"], rf.to_raw(res.consistent, res.model), atol=1e-4, rtol=1e-4
    )
    torch.testing.assert_close(
        refined["x0"], rf.to_raw(res.components["x0"], res.model), atol=1e-4, rtol=1e-4
    )


def test_to_raw_without_a_target_normaliser_is_the_identity() -> None:
    g = kc.ConsistencyNet(2, 2, order=1)
    z = torch.randn(3, 2, 2, 2)
    assert rf.to_raw(z, g) is z


def test_refined_features_rejects_bad_input() -> None:
    g = kc.ConsistencyNet(3, 2, order=1)
    with pytest.raises(ValueError, match="3 input channels, got x with 5"):
        rf.refined_features(g, torch.randn(2, 5, 4, 4))
    with pytest.raises(ValueError, match=r"got \(2, 3, 4\)"):
        rf.refined_features(g, torch.randn(2, 3, 4))


def _head(seed: int, classes: int = 3) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(1), nn.Linear(8, classes))


def test_compare_rows_gives_every_row_the_same_budget() -> None:
    gen = torch.Generator().manual_seed(2)
    train_x, test_x = (
        torch.randn(50, 2, 2, 2, generator=gen),
        torch.randn(20, 2, 2, 2, generator=gen),
    )
    train_y, test_y = (
        torch.randint(0, 3, (50,), generator=gen),
        torch.randint(0, 3, (20,), generator=gen),
    )
    budget = ft.Budget(epochs=2, lr=1e-2, batch_size=16, seed=3)
    candidates = {
        "Network A": (_head(0), train_x, test_x),
        "twin of A": (_head(0), train_x, test_x),  # same head, same features
        "other": (_head(1), 2 * train_x, 2 * test_x),
    }
    frame = ft.compare_rows(candidates, train_y, test_y, budget)
    assert frame["row"].tolist() == list(candidates)
    assert set(frame.columns) >= {"accuracy", "accuracy_before", "epochs", "n_train", "n_test"}
    assert frame["epochs"].eq(2).all() and frame["n_train"].eq(50).all()
    assert frame["n_test"].eq(20).all()
    assert frame["accuracy"].between(0, 100).all()
    # identical inputs and budget give identical results: nothing differs but the features
    assert frame.loc[0, "accuracy"] == frame.loc[1, "accuracy"]
    assert frame.loc[0, "train_accuracy"] == frame.loc[1, "train_accuracy"]


def test_compare_rows_rejects_mismatched_labels() -> None:
    x = torch.randn(10, 8)
    with pytest.raises(ValueError, match="train 10 vs 9"):
        ft.compare_rows(
            {"r": (_head(0), x, x)},
            torch.zeros(9).long(),
            torch.zeros(10).long(),
            ft.Budget(epochs=1, lr=0.1),
        )
    with pytest.raises(ValueError, match="at least one candidate"):
        ft.compare_rows({}, torch.zeros(1), torch.zeros(1), ft.Budget(epochs=1, lr=0.1))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"epochs": -1, "lr": 0.1}, "epochs must be an int >= 0, got -1"),
        ({"epochs": 1, "lr": 0.0}, "lr must be > 0, got 0.0"),
        ({"epochs": 1, "lr": 0.1, "batch_size": 0}, "batch_size must be >= 1, got 0"),
        ({"epochs": 1, "lr": 0.1, "optimizer": "rmsprop"}, "optimizer must be one of"),
    ],
)
def test_budget_validates(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ft.Budget(**kwargs)


def test_names_and_pairs() -> None:
    assert rf.component_rows(0) == ["x0"]
    assert rf.component_rows(2) == ["x0", "x0+x1", "x0+x1+x2"]
    assert rf.seed_pairs([0, 1, 2]) == [(0, 1), (1, 2), (2, 0)]  # a cycle: n seeds, n pairs
    assert rf.seed_pairs([4, 2]) == [(4, 2)]
    assert rf.seed_pairs([0, 5, 7], limit=1) == [(0, 5)]
    with pytest.raises(ValueError, match="at least two distinct seeds, got \\[3\\]"):
        rf.seed_pairs([3])
    with pytest.raises(ValueError, match="order must be an int >= 0, got -1"):
        rf.component_rows(-1)
    # every column of the paper's Tables 3 and 4 has an (arch, layer)
    for t in (3, 4):
        assert set(paper_table(t)["column"]) <= set(REFINEMENT_COLUMNS.values())


def _runs() -> pd.DataFrame:
    """Two cells, two pairs; in cell "c1" x0 gains +2 and +4, in "c2" it loses."""
    rows = []
    for column, accs in {
        "c1": {"0-1": (50, 52, 54), "1-2": (51, 50, 55)},
        "c2": {"0-1": (60, 61, 59), "1-2": (60, 61, 60)},
    }.items():
        for pair, (a, b, x0) in accs.items():
            for row, acc in zip(("Network A", "Network B", "x0"), (a, b, x0), strict=True):
                rows.append({"column": column, "pair": pair, "row": row, "accuracy": float(acc)})
    return pd.DataFrame(rows)


def test_summarize_and_gains() -> None:
    runs = _runs()
    summary = rt.summarize(runs, ["column"])
    assert summary.shape == (6, 7)
    c1 = summary.set_index(["column", "row"]).loc["c1"]
    assert c1.loc["x0", "accuracy"] == 54.5
    assert c1.loc["x0", "spread"] == pytest.approx(math.sqrt(0.5))
    assert c1.loc["Network B", "n_pairs"] == 2

    gain = rt.gains(runs, ["column"]).set_index("column")
    assert gain.loc["c1", "gain"] == pytest.approx(3.0)  # (54 - 52 + 55 - 51) / 2
    assert gain.loc["c1", "best_baseline"] == pytest.approx(51.5)
    assert gain.loc["c1", "spread"] == pytest.approx(math.sqrt(2.0))  # B: 52, 50
    assert bool(gain.loc["c1", "exceeds_spread"]) and gain.loc["c1", "pairs_improved"] == 2
    assert gain.loc["c1", "gain_se"] == pytest.approx(1.0)  # std(2, 4) / sqrt(2)
    assert gain.loc["c2", "gain"] == pytest.approx(-1.5)
    assert not gain.loc["c2", "exceeds_spread"] and gain.loc["c2", "pairs_improved"] == 0

    one_pair = rt.gains(runs[runs["pair"] == "0-1"], ["column"])
    assert one_pair["spread"].isna().all() and not one_pair["exceeds_spread"].any()
    with pytest.raises(ValueError, match="lacks columns \\['setting'\\]"):
        rt.summarize(runs, ["setting", "column"])


def test_claims_on_the_papers_own_table_3() -> None:
    paper = rt.paper_as_runs(paper_table(3))
    paper_gains = rt.gains(paper, ["column"])
    # VGG-16 conv5-2 has no baselines in the paper, so no gain there
    assert "VGG-16 conv5-2" not in set(paper_gains["column"])
    claims = rt.refinement_claims(
        paper_gains, paper_gains, keys=["column"], row="x0+x1+x2", table=3
    )
    assert len(claims) == 4 + 1  # four columns, all cells
    # one "pair" (the paper's table) cannot tell a gain from seed noise: no verdict, not failed
    assert [c.shown_status for c in claims] == ["not testable: no spread"] * 5
    assert claims[1].id == "table3.ResNet-18.gain" and "gain +3.23" in claims[1].evidence
    assert claims[1].paper == "gain +3.23"
    assert claims[-1].id == "table3.every_cell" and "4/4 cells on one pair" in claims[-1].evidence


def test_claims_fail_where_the_refined_row_loses() -> None:
    paper_gains = rt.gains(rt.paper_as_runs(paper_table(3)), ["column"])
    worse = rt.gains(_runs(), ["column"])
    claims = {c.id: c for c in rt.refinement_claims(worse, paper_gains, keys=["column"], row="x0",
                                                     table=3)}  # fmt: skip
    assert claims["table3.c1.gain"].status == "reproduced"
    assert claims["table3.c2.gain"].status == "not reproduced"
    assert claims["table3.every_cell"].status == "not reproduced"
    assert claims["table3.every_cell"].evidence.startswith("1/2 cells with a mean gain above")
    assert "gain +3.00 ± 1.00 points" in claims["table3.c1.gain"].evidence


def test_a_positive_mean_gain_within_its_standard_error_is_not_reproduced() -> None:
    # three pairs with x0 gaining +1.0, -0.5, +0.2: mean +0.23, standard error 0.44
    rows = []
    for pair, (a, b, x0) in {"0-1": (50, 49, 51.0), "1-2": (50, 48, 49.5), "2-0": (50, 50, 50.2)}.items():
        for row, acc in zip(("Network A", "Network B", "x0"), (a, b, x0), strict=True):
            rows.append({"column": "c", "pair": pair, "row": row, "accuracy": float(acc)})
    gain = rt.gains(pd.DataFrame(rows), ["column"])
    paper_gains = rt.gains(rt.paper_as_runs(paper_table(3)), ["column"])
    claims = {c.id: c for c in tag_claims(rt.refinement_claims(
        gain, paper_gains, keys=["column"], row="x0", table=3), Regime(per_class=30, epochs=50))}
    cell = claims["table3.c.gain.overfit"]
    assert cell.numbers["gain"] == pytest.approx(0.7 / 3) and cell.numbers["se"] == pytest.approx(
        math.sqrt(((1 - 0.7 / 3) ** 2 + (0.5 + 0.7 / 3) ** 2 + (0.2 - 0.7 / 3) ** 2) / 2 / 3))
    assert cell.status == "not reproduced" and "improved in 2/3 pairs" in cell.evidence
    assert cell.claim.endswith("[overfit regime]")
    assert claims["table3.every_cell.overfit"].status == "not reproduced"


def test_study_from_the_notebooks_parameters() -> None:
    t3 = rf.RefinementStudy.from_params(
        notebook_params("table3_refinement", SEEDS=[0, 1, 2], PAIRS=None), 3)
    assert t3.keys == ["column"] and t3.pairs == ((0, 1), (1, 2), (2, 0))
    assert {c.setting for c in t3.cells} == set(paper_table(3)["setting"])
    assert {(c.datasets, c.task) for c in t3.cells} == {(("fashion-mnist",), "all")}
    assert (t3.budget.epochs, t3.budget.batch_size) == (1, 64)
    t4 = rf.RefinementStudy.from_params(notebook_params("table4_redundant"), 4)
    assert t4.keys == ["setting", "column"] and t4.pairs == ((0, 1),)
    assert {(c.setting, c.task) for c in t4.cells} == {
        ("VOC-animal", "subset:garments"), ("Mix-CUB", "mix:0"), ("Mix-Dogs", "mix:1"),
    }  # fmt: skip
    assert set(paper_table(4)["setting"]) == {c.setting for c in t4.cells}
    with pytest.raises(ValueError, match="table must be 3 or 4, got 5"):
        rf.RefinementStudy.from_params(notebook_params("table4_redundant"), 5)


def test_vs_paper_joins_on_row_and_column() -> None:
    paper = paper_table(4)
    ours = rt.summarize(rt.paper_as_runs(paper), ["setting", "column"])
    table = rt.vs_paper(ours, paper, ["setting", "column"])
    assert len(table) == len(paper) == 36
    assert table["difference"].abs().max() == 0.0
    assert list(table.columns) == [
        "setting",
        "column",
        "row",
        "ours",
        "spread",
        "n_pairs",
        "paper",
        "difference",
    ]
    one = _runs()[lambda f: f["column"] == "c1"].assign(column="ResNet-18")
    t3 = rt.vs_paper(rt.summarize(one, ["column"]), paper_table(3), ["column"])
    assert len(t3) == len(paper_table(3))  # an outer join keeps the paper's other cells
    assert t3["ours"].notna().sum() == 3 and t3["paper"].notna().all()
    assert t3["column"].iloc[0] == "ResNet-18"  # our cells first, then the paper's in its order
    assert t3["row"].head(3).tolist() == ["Network A", "Network B", "x0"]
    assert list(dict.fromkeys(t3["column"]))[1:] == [
        "VGG-16 conv4-3",
        "ResNet-34",
        "ResNet-50",
        "VGG-16 conv5-2",
    ]
    text = rt.pivot_text(t3, ["column"])
    assert text.shape == (5, 5)
    assert text.loc["x0", "ResNet-18"] == "54.50 ± 0.71 (38.16)"
    assert text.loc["Network A", "VGG-16 conv5-2"] == "-"


def test_timings_and_plot() -> None:
    runs = _runs().assign(net_a_seconds=1.0, net_b_seconds=2.0, g_seconds=3.0, ft_seconds=0.5)
    t = rt.timings(runs, ["column"])
    assert t.shape == (4, 7) and t["ft_seconds"].eq(1.5).all() and t["rows"].eq(3).all()
    fig = plotting.plot_refinement(rt.summarize(runs, ["column"]), ["column"], "test")
    assert len(fig.axes[0].patches) == 6
    matplotlib.pyplot.close(fig)


def test_table_runs_needs_cells_and_pairs() -> None:
    with pytest.raises(ValueError, match="at least one cell and one pair, got 0 and 1"):
        rf.table_runs([], [(0, 1)], net={}, g=None, budget=ft.Budget(epochs=1, lr=0.1))  # type: ignore[arg-type]


def test_regimes_put_both_sets_of_networks_side_by_side() -> None:
    main = rt.gains(_runs(), ["column"])  # c1 +3.0 (+2, +4), c2 -1.5
    fewer = _runs()
    fewer.loc[(fewer["column"] == "c2") & (fewer["row"] == "x0"), "accuracy"] += 4.0
    overfit = rt.gains(fewer, ["column"])  # c2: -1.5 + 4 = +2.5 (-1 + 4, -2 + 4: +3, +2)
    table = rt.regimes({"current": main, "overfit": overfit}, keys=["column"], row="x0")
    assert list(table.columns) == ["column", "regime", "gain", "gain_se", "best_baseline",
                                   "pairs_improved", "n_pairs", "holds"]  # fmt: skip
    wide = table.pivot_table(index="column", columns="regime", values="gain")
    assert wide.loc["c2", "overfit"] == pytest.approx(2.5)
    assert wide.loc["c2", "current"] == pytest.approx(-1.5)
    assert table["holds"].tolist() == [True, False, True, True]
    text = rt.regime_reading(table, ["column"])
    assert text.startswith("the gain holds beyond its standard error in 1/2 cells in the current "
                           "regime and in 2/2 in the overfit regime")  # fmt: skip
    assert "+2.00 points" in text and "more cells hold in the overfit regime" in text
    back = rt.regimes({"current": overfit, "overfit": main}, keys=["column"], row="x0")
    assert "fewer cells hold in the overfit regime" in rt.regime_reading(back, ["column"])
    # one pair per cell: nothing holds, whatever the gain
    one = rt.gains(_runs()[_runs()["pair"] == "0-1"], ["column"])
    assert not rt.regimes({"a": one, "b": one}, keys=["column"], row="x0")["holds"].any()


def test_regimes_reject_mismatched_inputs() -> None:
    main = rt.gains(_runs(), ["column"])
    with pytest.raises(ValueError, match="no row 'x9' in the gains of regime 'a'"):
        rt.regimes({"a": main, "b": main}, keys=["column"], row="x9")
    with pytest.raises(ValueError, match="do not cover the same cells"):
        rt.regimes({"a": main, "b": main[main["column"] == "c1"]}, keys=["column"], row="x0")
    with pytest.raises(ValueError, match="two or more regimes"):
        rt.regimes({"a": main}, keys=["column"], row="x0")


def test_study_in_the_overfitting_regime() -> None:
    t4 = rf.RefinementStudy.from_params(notebook_params("table4_redundant", FIT_LIMIT=128), 4)
    regime = Regime(per_class=30, epochs=50)
    over = t4.in_regime(regime)
    assert over.g.fit_limit is None and t4.g.fit_limit == 128  # g on the networks' own images
    assert over.net["train_per_class"] == 30 and over.net["train_limit"] is None
    assert over.net["epochs"] == 50 and over.net["width"] == t4.net["width"]
    assert (over.cells, over.pairs, over.budget) == (t4.cells, t4.pairs, t4.budget)
    nets = over.networks()
    assert len(nets) == len(set(nets)) and all(n.train_per_class == 30 for n in nets)
    # smoke: ResNet-18 on Fashion-MNIST (VOC-animal) and on the mixture (Mix-CUB, Mix-Dogs
    # share it), seeds 0 and 1
    assert sorted(n.label for n in nets) == [
        "resnet18/fashion-mnist+mnist-5k/all/seed0/pc30", "resnet18/fashion-mnist+mnist-5k/all/seed1/pc30",
        "resnet18/fashion-mnist/all/seed0/pc30", "resnet18/fashion-mnist/all/seed1/pc30"]  # fmt: skip
    with pytest.raises(ValueError, match="OVERFIT_EPOCHS must be an int >= 1"):
        Regime(per_class=30, epochs=0)
    assert Regime.from_params({"OVERFIT_PER_CLASS": None, "OVERFIT_EPOCHS": 5}) is None


def test_overfit_epochs_per_architecture() -> None:
    """AlexNet (no batch norm) needs more epochs than the others to fit its few images."""
    from kc.studies.instability import run as ins
    from kc.studies.regime import arch_fields

    regime = Regime(per_class=30, epochs={"alexnet": 150, "vgg16": 50, "resnet34": 50})
    t1 = ins.InstabilityStudy.from_params(notebook_params("table1_instability"))
    over = t1.in_regime(regime)
    epochs = {(s.arch, s.task): s.epochs for s in over.specs()}
    assert {e for (a, _), e in epochs.items() if a == "alexnet"} == {150}  # halves too
    assert {e for (a, _), e in epochs.items() if a != "alexnet"} == {50}
    assert all(s.epochs == t1.net["epochs"] for s in t1.specs())  # the current regime: unchanged
    assert "150 (alexnet), 50 (vgg16), 50 (resnet34) epochs" in regime.describe()
    with pytest.raises(ValueError, match="OVERFIT_EPOCHS gives no epochs for 'resnet18'"):
        arch_fields(regime.net(t1.net), "resnet18")
    with pytest.raises(ValueError, match=r"OVERFIT_EPOCHS\['vgg16'\] must be an int >= 1"):
        Regime(per_class=30, epochs={"vgg16": 0})
    with pytest.raises(ValueError, match="must name at least one architecture"):
        Regime(per_class=30, epochs={})
    assert arch_fields({"epochs": 7, "width": 1.0}, "alexnet") == {"epochs": 7, "width": 1.0}


def test_overfit_epochs_parameter_is_checked_per_architecture() -> None:
    from kc.run.params import check_values

    check_values({"OVERFIT_EPOCHS": {"alexnet": 180, "vgg16": 60}})
    with pytest.raises(ValueError, match=r"OVERFIT_EPOCHS\['vgg16'\] = 0: expected a positive"):
        check_values({"OVERFIT_EPOCHS": {"alexnet": 180, "vgg16": 0}})
    with pytest.raises(ValueError, match="OVERFIT_EPOCHS = 'alexnett': expected one of"):
        check_values({"OVERFIT_EPOCHS": {"alexnett": 180}})
