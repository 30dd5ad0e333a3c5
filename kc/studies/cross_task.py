"""Fig. 5 (Sec. 4.6): consistent and inconsistent features between a fine and a coarse task.

Network A is trained on the fine-grained mixture task (task ``"all"`` on the two data sets of
``MIX_DATASETS``: 10 garments + 10 digits here, 200 birds + 120 dogs in the paper), network B
with the same architecture on the binary task (``"binary"``: which data set an image comes
from; bird vs dog in the paper). A is Table 4's mixture network (same NetSpec, same cache).
For each seed s in ``SEEDS``, A_s and B_s are trained from seed s and g is fitted in both
directions on the features of the same images (the test images of the fine task, stratified
over its classes):

* A -> B: x_B = g(x_A) + x_B^Delta: the part of B's feature consistent with A, and what B
  encodes that A does not;
* B -> A: x_A = g(x_B) + x_A^Delta: the part of A's feature consistent with B, and what A
  encodes that B does not.

The paper: "DNN A encoded more knowledge than DNN B, thereby x_A reconstructing more features
than x_B", i.e. Var(x_B^Delta) / Var(x_B) < Var(x_A^Delta) / Var(x_A). We test it per seed and
on the mean over seeds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from torch import Tensor

from kc.engine import experiments as ex
from kc.studies.claims import Claim, untestable
from kc.studies.common import check_n_show, check_network
from kc.studies.components import (
    GFit,
    Shown,
    direction_maps,
    direction_table,
    evaluation_images,
    net_fields,
    pick,
    shown,
    spread_classes,
)

__all__ = [
    "DIRECTIONS",
    "CrossTaskResult",
    "Settings",
    "claims",
    "run",
    "runs_table",
    "summary_table",
]

ID = "fig5_cross_task"
ITEM = "Fig. 5"

#: The two networks' tasks: A fine-grained (all classes of the mixture), B binary.
TASKS = {"A": "all", "B": "binary"}

#: The two directions: name -> (x network, target network).
DIRECTIONS = {"A -> B": ("A", "B"), "B -> A": ("B", "A")}


@dataclass(frozen=True)
class Settings:
    """What Fig. 5 depends on, from the notebook's parameters.

    Attributes:
        datasets: MIX_DATASETS, the two data sets of the mixture.
        arch, layer: CROSS_TASK_NETWORK (the paper: VGG-16; the layer is our choice).
        seeds: SEEDS; one pair (A_s, B_s) per seed.
        net: the shared NetSpec fields. g: how g is fitted. n_show: N_SHOW. device: DEVICE.
    """

    datasets: tuple[str, str]
    arch: str
    layer: str
    seeds: tuple[int, ...]
    net: Mapping[str, Any]
    g: GFit
    n_show: int
    device: str

    def __post_init__(self) -> None:
        check_network("CROSS_TASK_NETWORK", self.arch, self.layer)
        datasets = tuple(self.datasets)
        if len(datasets) != 2:
            raise ValueError(f"MIX_DATASETS must name two data sets, got {list(datasets)}")
        seeds = tuple(int(s) for s in self.seeds)
        if not seeds or len(set(seeds)) != len(seeds):
            raise ValueError(f"SEEDS must be one or more distinct seeds, got {list(seeds)}")
        check_n_show(self.n_show)
        object.__setattr__(self, "datasets", datasets)
        object.__setattr__(self, "seeds", seeds)
        object.__setattr__(self, "net", dict(self.net))

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Settings:
        """From MIX_DATASETS, CROSS_TASK_NETWORK, SEEDS, N_SHOW, DEVICE, networks' and g's."""
        p = pick(params, ["MIX_DATASETS", "CROSS_TASK_NETWORK", "SEEDS", "N_SHOW", "DEVICE"])
        arch, layer = p["CROSS_TASK_NETWORK"]
        return cls(
            datasets=tuple(p["MIX_DATASETS"]),
            arch=arch,
            layer=layer,
            seeds=tuple(p["SEEDS"]),
            net=net_fields(params),
            g=GFit.from_params(params),
            n_show=int(p["N_SHOW"]),
            device=p["DEVICE"],
        )

    def spec(self, network: str, seed: int) -> ex.NetSpec:
        """Network ``"A"`` (fine task, Table 4's mixture net) or ``"B"`` (binary) of ``seed``."""
        return ex.NetSpec(
            self.arch, datasets=self.datasets, task=TASKS[network], seed=seed, **self.net
        )


@dataclass
class CrossTaskResult:
    """What :func:`run` computes.

    Attributes:
        settings: the settings.
        networks: rows ``network, task, seed, label, accuracy, from_cache``.
        fits: rows ``seed, direction, instability`` and the parts' ``share_*`` / ``coherence_*``.
        tables: (seed, direction) -> :func:`kc.studies.components.direction_table`.
        maps: direction -> :func:`kc.studies.components.direction_maps` (first seed).
        shown: the test images shown (classes spread over both data sets).
    """

    settings: Settings
    networks: pd.DataFrame
    fits: pd.DataFrame
    tables: dict[tuple[int, str], pd.DataFrame]
    maps: dict[str, dict[str, Tensor]]
    shown: Shown


def run(settings: Settings, *, progress: bool = True) -> CrossTaskResult:
    """Train (or load) A_s and B_s for every seed and fit g in both directions."""
    s = settings
    test = evaluation_images(s.datasets, s.net["input_size"], s.g.test_limit)
    index = spread_classes(test.labels, min(s.n_show, test.num_classes))
    net_rows, fit_rows, tables, maps = [], [], {}, {}
    for seed in s.seeds:
        nets = {}
        for name, task in TASKS.items():
            nets[name] = ex.get_net(s.spec(name, seed), device=s.device, progress=progress)
            net_rows.append(
                {
                    "network": name,
                    "task": task,
                    "seed": seed,
                    "label": nets[name].label,
                    "accuracy": nets[name].accuracy,
                    "from_cache": nets[name].from_cache,
                }
            )
        for direction, (src, dst) in DIRECTIONS.items():
            res = ex.get_consistency(
                nets[src],
                s.layer,
                nets[dst],
                s.layer,
                **s.g.kwargs(s.arch),
                task="all",
                device=s.device,
                progress=progress,
            )
            delta = res.components["delta"]
            n_features = len(res.target)  # every fit is evaluated on the same images
            table = direction_table(res.target, delta)
            tables[seed, direction] = table
            row: dict[str, Any] = {
                "seed": seed,
                "direction": direction,
                "instability": float(res.instability),
            }
            for part, share, coh in zip(
                table["part"], table["share"], table["coherence"], strict=True
            ):
                row[f"share {part}"] = float(share)
                row[f"coherence {part}"] = float(coh)
            fit_rows.append(row)
            if seed == s.seeds[0]:
                norm = res.model.normalizer("x_star")
                maps[direction] = direction_maps(res.target, delta, norm, index)
    return CrossTaskResult(
        settings=s,
        networks=pd.DataFrame(net_rows),
        fits=pd.DataFrame(fit_rows),
        tables=tables,
        maps=maps,
        shown=shown(test, index, n_features),
    )


# ---------------------------------------------------------------------------- tables


def runs_table(result: CrossTaskResult) -> pd.DataFrame:
    """One row per seed and direction: instability, each part's share and coherence."""
    return result.fits.copy()


def summary_table(fits: pd.DataFrame) -> pd.DataFrame:
    """Per direction, the instability over seeds: ``direction, mean, std, min, max, n_seeds``.

    Also a row ``"B -> A minus A -> B"``: the per-seed difference (positive when x_A
    reconstructs x_B better than x_B reconstructs x_A).
    """
    wide = fits.pivot(index="seed", columns="direction", values="instability")
    missing = [d for d in DIRECTIONS if d not in wide.columns]
    if missing:
        raise ValueError(f"fits lack the directions {missing}; they have {list(wide.columns)}")
    series = {d: wide[d] for d in DIRECTIONS}
    series["B -> A minus A -> B"] = wide["B -> A"] - wide["A -> B"]
    rows = [
        {
            "direction": name,
            "mean": float(v.mean()),
            "std": float(v.std(ddof=0)),
            "min": float(v.min()),
            "max": float(v.max()),
            "n_seeds": int(v.notna().sum()),
        }
        for name, v in series.items()
    ]
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------- claims


def claims(fits: pd.DataFrame) -> list[Claim]:
    """Sec. 4.6: x_A reconstructs x_B better than x_B reconstructs x_A.

    Reproduced when the mean over seeds of Var(x_A^Delta)/Var(x_A) - Var(x_B^Delta)/Var(x_B)
    is positive; the evidence gives each seed's difference and how many seeds agree. Not
    testable if no seed has both directions with finite values.
    """
    wide = fits.pivot(index="seed", columns="direction", values="instability")
    claim = (
        "x_A (fine-grained task) reconstructs x_B (binary task) better than x_B reconstructs x_A"
    )
    paper = "Sec. 4.6: A encoded more knowledge than B, so x_A reconstructs more of x_B (no number)"
    if any(d not in wide.columns for d in DIRECTIONS):
        return [untestable(f"{ID}.a_reconstructs_b", ITEM, claim, "a direction is missing", paper=paper)]
    diff = (wide["B -> A"] - wide["A -> B"]).dropna()
    diff = diff[np.isfinite(diff)]
    if diff.empty:
        return [untestable(f"{ID}.a_reconstructs_b", ITEM, claim, "no seed with both instabilities finite", paper=paper)]
    ab, ba = wide.loc[diff.index, "A -> B"], wide.loc[diff.index, "B -> A"]
    n, agree = len(diff), int((diff > 0).sum())
    spread = f" +/- {diff.std(ddof=0):.3f} (sd over {n} seeds)" if n > 1 else " (one seed)"
    evidence = (
        f"instability A -> B {ab.mean():.3f}, B -> A {ba.mean():.3f}; difference "
        f"{diff.mean():+.3f}{spread}, positive for {agree} of {n} seeds"
    )
    numbers = {
        "instability_a_to_b": float(ab.mean()),
        "instability_b_to_a": float(ba.mean()),
        "difference": float(diff.mean()),
        "seeds_agree": float(agree),
        "n_seeds": float(n),
    }
    status = "reproduced" if diff.mean() > 0 else "not reproduced"
    return [Claim(f"{ID}.a_reconstructs_b", ITEM, claim, paper, status, evidence, numbers)]
