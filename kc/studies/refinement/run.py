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
  a new, randomly initialised last linear layer (:func:`kc.engine.experiments.upper`).

The images: g is fitted on ``fit_limit`` training images of the target task (labels unused) and
the heads are fine-tuned on the same images with their labels; all rows are evaluated on the
``test_limit`` test images that :func:`kc.engine.experiments.get_consistency` measures g on.

:class:`RefinementStudy` holds a table's settings; :func:`refinement_run` produces the rows of
one pair and one cell; :mod:`kc.studies.refinement.tables` turns them into tables and claims.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn

from kc.core.decompose import decompose
from kc.core.fit import prepare
from kc.core.model import ConsistencyNet
from kc.engine.finetune import Budget, compare_rows
from kc.engine.seeding import seeded_build
from kc.studies.common import GFit, net_fields, pick
from kc.studies.paper import paper_column, paper_table
from kc.studies.regime import Regime, arch_fields

__all__ = [
    "Cell",
    "RefinementStudy",
    "component_rows",
    "refined_features",
    "refinement_run",
    "seed_pairs",
    "table_runs",
    "to_raw",
]


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
    """Pairs (A, B) = (seeds[i], seeds[i + 1]) around the cycle, at most ``limit`` of them.

    With three or more seeds the last pair closes the cycle, so that every network is A once
    and B once and n seeds give n pairs (three seeds: the three pairs a cell of Tables 3-4
    needs for a spread, issue 24); two seeds give one pair.

    Example:
        >>> seed_pairs([0, 1, 2])
        [(0, 1), (1, 2), (2, 0)]
        >>> seed_pairs([3, 5])
        [(3, 5)]
    """
    seeds = [int(s) for s in seeds]
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise ValueError(f"need at least two distinct seeds, got {seeds}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be None or an int >= 1, got {limit!r}")
    pairs = list(zip(seeds[:-1], seeds[1:], strict=True))
    if len(seeds) > 2:
        pairs.append((seeds[-1], seeds[0]))
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


def refinement_run(
    spec_a: Any,
    spec_b: Any,
    layer: str,
    *,
    task: str,
    budget: Budget,
    g: GFit,
    device: str = "auto",
    progress: bool = False,
) -> pd.DataFrame:
    """One pair (A, B), one feature, one target task: all rows of Table 3 or 4.

    Trains or loads A and B (:func:`kc.engine.experiments.get_net`), fits or loads g from x_A to x_B
    on the target task's training images (:func:`kc.engine.experiments.get_consistency`), then
    :func:`compare_rows` with the baselines "Network A", "Network B" and the refined rows
    ``x0``, ``x0+x1``, ... on B's upper layers. The target task's classes size the heads; when
    they differ from the networks' a new last linear layer is used (Table 4).

    Args:
        spec_a, spec_b: :class:`kc.engine.experiments.NetSpec` of A and B (same arch and data sets).
        layer: the feature, e.g. ``"conv4_3"`` or ``"last14"``.
        task: the target task whose images fit g and fine-tune the heads (e.g. ``"all"``,
            ``"subset:garments"``, ``"mix:0"``).
        budget: the fine-tuning budget of every row.
        g: how g is fitted (:class:`kc.studies.common.GFit`).
        device, progress: as in :func:`kc.engine.experiments.get_net`.

    Returns:
        :func:`compare_rows`' frame plus ``arch``, ``layer``, ``column``, ``task``, ``pair``
        (``"A-B"`` seeds), ``seed_a``, ``seed_b``, ``instability`` (of g on the test images),
        ``net_a_accuracy`` / ``net_b_accuracy`` (the networks' own test accuracy on their
        training task), and wall times ``net_a_seconds``, ``net_b_seconds``, ``g_seconds``
        (0-ish when cached; ``g_seconds`` includes extracting the features).
    """
    from kc.engine import experiments as ex

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
        **g.kwargs(spec_a.arch), task=task, device=device, progress=progress,
    )  # fmt: skip
    times["g_seconds"] = time.perf_counter() - start
    feats = {
        (name, split): ex.get_features(
            trained, layer, split=split, task=task, limit=lim, device=device, progress=progress
        )
        for name, trained in nets.items()
        for split, lim in (("train", g.fit_limit), ("test", g.test_limit))
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
        return seeded_build(budget.seed, lambda: ex.upper(net, layer, num_classes=num_classes))

    candidates: dict[str, tuple[nn.Module, Tensor, Tensor]] = {
        "Network A": (head(nets["a"]), feats["a", "train"][0], feats["a", "test"][0]),
        "Network B": (head(nets["b"]), feats["b", "train"][0], feats["b", "test"][0]),
    }
    for row in component_rows(g.order):
        candidates[row] = (head(nets["b"]), refined["train"][row], refined["test"][row])
    frame = compare_rows(candidates, train_y, test_y, budget, device=device)
    frame.insert(0, "arch", spec_a.arch)
    frame.insert(1, "layer", layer)
    frame.insert(2, "column", paper_column(3, spec_a.arch, layer))
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
    g: GFit,
    budget: Budget,
    device: str = "auto",
    progress: bool = False,
) -> pd.DataFrame:
    """:func:`refinement_run` for every cell and seed pair, concatenated.

    Args:
        cells: the columns (and tasks) of the table.
        pairs: seed pairs (A, B), e.g. from :func:`seed_pairs`.
        net: the remaining :class:`kc.engine.experiments.NetSpec` fields shared by all networks
            (``epochs``, ``width``, ``input_size``, ``train_limit``, ``optimizer``, ``lr``,
            ``batch_size``; ``epochs`` may be per architecture, :func:`kc.studies.regime.arch_fields`);
            the networks are trained on task ``"all"`` of ``cell.datasets``.
        g: how g is fitted.
        budget: the fine-tuning budget; its seed is replaced by each pair's seed of A.
        device, progress: as in :func:`kc.engine.experiments.get_net`.

    Returns:
        The rows of all runs with a leading ``setting`` column.
    """
    from kc.engine.experiments import NetSpec

    if not cells or not pairs:
        raise ValueError(f"need at least one cell and one pair, got {len(cells)} and {len(pairs)}")
    frames = []
    for cell in cells:
        for seed_a, seed_b in pairs:
            spec_a, spec_b = (
                NetSpec(cell.arch, datasets=cell.datasets, task="all", seed=s,
                        **arch_fields(net, cell.arch))
                for s in (seed_a, seed_b)
            )
            frame = refinement_run(
                spec_a,
                spec_b,
                cell.layer,
                task=cell.task,
                budget=replace(budget, seed=seed_a),
                device=device,
                g=g,
                progress=progress,
            )
            frame.insert(0, "setting", cell.setting)
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)


