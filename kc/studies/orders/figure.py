"""Fig. 1: one filter's consistent components of orders 0..K and its inconsistent part.

Two networks of one Table 1 architecture, trained on the same images from seeds ``SEEDS[0]``
and ``SEEDS[1]`` (Table 1's first Case 1 pair: the same :class:`kc.engine.experiments.NetSpec` and
:func:`kc.engine.experiments.get_consistency` arguments, so the networks and g come from Table 1's
cache). g rebuilds the second network's feature x* from the first's x; on the held-out test
images x* = x(0) + x(1) + ... + x(K) + x_Delta (Eq. 3-4).

**Which filter** (a documented rule, not a choice by hand): the channel of x* with the largest
variance over the test images (:func:`kc.studies.components.pick_filter`), i.e. the filter
that carries the most of the layer's signal. **Which images**: the ``N_SHOW`` test images on
which that filter's mean response in x* is highest, at most one per class
(:func:`kc.studies.components.strongest_images`).

Beside the maps, each order's part of Var(x*) over all channels of the layer (and over the
chosen filter alone): ``share`` = Cov(x(k), x*) / Var(x*) (adds up to 1 with x_Delta) and the
paper's Table 2 quantity ``var_ratio`` = Var(x(k)) / Var(x*).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
from torch import Tensor

from kc.engine import experiments as ex
from kc.studies.claims import Claim
from kc.studies.common import check_n_show, check_network
from kc.studies.components import (
    GFit,
    Shown,
    channel_variances,
    evaluation_images,
    net_fields,
    pick,
    pick_filter,
    shown,
    strongest_images,
    variance_shares,
)

__all__ = [
    "ID",
    "OrdersResult",
    "Settings",
    "claims",
    "paper_fractions",
    "run",
    "shares_table",
    "channels_table",
]

ID = "fig1_orders"
ITEM = "Fig. 1"


@dataclass(frozen=True)
class Settings:
    """What Fig. 1 depends on, from the notebook's parameters.

    Attributes:
        dataset: DATASET. arch, layer: ORDERS_NETWORK, a Table 1 architecture and its layer.
        seeds: SEEDS; the first two give x (``seeds[0]``) and x* (``seeds[1]``).
        net: the shared NetSpec fields (:func:`kc.studies.components.net_fields`).
        g: how g is fitted. n_show: N_SHOW, the images shown. device: DEVICE.
    """

    dataset: str
    arch: str
    layer: str
    seeds: tuple[int, ...]
    net: Mapping[str, Any]
    g: GFit
    n_show: int
    device: str

    def __post_init__(self) -> None:
        check_network("ORDERS_NETWORK", self.arch, self.layer)
        seeds = tuple(int(s) for s in self.seeds)
        if len(seeds) < 2 or seeds[0] == seeds[1]:
            raise ValueError(f"SEEDS must start with two distinct seeds, got {list(seeds)}")
        check_n_show(self.n_show)
        object.__setattr__(self, "seeds", seeds)
        object.__setattr__(self, "net", dict(self.net))

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Settings:
        """From DATASET, ORDERS_NETWORK, SEEDS, N_SHOW, DEVICE, the networks' and g's names."""
        p = pick(params, ["DATASET", "ORDERS_NETWORK", "SEEDS", "N_SHOW", "DEVICE"])
        arch, layer = p["ORDERS_NETWORK"]
        return cls(
            dataset=p["DATASET"],
            arch=arch,
            layer=layer,
            seeds=tuple(p["SEEDS"]),
            net=net_fields(params),
            g=GFit.from_params(params),
            n_show=int(p["N_SHOW"]),
            device=p["DEVICE"],
        )

    def spec(self, seed: int) -> ex.NetSpec:
        """The network of ``seed``: Table 1's Case 1 spec (task ``"all"``)."""
        return ex.NetSpec(self.arch, datasets=(self.dataset,), task="all", seed=seed, **self.net)


