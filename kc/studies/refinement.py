"""Sec. 4.3: refining a feature with its consistent components (Tables 3 and 4, Appendix A).

Two networks A and B of the same architecture are trained for the same task; g (Eq. 1) is fitted
to reconstruct B's feature x_B from A's feature x_A *without labels*. The consistent components
x(0), x(1), ..., x(K) of g(x_A) (Eq. 3-4) are in g's normalised target units, so before B's
layers above the feature can read them they are mapped back to raw x_B units with g's stored
target normaliser (footnote 2 inverted): ``x_raw = z * x_star_std + x_star_mean``.

The fairness protocol of Appendix A, as implemented here:

* A, B and g are frozen; every row of a table fine-tunes only *layers above the feature* on
  *precomputed* feature tensors, with the same :class:`Budget` (epochs, learning rate, batch
  size, optimiser, seed), on the same training images, and is evaluated on the same test images;
* the baselines "Network A" / "Network B" fine-tune A's / B's own upper layers on their own raw
  features; the refined rows fine-tune B's upper layers on x(0), x(0)+x(1), ... of g(x_A);
* Table 4's target task has other classes than the networks' training task: every row then gets
  a new, randomly initialised last linear layer (:func:`kc.experiments.upper`).

The images: g is fitted on ``fit_limit`` training images of the target task (labels unused) and
the heads are fine-tuned on the same images with their labels; all rows are evaluated on the
``test_limit`` test images that :func:`kc.experiments.get_consistency` measures g on.

:func:`refinement_run` produces the per-pair rows; :func:`summarize`, :func:`gains`,
:func:`vs_paper` and :func:`refinement_verdicts` turn them into the notebooks' tables.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from kc.decompose import decompose
from kc.fit import prepare
from kc.model import ConsistencyNet
from kc.train import OPTIMIZERS, evaluate, resolve_device, train_head

__all__ = [
    "BASELINES",
    "PAPER_COLUMNS",
    "Budget",
    "Cell",
    "compare_rows",
    "component_rows",
    "gains",
    "paper_as_runs",
    "paper_column",
    "pivot_text",
    "plot_summary",
    "refined_features",
    "refinement_run",
    "refinement_verdicts",
    "seed_pairs",
    "summarize",
    "table_runs",
    "timings",
    "to_raw",
    "vs_paper",
]

#: Rows of the baselines, as the paper's tables name them.
BASELINES = ("Network A", "Network B")

#: (arch, layer) -> the column name of Tables 3 and 4.
PAPER_COLUMNS: dict[tuple[str, str], str] = {
    ("vgg16", "conv4_3"): "VGG-16 conv4-3",
    ("vgg16", "conv5_2"): "VGG-16 conv5-2",
    ("vgg16", "conv5_3"): "VGG-16 conv5-3",
    ("resnet18", "last14"): "ResNet-18",
    ("resnet34", "last14"): "ResNet-34",
    ("resnet50", "last14"): "ResNet-50",
}


# ---------------------------------------------------------------------------- naming


def paper_column(arch: str, layer: str) -> str:
    """The column of Tables 3-4 for a network's feature, e.g. ``"VGG-16 conv4-3"``.

    Example:
        >>> paper_column("resnet18", "last14")
        'ResNet-18'
    """
    if (arch, layer) not in PAPER_COLUMNS:
        raise ValueError(
            f"no Table 3/4 column for ({arch!r}, {layer!r}); known: {sorted(PAPER_COLUMNS)}"
        )
    return PAPER_COLUMNS[arch, layer]


def component_rows(order: int) -> list[str]:
    """Row names of the refined features: ``["x0", "x0+x1", ..., "x0+...+xK"]``.

    Example:
        >>> component_rows(2)
        ['x0', 'x0+x1', 'x0+x1+x2']
    """
    if isinstance(order, bool) or not isinstance(order, int) or order < 0:
        raise ValueError(f"order must be an int >= 0, got {order!r}")
    return ["+".join(f"x{j}" for j in range(k + 1)) for k in range(order + 1)]


def seed_pairs(seeds: Sequence[int], limit: int | None = None) -> list[tuple[int, int]]:
    """Consecutive pairs (A, B) = (seeds[i], seeds[i + 1]), at most ``limit`` of them.

    Example:
        >>> seed_pairs([0, 1, 2])
        [(0, 1), (1, 2)]
    """
    seeds = [int(s) for s in seeds]
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise ValueError(f"need at least two distinct seeds, got {seeds}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be None or an int >= 1, got {limit!r}")
    pairs = list(zip(seeds[:-1], seeds[1:], strict=True))
    return pairs if limit is None else pairs[:limit]


# ---------------------------------------------------------------------------- features


def to_raw(z: Tensor, g: ConsistencyNet) -> Tensor:
    """Map a tensor in g's normalised target units back to raw x* units (footnote 2 inverted).

    Args:
        z: (N, C*, H, W) or (N, C*), e.g. a consistent component of Eq. 4.
        g: the fitted g whose ``x_star_mean`` / ``x_star_std`` normalised the target.

    Returns:
        ``z * x_star_std + x_star_mean``, same shape; ``z`` itself if g normalised no target.
    """
    stats = g.normalizer("x_star")
    return z if stats is None else stats.inverse(z)


@torch.no_grad()
def refined_features(g: ConsistencyNet, x: Tensor, *, batch_size: int = 512) -> dict[str, Tensor]:
    """The cumulative consistent components of g(x) in raw target units (Eq. 3-4).

    Args:
        g: a fitted consistency network of order K, from x_A's feature to x_B's.
        x: raw input features x_A, (N, C, H, W) or (N, C), with x_B's spatial size.
        batch_size: images per decomposition (memory only).

    Returns:
        ``{"x0": ..., "x0+x1": ..., "x0+...+xK": ...}`` (see :func:`component_rows`), each
        (N, C*, H, W) or (N, C*) on the CPU in raw x_B units; the last one is g(x_A).
    """
    if x.dim() not in (2, 4) or x.shape[0] == 0:
        raise ValueError(
            f"expected x of shape (N, C) or (N, C, H, W) with N >= 1, got {tuple(x.shape)}"
        )
    if x.shape[1] != g.config["in_channels"]:
        raise ValueError(
            f"g expects {g.config['in_channels']} input channels, got x with {x.shape[1]}"
        )
    g.eval()
    out: Tensor | None = None  # (K + 1, N, C*, ...), filled batch by batch to bound memory
    for i in range(0, x.shape[0], batch_size):
        xn, _ = prepare(g, x[i : i + batch_size])
        sums = to_raw(decompose(g, xn).cumsum(0), g).cpu()
        if out is None:
            out = torch.empty((sums.shape[0], x.shape[0], *sums.shape[2:]), dtype=sums.dtype)
        out[:, i : i + batch_size] = sums
    return {name: out[k] for k, name in enumerate(component_rows(g.order))}


# ---------------------------------------------------------------------------- fine-tuning


@dataclass(frozen=True)
class Budget:
    """One fine-tuning budget, used unchanged for every row of a table (Appendix A).

    Attributes:
        epochs: passes over the training features (FT_EPOCHS).
        lr: peak learning rate, cosine-annealed (FT_LR).
        batch_size: features per step.
        optimizer: ``"adam"`` or ``"sgd"``.
        seed: shuffling and dropout seed.
    """

    epochs: int
    lr: float
    batch_size: int = 128
    optimizer: str = "adam"
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 0:
            raise ValueError(f"epochs must be an int >= 0, got {self.epochs!r}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")


def compare_rows(
    candidates: Mapping[str, tuple[nn.Module, Tensor, Tensor]],
    train_y: Tensor,
    test_y: Tensor,
    budget: Budget,
    *,
    device: str | torch.device = "cpu",
) -> pd.DataFrame:
    """Fine-tune each candidate head on its features with the same budget; report accuracies.

    Args:
        candidates: row name -> (head, train features (N, ...), test features (M, ...)); the
            head maps features to logits and is trained in place.
        train_y, test_y: labels (N,) and (M,), shared by all rows (same images for every row).
        budget: the one fine-tuning budget.
        device: where to train.

    Returns:
        One row per candidate, in order: ``row``, ``accuracy`` (top-1 % on the test features
        after fine-tuning), ``accuracy_before`` (before), ``train_accuracy`` (last epoch),
        ``epochs``, ``n_train``, ``n_test``, ``ft_seconds``.
    """
    if not candidates:
        raise ValueError("need at least one candidate row")
    dev = resolve_device(device)
    records = []
    for name, (head, train_x, test_x) in candidates.items():
        if train_x.shape[0] != train_y.shape[0] or test_x.shape[0] != test_y.shape[0]:
            raise ValueError(
                f"row {name!r}: features and labels differ in length: train {train_x.shape[0]} vs "
                f"{train_y.shape[0]}, test {test_x.shape[0]} vs {test_y.shape[0]}"
            )
        before = evaluate(head, torch.utils.data.TensorDataset(test_x, test_y.long()), device=dev)
        start = time.perf_counter()
        report = train_head(
            head,
            train_x,
            train_y,
            test_x=test_x,
            test_y=test_y,
            epochs=budget.epochs,
            lr=budget.lr,
            batch_size=budget.batch_size,
            optimizer=budget.optimizer,
            seed=budget.seed,
            device=dev,
            progress=False,
        )
        records.append(
            {
                "row": name,
                "accuracy": float(report.accuracy),
                "accuracy_before": before,
                "train_accuracy": report.train_accuracy,
                "epochs": report.epochs_run,
                "n_train": int(train_x.shape[0]),
                "n_test": int(test_x.shape[0]),
                "ft_seconds": time.perf_counter() - start,
            }
        )
    return pd.DataFrame.from_records(records)


def refinement_run(
    spec_a: Any,
    spec_b: Any,
    layer: str,
    *,
    task: str,
    budget: Budget,
    order: int,
    lam: float,
    fit_limit: int | None,
    test_limit: int | None,
    g_epochs: int,
    g_lr: float,
    g_batch_size: int,
    device: str = "auto",
    progress: bool = False,
) -> pd.DataFrame:
    """One pair (A, B), one feature, one target task: all rows of Table 3 or 4.

    Trains or loads A and B (:func:`kc.experiments.get_net`), fits or loads g from x_A to x_B
    on the target task's training images (:func:`kc.experiments.get_consistency`), then
    :func:`compare_rows` with the baselines "Network A", "Network B" and the refined rows
    ``x0``, ``x0+x1``, ... on B's upper layers. The target task's classes size the heads; when
    they differ from the networks' a new last linear layer is used (Table 4).

    Args:
        spec_a, spec_b: :class:`kc.experiments.NetSpec` of A and B (same arch and data sets).
        layer: the feature, e.g. ``"conv4_3"`` or ``"last14"``.
        task: the target task whose images fit g and fine-tune the heads (e.g. ``"all"``,
            ``"subset:garments"``, ``"mix:0"``).
        budget: the fine-tuning budget of every row.
        order, lam, fit_limit, test_limit, g_epochs, g_lr, g_batch_size: as in
            :func:`kc.experiments.get_consistency`.
        device, progress: as in :func:`kc.experiments.get_net`.

    Returns:
        :func:`compare_rows`' frame plus ``arch``, ``layer``, ``column``, ``task``, ``pair``
        (``"A-B"`` seeds), ``seed_a``, ``seed_b``, ``instability`` (of g on the test images),
        ``net_a_accuracy`` / ``net_b_accuracy`` (the networks' own test accuracy on their
        training task), and wall times ``net_a_seconds``, ``net_b_seconds``, ``g_seconds``
        (0-ish when cached; ``g_seconds`` includes extracting the features).
    """
    from kc import experiments as ex  # the engine, imported lazily like kc's other glue

    if spec_a.arch != spec_b.arch or spec_a.datasets != spec_b.datasets:
        raise ValueError(
            f"A and B must share arch and data sets, got {spec_a.arch}/{spec_a.datasets} and "
            f"{spec_b.arch}/{spec_b.datasets}"
        )
    times: dict[str, float] = {}
    nets = {}
    for name, spec in (("a", spec_a), ("b", spec_b)):
        start = time.perf_counter()
        nets[name] = ex.get_net(spec, device=device, progress=progress)
        times[f"net_{name}_seconds"] = time.perf_counter() - start
    start = time.perf_counter()
    result = ex.get_consistency(
        nets["a"], layer, nets["b"], layer,
        order=order, lam=lam, task=task, fit_limit=fit_limit, test_limit=test_limit,
        g_epochs=g_epochs, g_lr=g_lr, g_batch_size=g_batch_size, device=device, progress=progress,
    )  # fmt: skip
    times["g_seconds"] = time.perf_counter() - start
    feats = {
        (name, split): ex.get_features(
            trained, layer, split=split, task=task, limit=lim, device=device, progress=progress
        )
        for name, trained in nets.items()
        for split, lim in (("train", fit_limit), ("test", test_limit))
    }
    train_y, test_y = feats["a", "train"][1], feats["a", "test"][1]
    if not (
        torch.equal(train_y, feats["b", "train"][1]) and torch.equal(test_y, feats["b", "test"][1])
    ):
        raise ValueError("A's and B's features are not on the same images (labels differ)")
    num_classes = int(max(train_y.max(), test_y.max())) + 1
    refined = {
        split: refined_features(result.model, feats["a", split][0]) for split in ("train", "test")
    }

    def head(net: Any) -> nn.Module:
        # A new last layer (Table 4) is initialised from the global RNG: seed it, so that a run
        # does not depend on what the process did before, and B's rows all start alike.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(budget.seed)
            return ex.upper(net, layer, num_classes=num_classes)

    candidates: dict[str, tuple[nn.Module, Tensor, Tensor]] = {
        "Network A": (head(nets["a"]), feats["a", "train"][0], feats["a", "test"][0]),
        "Network B": (head(nets["b"]), feats["b", "train"][0], feats["b", "test"][0]),
    }
    for row in component_rows(order):
        candidates[row] = (head(nets["b"]), refined["train"][row], refined["test"][row])
    frame = compare_rows(candidates, train_y, test_y, budget, device=device)
    frame.insert(0, "arch", spec_a.arch)
    frame.insert(1, "layer", layer)
    frame.insert(2, "column", paper_column(spec_a.arch, layer))
    frame.insert(3, "task", task)
    frame.insert(4, "pair", f"{spec_a.seed}-{spec_b.seed}")
    frame.insert(5, "seed_a", spec_a.seed)
    frame.insert(6, "seed_b", spec_b.seed)
    frame["instability"] = float(result.instability)
    frame["net_a_accuracy"] = nets["a"].accuracy
    frame["net_b_accuracy"] = nets["b"].accuracy
    for name, seconds in times.items():
        frame[name] = seconds
    return frame


@dataclass(frozen=True)
class Cell:
    """One column of Table 3 or 4 for one target task.

    Attributes:
        setting: the paper's name of the task (``"removing unreliable features (CUB)"``,
            ``"VOC-animal"``, ``"Mix-CUB"``, ``"Mix-Dogs"``).
        arch, layer: the networks' architecture and the refined feature.
        datasets: the data sets the networks A and B are trained on (task ``"all"``).
        task: the target task (images that fit g and fine-tune the heads).
    """

    setting: str
    arch: str
    layer: str
    datasets: tuple[str, ...]
    task: str


def table_runs(
    cells: Sequence[Cell],
    pairs: Sequence[tuple[int, int]],
    *,
    net: Mapping[str, Any],
    g: Mapping[str, Any],
    budget: Budget,
    device: str = "auto",
    progress: bool = False,
) -> pd.DataFrame:
    """:func:`refinement_run` for every cell and seed pair, concatenated.

    Args:
        cells: the columns (and tasks) of the table.
        pairs: seed pairs (A, B), e.g. from :func:`seed_pairs`.
        net: the remaining :class:`kc.experiments.NetSpec` fields shared by all networks
            (``epochs``, ``width``, ``input_size``, ``train_limit``, ``optimizer``, ``lr``,
            ``batch_size``); the networks are trained on task ``"all"`` of ``cell.datasets``.
        g: ``order``, ``lam``, ``fit_limit``, ``test_limit``, ``g_epochs``, ``g_lr``,
            ``g_batch_size`` of :func:`refinement_run`.
        budget: the fine-tuning budget; its seed is replaced by each pair's seed of A.
        device, progress: as in :func:`kc.experiments.get_net`.

    Returns:
        The rows of all runs with a leading ``setting`` column.
    """
    from kc.experiments import NetSpec

    if not cells or not pairs:
        raise ValueError(f"need at least one cell and one pair, got {len(cells)} and {len(pairs)}")
    frames = []
    for cell in cells:
        for seed_a, seed_b in pairs:
            spec_a, spec_b = (
                NetSpec(cell.arch, datasets=cell.datasets, task="all", seed=s, **net)
                for s in (seed_a, seed_b)
            )
            frame = refinement_run(
                spec_a,
                spec_b,
                cell.layer,
                task=cell.task,
                budget=replace(budget, seed=seed_a),
                device=device,
                progress=progress,
                **g,
            )
            frame.insert(0, "setting", cell.setting)
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def timings(runs: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Wall seconds per cell and pair: training A and B, fitting g, the fine-tunes (summed).

    Returns:
        Columns ``*keys, pair, net_a_seconds, net_b_seconds, g_seconds, ft_seconds, rows``.
    """
    by = [*keys, "pair"]
    first = runs.groupby(by, sort=False)[["net_a_seconds", "net_b_seconds", "g_seconds"]].first()
    ft = runs.groupby(by, sort=False).agg(ft_seconds=("ft_seconds", "sum"), rows=("row", "count"))
    return first.join(ft).reset_index()