@dataclass(frozen=True)
class RefinementStudy:
    """The settings of Table 3 or Table 4, built from the notebook's parameters.

    Attributes:
        table: 3 or 4. cells: the columns (and target tasks) of the table. pairs: seed pairs
            (A, B). net: the shared :class:`kc.engine.experiments.NetSpec` fields. g: how g is
            fitted. budget: the fine-tuning budget of every row. device: DEVICE.
    """

    table: int
    cells: tuple[Cell, ...]
    pairs: tuple[tuple[int, int], ...]
    net: Mapping[str, Any]
    g: GFit
    budget: Budget
    device: str
    progress: bool = False

    @classmethod
    def from_params(cls, params: Mapping[str, Any], table: int) -> RefinementStudy:
        """From NETWORKS, SEEDS, PAIRS, FT_EPOCHS, FT_LR, DEVICE, the networks' and g's names;
        Table 3 also reads DATASET, Table 4 MIX_DATASETS, SUBSET_DATASET and SUBSET."""
        p = pick(params, ["NETWORKS", "SEEDS", "PAIRS", "FT_EPOCHS", "FT_LR", "DEVICE"])
        if table == 3:
            setting = str(paper_table(3)["setting"].iloc[0])
            tasks = {setting: ((pick(params, ["DATASET"])["DATASET"],), "all")}
        elif table == 4:
            q = pick(params, ["MIX_DATASETS", "SUBSET_DATASET", "SUBSET"])
            tasks = {  # the paper's setting -> (data sets of A and B, target task)
                "VOC-animal": ((q["SUBSET_DATASET"],), f"subset:{q['SUBSET']}"),
                "Mix-CUB": (tuple(q["MIX_DATASETS"]), "mix:0"),
                "Mix-Dogs": (tuple(q["MIX_DATASETS"]), "mix:1"),
            }
        else:
            raise ValueError(f"table must be 3 or 4, got {table!r}")
        net = net_fields(params)
        cells = tuple(
            Cell(setting, arch, layer, datasets, task)
            for setting, (datasets, task) in tasks.items()
            for arch, layer in p["NETWORKS"]
        )
        budget = Budget(
            epochs=int(p["FT_EPOCHS"]),
            lr=float(p["FT_LR"]),
            batch_size=int(net["batch_size"]),
            optimizer=str(net["optimizer"]),
        )
        return cls(
            table=table,
            cells=cells,
            pairs=tuple(seed_pairs(p["SEEDS"], p["PAIRS"])),
            net=net,
            g=GFit.from_params(params),
            budget=budget,
            device=p["DEVICE"],
        )

    @property
    def keys(self) -> list[str]:
        """The columns naming a cell: ``["column"]`` (Table 3), ``["setting", "column"]`` (4)."""
        return ["column"] if self.table == 3 else ["setting", "column"]

    def in_regime(self, regime: Regime) -> RefinementStudy:
        """The same cells and pairs with the networks of ``regime`` (issue 24): A and B trained
        on its few images per class, g fitted and every head fine-tuned on those images; the
        test images, the fine-tuning budget and g's settings otherwise unchanged."""
        return replace(self, net=regime.net(self.net), g=regime.g(self.g))

    def networks(self) -> list[Any]:
        """The :class:`kc.engine.experiments.NetSpec` of every network A and B, once each."""
        from kc.engine.experiments import NetSpec

        return list(dict.fromkeys(
            NetSpec(cell.arch, datasets=cell.datasets, task="all", seed=s,
                    **arch_fields(self.net, cell.arch))
            for cell in self.cells for pair in self.pairs for s in pair
        ))  # fmt: skip

    def run(self) -> pd.DataFrame:
        """:func:`table_runs` for every cell and pair (networks, g and features are cached)."""
        return table_runs(
            self.cells,
            self.pairs,
            net=self.net,
            g=self.g,
            budget=self.budget,
            device=self.device,
            progress=self.progress,
        )