@dataclass
class OrdersResult:
    """What :func:`run` computes.

    Attributes:
        settings: the settings.
        networks: one row per network: ``role, label, accuracy, from_cache``.
        channel: the filter shown (index in x*).
        channel_var: (C,) Var of each channel of x* on the test images (normalised units).
        shown: the images shown (the filter's strongest responses, one per class).
        maps: ``"x*"``, ``"x0"`` .. ``"xK"``, ``"x_Delta"`` -> (n, h, w), the filter's maps in
            normalised units (footnote 2), signed; the rows after x* add up to it.
        layer_shares, filter_shares: :func:`kc.studies.components.variance_shares` over all
            channels and over the chosen channel.
        instability: Var(x_Delta) / Var(x*) of the whole layer (Table 1's number).
    """

    settings: Settings
    networks: pd.DataFrame
    channel: int
    channel_var: Tensor
    shown: Shown
    maps: dict[str, Tensor]
    layer_shares: pd.DataFrame
    filter_shares: pd.DataFrame
    instability: float


def _component_names(order: int) -> list[str]:
    return [f"x{k}" for k in range(order + 1)] + ["delta"]


def run(settings: Settings, *, progress: bool = True) -> OrdersResult:
    """Load (or train) the two networks and g, and measure the orders of the chosen filter."""
    s = settings
    x_spec, t_spec = s.spec(s.seeds[0]), s.spec(s.seeds[1])
    nets = {
        role: ex.get_net(spec, device=s.device, progress=progress)
        for role, spec in (("x", x_spec), ("x*", t_spec))
    }
    res = ex.get_consistency(
        x_spec, s.layer, t_spec, s.layer, **s.g.kwargs(s.arch), device=s.device, progress=progress
    )
    target = res.target
    names = _component_names(s.g.order)
    parts = {n: res.components[n] for n in names}
    c = pick_filter(target)
    test = evaluation_images((s.dataset,), s.net["input_size"], s.g.test_limit)
    n = min(s.n_show, len(test))
    show = shown(
        test, strongest_images(target[:, c].mean(dim=(-2, -1)), test.labels, n), len(target)
    )
    maps = {"x*": target[show.index, c]}
    maps.update({("x_Delta" if k == "delta" else k): parts[k][show.index, c] for k in names})
    networks = pd.DataFrame(
        [
            {"role": role, "label": n.label, "accuracy": n.accuracy, "from_cache": n.from_cache}
            for role, n in nets.items()
        ]
    )
    return OrdersResult(
        settings=s,
        networks=networks,
        channel=c,
        channel_var=channel_variances(target),
        shown=show,
        maps=maps,
        layer_shares=variance_shares(parts, target),
        filter_shares=variance_shares({n: p[:, c] for n, p in parts.items()}, target[:, c]),
        instability=float(res.instability),
    )


# ---------------------------------------------------------------------------- tables


def paper_fractions(arch: str, layer: str) -> pd.DataFrame:
    """The paper's Table 2 for one layer as fractions of Var(x*) (empty if not in the paper).

    The paper's Table 2 is in raw units; its Var(x*) is implied by Table 1 (Case 1) as
    Var(x_Delta) / instability (:func:`kc.studies.orders.run.paper_units_check`).

    Returns:
        Columns ``component, paper`` (``x0``, ``x1``, ``x2``, ``delta``).
    """
    from kc.studies.orders.run import paper_fractions as fractions
    from kc.studies.orders.run import paper_units_check
    from kc.studies.paper import paper_column, paper_table

    t1, t2 = paper_table(1), paper_table(2)
    column = paper_column(2, arch, layer)
    frac = fractions(t2, paper_units_check(t1, t2))
    frac = frac[frac["column"] == column]
    names = frac["row"].str.replace("Var(", "", regex=False).str.rstrip(")")
    return pd.DataFrame(
        {
            "component": names.str.replace("xDelta", "delta").to_numpy(),
            "paper": frac["value"].to_numpy(),
        }
    )


