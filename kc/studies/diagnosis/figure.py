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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
from torch import Tensor

from kc.engine import experiments as ex
from kc.studies.claims import Claim
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

__all__ = [
    "DIRECTIONS",
    "DiagnosisFigureResult",
    "Settings",
    "claims",
    "network_names",
    "networks_table",
    "run",
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
        dataset: DATASET. seed: SEEDS[0], the seed of both networks.
        net: the shared NetSpec fields. g: how g is fitted (LAMBDA_ALEXNET in both directions).
        n_show: N_SHOW. device: DEVICE.
    """

    dataset: str
    seed: int
    net: Mapping[str, Any]
    g: GFit
    n_show: int
    device: str

    def __post_init__(self) -> None:
        check_n_show(self.n_show)
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
            net=net_fields(params),
            g=GFit.from_params(params),
            n_show=int(p["N_SHOW"]),
            device=p["DEVICE"],
        )

    def spec(self, arch: str) -> ex.NetSpec:
        """The Sec. 4.1 / Table 1 network of ``arch`` (task ``"all"``, seed ``SEEDS[0]``)."""
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


def claims(result: DiagnosisFigureResult) -> list[Claim]:
    """The caption of Fig. 3, measured by spatial coherence (correlation of neighbours).

    Coherence depends on the network (its receptive fields, its layer), so each residual is
    compared with the reconstructable part of the same feature: its *noise gap* is
    coherence(g(x)) - coherence(x^Delta), positive when the residual is the noisier part.

    1. ``unreliable_noisy``: the unreliable components of the weak network are noisier than
       its part the strong network reconstructs (noise gap of x_weak^Delta > 0).
    2. ``noise_vs_blind_spots``: they are noise more than the blind spots are (noise gap of
       x_weak^Delta > noise gap of x_strong^Delta), the caption's contrast between noisy
       activations and missed object parts.

    Not testable when the maps are 1 x 1 (no neighbours).
    """
    residual, consistent = DIRECTION_PARTS[2], DIRECTION_PARTS[1]
    coh = {d: t.set_index("part")["coherence"] for d, t in result.tables.items()}
    gap = {d: float(c[consistent] - c[residual]) for d, c in coh.items()}
    share = {d: float(t.set_index("part").loc[residual, "share"]) for d, t in result.tables.items()}
    numbers = {
        "coherence_unreliable": float(coh["unreliable"][residual]),
        "coherence_reconstructed_weak": float(coh["unreliable"][consistent]),
        "coherence_blind_spots": float(coh["blind spots"][residual]),
        "coherence_reconstructed_strong": float(coh["blind spots"][consistent]),
        "noise_gap_unreliable": gap["unreliable"],
        "noise_gap_blind_spots": gap["blind spots"],
        "share_unreliable": share["unreliable"],
        "share_blind_spots": share["blind spots"],
    }
    weak = network_names(result)["weak"]
    paper = "Fig. 3 (visual): unreliable features are noisy activations, blind spots object parts"
    unrel = (
        f"neighbour correlation of x_weak^Delta {numbers['coherence_unreliable']:.3f} vs "
        f"g(x_strong) {numbers['coherence_reconstructed_weak']:.3f} (noise gap "
        f"{gap['unreliable']:+.3f})"
    )
    blind = (
        f"x_strong^Delta {numbers['coherence_blind_spots']:.3f} vs g(x_weak) "
        f"{numbers['coherence_reconstructed_strong']:.3f} (noise gap {gap['blind spots']:+.3f})"
    )
    shares = (
        f"; shares of Var(x*): unreliable {share['unreliable']:.3f}, blind spots "
        f"{share['blind spots']:.3f}"
    )
    checks = [
        (
            "unreliable_noisy",
            f"the unreliable components of the weak network ({weak}) are noisier than its part "
            "the strong network reconstructs",
            gap["unreliable"] > 0,
            unrel + shares,
        ),
        (
            "noise_vs_blind_spots",
            "the unreliable components are noise more than the blind spots are (noise gap of "
            "x_weak^Delta > that of x_strong^Delta)",
            gap["unreliable"] > gap["blind spots"],
            f"{unrel}; {blind}{shares}",
        ),
    ]
    testable = all(math.isfinite(v) for v in gap.values())
    out = []
    for key, claim, holds, evidence in checks:
        if not testable:
            status, evidence = "not testable", "the feature maps are 1 x 1: no neighbours"
        else:
            status = "reproduced" if holds else "not reproduced"
        out.append(Claim(f"{ID}.{key}", ITEM, claim, paper, status, evidence, numbers))
    return out
