"""Fig. 3: the blind spots and the unreliable components of a weak network, over the images.

The Sec. 4.1 networks (the paper: AlexNet ``conv5`` weak, ResNet-34 ``last14`` strong), with
the same :class:`kc.engine.experiments.NetSpec` and :func:`kc.engine.experiments.get_consistency` arguments as
the ``sec41_diagnosis`` notebook, so networks and both g come from its cache. As there, the
weaker network is the one with the lower test accuracy (the roles swap if AlexNet wins).

* left, g: x_weak -> x_strong. The strong network's raw feature, its part reconstructable from
  the weak one (g(x_weak)) and the residual x_strong^Delta: the **blind spots** of the weak one;
* right, g: x_strong -> x_weak. The weak network's raw feature, its part reconstructable from
  the strong one and the residual x_weak^Delta: its **unreliable components**.

Each part comes with its share of Var(x*) (:func:`kc.studies.components.direction_table`) and
its spatial coherence, the correlation of neighbouring positions (the caption of Fig. 3 reads
the unreliable components as noisy activations and the blind spots as object parts).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from torch import Tensor

from kc.engine import experiments as ex
from kc.studies.claims import Claim, gain_check
from kc.studies.common import check_n_show
from kc.studies.components import (
    DIRECTION_PARTS,
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
from kc.studies.diagnosis import run as dg
from kc.studies.diagnosis.tables import differing_roles

__all__ = [
    "DIRECTIONS",
    "DiagnosisFigureResult",
    "Settings",
    "claims",
    "network_names",
    "networks_table",
    "run",
    "run_pairs",
    "shares_table",
]

ID = "fig3_diagnosis"
ITEM = "Fig. 3"

#: The two directions: name -> (source role, target role, name of the residual).
DIRECTIONS = {
    "blind spots": ("weak", "strong", "blind spots"),
    "unreliable": ("strong", "weak", "unreliable components"),
}


@dataclass(frozen=True)
class Settings:
    """What Fig. 3 depends on, from the notebook's parameters (as ``sec41_diagnosis``).

    Attributes:
        dataset: DATASET. seed: SEEDS[0], the seed of both networks; seeds: SEEDS, one pair
            of networks each (:meth:`pairs`; empty: ``(seed,)``).
        net: the shared NetSpec fields. g: how g is fitted (LAMBDA_ALEXNET in both directions).
        n_show: N_SHOW. device: DEVICE.
    """

    dataset: str
    seed: int
    net: Mapping[str, Any]
    g: GFit
    n_show: int
    device: str
    seeds: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        check_n_show(self.n_show)
        seeds = tuple(int(s) for s in self.seeds) or (int(self.seed),)
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"SEEDS must be distinct, got {list(seeds)}")
        object.__setattr__(self, "seeds", seeds)
        object.__setattr__(self, "net", dict(self.net))

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Settings:
        """From DATASET, SEEDS, N_SHOW, DEVICE, the networks' and g's names."""
        p = pick(params, ["DATASET", "SEEDS", "N_SHOW", "DEVICE"])
        if not p["SEEDS"]:
            raise ValueError("SEEDS must name at least one seed, got []")
        return cls(
            dataset=p["DATASET"],
            seed=int(p["SEEDS"][0]),
            seeds=tuple(int(s) for s in p["SEEDS"]),
            net=net_fields(params),
            g=GFit.from_params(params),
            n_show=int(p["N_SHOW"]),
            device=p["DEVICE"],
        )

    def pairs(self) -> list[Settings]:
        """One settings per seed of :attr:`seeds`: the pair (weak, strong) of that seed."""
        return [replace(self, seed=s) for s in self.seeds]

    def spec(self, arch: str) -> ex.NetSpec:
        """The Sec. 4.1 / Table 1 network of ``arch`` (task ``"all"``, the settings' seed)."""
        return ex.NetSpec(arch, datasets=(self.dataset,), task="all", seed=self.seed, **self.net)


@dataclass
class DiagnosisFigureResult:
    """What :func:`run` computes.

    Attributes:
        settings: the settings.
        networks: rows ``role, arch, layer, label, accuracy, from_cache`` (weak, strong).
        tables: direction -> :func:`kc.studies.components.direction_table` on all test images.
        maps: direction -> :func:`kc.studies.components.direction_maps` of the shown images.
        shown: the test images shown (spread over the classes).
        instability: direction -> Var(x^Delta) / Var(x*).
    """

    settings: Settings
    networks: pd.DataFrame
    tables: dict[str, pd.DataFrame]
    maps: dict[str, dict[str, Tensor]]
    shown: Shown
    instability: dict[str, float]


def run(settings: Settings, *, progress: bool = True) -> DiagnosisFigureResult:
    """Load (or train) the weak and strong networks and g in both directions."""
    s = settings
    (arch_a, layer_a), (arch_b, layer_b) = dg.PAPER_WEAK, dg.PAPER_STRONG
    nets = {
        k: ex.get_net(s.spec(arch), device=s.device, progress=progress)
        for k, arch in (("a", arch_a), ("b", arch_b))
    }
    layers = {"a": layer_a, "b": layer_b}
    weak, strong = dg.roles(nets["a"].accuracy, nets["b"].accuracy)
    role = {"weak": weak, "strong": strong}
    shapes = {
        k: tuple(
            ex.get_features(
                nets[k],
                layers[k],
                split="test",
                limit=s.g.test_limit,
                device=s.device,
                progress=progress,
            )[0].shape[1:]
        )
        for k in nets
    }
    resize = dg.resize_mode(shapes[weak], shapes[strong])
    test = evaluation_images((s.dataset,), s.net["input_size"], s.g.test_limit)
    index = spread_classes(test.labels, min(s.n_show, test.num_classes))
    tables, maps, instability = {}, {}, {}
    for direction, (src_role, dst_role, _) in DIRECTIONS.items():
        src, dst = role[src_role], role[dst_role]
        res = ex.get_consistency(
            nets[src],
            layers[src],
            nets[dst],
            layers[dst],
            **s.g.kwargs(nets[src].spec.arch, nets[dst].spec.arch),
            resize=resize,
            device=s.device,
            progress=progress,
        )
        delta = res.components["delta"]
        n_features = len(res.target)  # every fit is evaluated on the same images
        tables[direction] = direction_table(res.target, delta)
        maps[direction] = direction_maps(res.target, delta, res.model.normalizer("x_star"), index)
        instability[direction] = float(res.instability)
    networks = pd.DataFrame(
        [
            {
                "role": r,
                "arch": nets[k].spec.arch,
                "layer": layers[k],
                "label": nets[k].label,
                "accuracy": nets[k].accuracy,
                "from_cache": nets[k].from_cache,
            }
            for r, k in role.items()
        ]
    )
    return DiagnosisFigureResult(
        settings=s,
        networks=networks,
        tables=tables,
        maps=maps,
        shown=shown(test, index, n_features),
        instability=instability,
    )


def run_pairs(settings: Settings, *, progress: bool = True) -> dict[int, DiagnosisFigureResult]:
    """:func:`run` for every pair of networks (:meth:`Settings.pairs`), keyed by seed."""
    return {s.seed: run(s, progress=progress) for s in settings.pairs()}


# ---------------------------------------------------------------------------- tables


def network_names(result: DiagnosisFigureResult) -> dict[str, str]:
    """Role (``weak``, ``strong``) -> ``"arch layer"`` of its network."""
    nets = result.networks.set_index("role")
    return {r: f"{nets.loc[r, 'arch']} {nets.loc[r, 'layer']}" for r in ("weak", "strong")}


def networks_table(result: DiagnosisFigureResult, paper: pd.DataFrame) -> pd.DataFrame:
    """The two networks with the paper's accuracies of its weak and strong network beside.

    Args:
        result: from :func:`run`.
        paper: :func:`kc.studies.paper.paper_table` ``("4.1")``.

    Returns:
        Columns ``role, arch, layer, label, accuracy, paper_network, paper_accuracy``.
    """
    rows = paper[paper["setting"] == "networks"].set_index("row")
    out = result.networks.drop(columns="from_cache").copy()
    key = {"weak": "weak DNN accuracy", "strong": "strong DNN accuracy"}
    out["paper_network"] = [rows.loc[key[r], "column"] for r in out["role"]]
    out["paper_accuracy"] = [float(rows.loc[key[r], "value"]) for r in out["role"]]
    return out


def shares_table(result: DiagnosisFigureResult) -> pd.DataFrame:
    """Both directions' parts with their variance ratio, share of Var(x*) and coherence.

    Returns:
        Columns ``direction, x, target, part, var_ratio, share, coherence``.
    """
    names = network_names(result)
    parts = []
    for direction, (src, dst, _) in DIRECTIONS.items():
        t = result.tables[direction].copy()
        t.insert(0, "target", names[dst])
        t.insert(0, "x", names[src])
        t.insert(0, "direction", direction)
        parts.append(t)
    return pd.concat(parts, ignore_index=True)


# ---------------------------------------------------------------------------- claims


def pair_numbers(result: DiagnosisFigureResult) -> dict[str, float]:
    """One pair's coherences, noise gaps and residual shares (NaN coherences on 1 x 1 maps).

    The *noise gap* of a direction is coherence(g(x)) - coherence(x^Delta): positive when its
    residual is the noisier part of the feature.
    """
    residual, consistent = DIRECTION_PARTS[2], DIRECTION_PARTS[1]
    coh = {d: t.set_index("part")["coherence"] for d, t in result.tables.items()}
    share = {d: float(t.set_index("part").loc[residual, "share"]) for d, t in result.tables.items()}
    return {
        "coherence_unreliable": float(coh["unreliable"][residual]),
        "coherence_reconstructed_weak": float(coh["unreliable"][consistent]),
        "coherence_blind_spots": float(coh["blind spots"][residual]),
        "coherence_reconstructed_strong": float(coh["blind spots"][consistent]),
        "noise_gap_unreliable": float(coh["unreliable"][consistent] - coh["unreliable"][residual]),
        "noise_gap_blind_spots": float(
            coh["blind spots"][consistent] - coh["blind spots"][residual]
        ),
        "share_unreliable": share["unreliable"],
        "share_blind_spots": share["blind spots"],
    }


def claims(
    results: DiagnosisFigureResult
    | Mapping[int, DiagnosisFigureResult]
    | Sequence[DiagnosisFigureResult],
) -> list[Claim]:
    """The caption of Fig. 3, measured by spatial coherence (correlation of neighbours), decided
    over pairs of networks (:func:`run_pairs`; issue 24: no verdict without a spread).

    Coherence depends on the network (its receptive fields, its layer), so each residual is
    compared with the reconstructable part of the same feature (:func:`pair_numbers`' noise gap).
    Per pair:

    1. ``unreliable_noisy``: the noise gap of x_weak^Delta, the unreliable components of the
       weak network (positive: noisier than its part the strong network reconstructs);
    2. ``noise_vs_blind_spots``: that gap minus the gap of x_strong^Delta, the blind spots (the
       caption's contrast between noisy activations and missed object parts).

    Each is reproduced when its mean over pairs is positive and above its standard error over
    pairs (:func:`kc.studies.claims.gain_check`); one pair gives "not testable: no spread". Not
    testable when the maps are 1 x 1 (no neighbours). Each pair takes its own roles by accuracy
    (:func:`kc.studies.diagnosis.run.roles`); the evidence says so when they differ between
    pairs. ``numbers``: the pairs' mean :func:`pair_numbers` beside the check's own.
    """
    if isinstance(results, DiagnosisFigureResult):
        results = [results]
    pairs = list(results.values()) if isinstance(results, Mapping) else list(results)
    seeds = list(results) if isinstance(results, Mapping) else list(range(len(pairs)))
    if not pairs:
        raise ValueError("claims need at least one pair's result")
    per_pair = [pair_numbers(r) for r in pairs]
    means = {k: float(np.mean([n[k] for n in per_pair])) for k in per_pair[0]}
    weak_per_pair = [network_names(r)["weak"] for r in pairs]
    weak = " / ".join(dict.fromkeys(weak_per_pair))
    roles = differing_roles(dict(zip(seeds, weak_per_pair, strict=True)))
    roles = f"{roles}; " if roles else ""
    paper = "Fig. 3 (visual): unreliable features are noisy activations, blind spots object parts"
    unrel = [n["noise_gap_unreliable"] for n in per_pair]
    contrast = [n["noise_gap_unreliable"] - n["noise_gap_blind_spots"] for n in per_pair]
    first = per_pair[0]
    shown = (
        f"first pair: neighbour correlation of x_weak^Delta {first['coherence_unreliable']:.3f} "
        f"vs g(x_strong) {first['coherence_reconstructed_weak']:.3f}, x_strong^Delta "
        f"{first['coherence_blind_spots']:.3f} vs g(x_weak) "
        f"{first['coherence_reconstructed_strong']:.3f}; shares of Var(x*): unreliable "
        f"{first['share_unreliable']:.3f}, blind spots {first['share_blind_spots']:.3f}"
    )
    checks = [
        (
            "unreliable_noisy",
            f"the unreliable components of the weak network ({weak}) are noisier than its part "
            "the strong network reconstructs",
            unrel,
            f"{roles}noise gap of x_weak^Delta per pair " + ", ".join(f"{v:+.3f}" for v in unrel),
        ),
        (
            "noise_vs_blind_spots",
            "the unreliable components are noise more than the blind spots are (noise gap of "
            "x_weak^Delta > that of x_strong^Delta)",
            contrast,
            f"{roles}noise gap of x_weak^Delta minus that of x_strong^Delta per pair "
            + ", ".join(f"{v:+.3f}" for v in contrast),
        ),
    ]
    testable = all(math.isfinite(v) for n in per_pair for v in n.values())
    out = []
    for key, claim, values, context in checks:
        cid = f"{ID}.{key}"
        if not testable:
            reason = "the feature maps are 1 x 1: no neighbours"
            out.append(Claim(cid, ITEM, claim, paper, "not testable", reason, means))
            continue
        c = gain_check(
            cid, ITEM, claim, values, paper=paper, unit="in correlation", context=context
        )
        out.append(replace(c, evidence=f"{c.evidence}; {shown}", numbers={**means, **c.numbers}))
    return out