def shares_table(result: OrdersResult) -> pd.DataFrame:
    """Each order's part of Var(x*), over the layer and over the shown filter.

    Returns:
        Columns ``scope`` ("layer" or "filter <c>"), ``component, variance, var_ratio, share``
        and ``paper_var_ratio`` (the paper's Table 2 as a fraction of Var(x*), layer rows of
        a layer the paper reports; else NaN).
    """
    s = result.settings
    paper = paper_fractions(s.arch, s.layer).set_index("component")["paper"]
    layer = result.layer_shares.assign(scope="layer")
    layer["paper_var_ratio"] = layer["component"].map(paper)
    filt = result.filter_shares.assign(
        scope=f"filter {result.channel}", paper_var_ratio=float("nan")
    )
    out = pd.concat([layer, filt], ignore_index=True)
    return out[["scope", "component", "variance", "var_ratio", "share", "paper_var_ratio"]]


def channels_table(result: OrdersResult) -> pd.DataFrame:
    """Var(x*) per channel with its rank (1 = largest): the filter rule's evidence.

    Returns:
        Columns ``channel, var_x_star, rank, chosen``, sorted by rank.
    """
    var = result.channel_var.numpy()
    table = pd.DataFrame({"channel": range(len(var)), "var_x_star": var})
    table["rank"] = table["var_x_star"].rank(ascending=False, method="first").astype(int)
    table["chosen"] = table["channel"] == result.channel
    return table.sort_values("rank").reset_index(drop=True)


# ---------------------------------------------------------------------------- claims


def _decreasing(ratios: pd.Series) -> bool:
    return bool(all(a > b for a, b in itertools.pairwise(ratios.to_numpy())))


def claims(result: OrdersResult) -> list[Claim]:
    """Fig. 1 / Table 2's reading: most of the consistent signal is of low order.

    Two claims, on the layer and on the filter shown: Var(x(0)) > Var(x(1)) > ... > Var(x(K))
    (the penalty of Eq. 2 pushes consistent knowledge into low orders). Not testable with
    ORDER = 0.
    """
    s = result.settings
    order = s.g.order
    paper = paper_fractions(s.arch, s.layer).set_index("component")["paper"]
    orders = [f"x{k}" for k in range(order + 1)]
    if all(o in paper for o in orders):
        paper_text = "Table 2 for this layer, Var(x(k)) / Var(x*): " + " > ".join(
            f"{paper[o]:.3f}" for o in orders
        )
    else:
        paper_text = "Table 2 caption: most activations belong to low-order components"
    out = []
    for scope, table in (
        ("layer", result.layer_shares),
        (f"filter {result.channel}", result.filter_shares),
    ):
        ratios = table.set_index("component")["var_ratio"]
        cid = f"{ID}.low_order_{'layer' if scope == 'layer' else 'filter'}"
        claim = (
            f"Var(x(0)) > ... > Var(x({order})): consistent knowledge is mostly of low "
            f"order ({s.arch} {s.layer}, {scope})"
        )
        numbers = {f"var_ratio_{n}": float(v) for n, v in ratios.items()}
        if order < 1:
            out.append(
                Claim(
                    cid,
                    ITEM,
                    claim,
                    paper_text,
                    "not testable",
                    f"needs ORDER >= 1, got {order}",
                    numbers,
                )
            )
            continue
        seq = ratios[orders]
        evidence = " > ".join(f"{v:.3f}" for v in seq) + " (Var(x(k)) / Var(x*) on "
        evidence += f"{s.g.test_limit or 'all'} test images; shares of Var(x*): "
        evidence += ", ".join(
            f"{n} {v:.3f}" for n, v in table.set_index("component")["share"].items()
        )
        evidence += ")"
        status = "reproduced" if _decreasing(seq) else "not reproduced"
        out.append(Claim(cid, ITEM, claim, paper_text, status, evidence, numbers))
    return out