# ---------------------------------------------------------------------------- tables


def _spread(values: pd.Series) -> float:
    """Sample standard deviation over pairs (NaN for a single pair)."""
    return float(values.std(ddof=1)) if len(values) > 1 else math.nan


def summarize(runs: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Mean and spread over pairs of every row's accuracy.

    Args:
        runs: concatenated :func:`refinement_run` frames (with any extra key columns).
        keys: columns identifying a cell besides ``row`` and ``pair``, e.g. ``["column"]``
            (Table 3) or ``["setting", "column"]`` (Table 4).

    Returns:
        Columns ``*keys, row, accuracy`` (mean over pairs), ``spread`` (sample std over pairs,
        NaN for one pair), ``min``, ``max``, ``n_pairs``; rows in first-seen order.
    """
    keys = list(keys)
    missing = [c for c in [*keys, "row", "pair", "accuracy"] if c not in runs.columns]
    if missing:
        raise ValueError(f"runs lacks columns {missing}; it has {list(runs.columns)}")
    grouped = runs.groupby([*keys, "row"], sort=False)["accuracy"]
    out = grouped.agg(accuracy="mean", spread=_spread, min="min", max="max", n_pairs="count")
    return out.reset_index()


def gains(runs: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Gain of every refined row over the better of A and B, pair by pair, then over pairs.

    For each pair, ``gain = accuracy(row) - max(accuracy(Network A), accuracy(Network B))`` of
    that same pair. The gain *exceeds the spread* when its mean over pairs is larger than the
    largest seed spread (sample std over pairs) of the three rows compared; with one pair the
    spread is unknown (NaN) and ``exceeds_spread`` is False.

    Returns:
        Columns ``*keys, row, gain`` (mean), ``gain_spread`` (std over pairs), ``best_baseline``
        (mean over pairs of the better baseline), ``spread``, ``exceeds_spread``,
        ``pairs_improved`` (pairs with gain > 0), ``n_pairs``.
    """
    keys = list(keys)
    base = runs[runs["row"].isin(BASELINES)]
    best = base.groupby([*keys, "pair"], sort=False)["accuracy"].max().rename("best_baseline")
    refined = runs[~runs["row"].isin(BASELINES)].merge(best.reset_index(), on=[*keys, "pair"])
    refined = refined.assign(gain=refined["accuracy"] - refined["best_baseline"])
    summary = summarize(runs, keys).set_index([*keys, "row"])["spread"]
    records = []
    for (*cell, row), part in refined.groupby([*keys, "row"], sort=False):
        spreads = [summary.get((*cell, r), math.nan) for r in (row, *BASELINES)]
        spread = math.nan if any(math.isnan(s) for s in spreads) else max(spreads)
        gain = float(part["gain"].mean())
        records.append(
            {
                **dict(zip(keys, cell, strict=True)),
                "row": row,
                "gain": gain,
                "gain_spread": _spread(part["gain"]),
                "best_baseline": float(part["best_baseline"].mean()),
                "spread": spread,
                "exceeds_spread": bool(not math.isnan(spread) and gain > spread),
                "pairs_improved": int((part["gain"] > 0).sum()),
                "n_pairs": len(part),
            }
        )
    return pd.DataFrame.from_records(records)


def vs_paper(summary: pd.DataFrame, paper: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Our mean accuracies beside the paper's (an outer join: cells only one side has stay NaN).

    Args:
        summary: :func:`summarize`'s frame.
        paper: :func:`kc.paper.paper_table` ``(3)`` or ``(4)``.
        keys: the key columns of ``summary`` besides ``row`` that the paper also has.

    Returns:
        Columns ``*keys, row, ours, spread, n_pairs, paper, difference``.
    """
    from kc.report import side_by_side

    on = [*keys, "row"]
    merged = side_by_side(summary, paper, on=on, ours_value="accuracy", how="outer")
    extra = summary[[*on, "spread", "n_pairs"]]
    merged = merged.merge(extra, on=on, how="left")
    # our cells and rows first, in our order, then what only the paper has, in its order
    cells = [tuple(c) for c in pd.concat([summary[list(keys)], paper[list(keys)]]).to_numpy()]
    cell_rank = {c: i for i, c in enumerate(dict.fromkeys(cells))}
    row_rank = {r: i for i, r in enumerate(dict.fromkeys([*summary["row"], *paper["row"]]))}
    rank = [
        (cell_rank[tuple(c)], row_rank[r])
        for c, r in zip(merged[list(keys)].to_numpy(), merged["row"], strict=True)
    ]
    merged = merged.iloc[sorted(range(len(merged)), key=rank.__getitem__)]
    columns = [*on, "ours", "spread", "n_pairs", "paper", "difference"]
    return merged[columns].reset_index(drop=True)


def pivot_text(table: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """:func:`vs_paper`'s frame as the paper lays it out: ``"ours ± spread (paper)"`` per cell.

    Returns:
        A frame of strings indexed by ``row`` (in first-seen order) with one column per cell
        (the ``keys`` values joined by ``" | "``); ``-`` marks a missing number or cell.
    """

    def num(value: float) -> str:
        return "-" if pd.isna(value) else f"{value:.2f}"

    text = [
        f"{num(o)} ± {num(s)} ({num(p)})" if not pd.isna(o) else f"- ({num(p)})"
        for o, s, p in zip(table["ours"], table["spread"], table["paper"], strict=True)
    ]
    cells = table[list(keys)].astype(str).agg(" | ".join, axis=1)
    frame = table.assign(cell=cells, text=text)
    out = frame.pivot(index="row", columns="cell", values="text").fillna("-")
    return out.loc[list(dict.fromkeys(frame["row"])), list(dict.fromkeys(cells))]


def refinement_verdicts(
    gain_table: pd.DataFrame,
    paper_gains: pd.DataFrame,
    *,
    keys: Sequence[str],
    row: str,
    table: str,
) -> list[str]:
    """One verdict per cell: does ``row`` beat the better of A and B, as in the paper?

    Args:
        gain_table: :func:`gains` on our runs.
        paper_gains: :func:`gains` on the paper's table (a single "pair"), to quote its gain.
        keys: the cell's key columns.
        row: the refined row judged, e.g. ``"x0+x1+x2"``.
        table: ``"Table 3"`` or ``"Table 4"`` (used in the claim).

    Returns:
        Strings from :func:`kc.report.verdict`: one per cell (holds when the mean gain over
        pairs is positive; the evidence says whether it also exceeds the seed spread), one for
        all cells together, and, with two pairs or more, one on the gain exceeding the spread.
    """
    from kc.report import verdict

    ours = gain_table[gain_table["row"] == row]
    if ours.empty:
        raise ValueError(
            f"no row {row!r} in the gains; rows are {sorted(gain_table['row'].unique())}"
        )
    theirs = paper_gains[paper_gains["row"] == row].set_index(list(keys))["gain"]
    out = []
    for _, r in ours.iterrows():
        cell = tuple(r[k] for k in keys)
        where = ", ".join(str(c) for c in cell)
        paper_gain = theirs.get(cell if len(cell) > 1 else cell[0], math.nan)
        paper_text = (
            "no baseline in the paper" if np.isnan(paper_gain) else f"paper {paper_gain:+.2f}"
        )
        if r["n_pairs"] > 1:
            beyond = "a positive gain above" if r["exceeds_spread"] else "no positive gain above"
            noise = (
                f"{beyond} the spread {r['spread']:.2f}, improved in "
                f"{r['pairs_improved']}/{r['n_pairs']} pairs"
            )
        else:
            noise = "one pair, no spread"
        out.append(
            verdict(
                f"{table}, {where}: {row} beats the better of networks A and B",
                bool(r["gain"] > 0),
                f"ours {r['best_baseline'] + r['gain']:.2f} vs {r['best_baseline']:.2f}, gain "
                f"{r['gain']:+.2f} ({noise}); {paper_text}",
            )
        )
    improved = int((ours["gain"] > 0).sum())
    listing = ", ".join(f"{g:+.2f}" for g in ours["gain"])
    out.append(
        verdict(
            f"{table}: {row} beats the better of A and B in every cell",
            improved == len(ours),
            f"{improved}/{len(ours)} cells improved; gains {listing}",
        )
    )
    if (ours["n_pairs"] > 1).all():
        beyond = int(ours["exceeds_spread"].sum())
        out.append(
            verdict(
                f"{table}: the gain of {row} exceeds the seed spread in most cells",
                beyond > len(ours) / 2,
                f"{beyond}/{len(ours)} cells with mean gain > largest row spread over "
                f"{int(ours['n_pairs'].min())} pairs",
            )
        )
    return out


def paper_as_runs(paper: pd.DataFrame) -> pd.DataFrame:
    """The paper's table in the shape of our runs (one pseudo-pair), for :func:`gains`."""
    return paper.rename(columns={"value": "accuracy"}).assign(pair="paper")


def plot_summary(summary: pd.DataFrame, keys: Sequence[str], title: str) -> Any:
    """Bar chart: one group per cell (``keys``), one bar per row, error bars = spread.

    Returns:
        The matplotlib figure.
    """
    import matplotlib.pyplot as plt

    keys = list(keys)
    cells = summary[keys].astype(str).agg(" | ".join, axis=1)
    frame = summary.assign(cell=cells)
    means = frame.pivot_table(index="cell", columns="row", values="accuracy", sort=False)
    errs = frame.pivot_table(index="cell", columns="row", values="spread", sort=False, dropna=False)
    rows = list(dict.fromkeys(frame["row"]))
    means, errs = means[rows], errs.reindex(columns=rows)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.4 * len(means)), 3.6))
    means.plot.bar(ax=ax, yerr=errs.fillna(0.0), capsize=2, width=0.8, colormap="viridis")
    low = float(np.nanmin(means.to_numpy()))
    ax.set_ylim(max(0.0, low - 10.0), min(100.0, float(np.nanmax(means.to_numpy())) + 3.0))
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_xlabel("")
    ax.set_title(title)
    ax.legend(bbox_to_anchor=(1, 1), fontsize=8)
    plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
    fig.tight_layout()
    return fig
