"""Table 1 (Sec. 4.2): the fits between pairs of networks and the instability of learning.

``table1_instability`` fits g between pairs of networks (:func:`fits`) and summarises
Var(x_Delta) / Var(x*) per layer (:func:`instability_table`). ``table2_order_variances`` calls
:func:`fits` with the same study, so it reads the same cached fits (identical
:func:`kc.engine.experiments.get_consistency` arguments, hence identical cache keys), and summarises
them with :mod:`kc.studies.orders.run`.

The two cases of Sec. 4.2:

* Case 1 (``"different initializations"``): networks of one architecture trained on the same
  images from different seeds. Every unordered pair of seeds ``(i, j)``, ``i < j``, gives one
  fit that reconstructs the feature of seed ``j`` from that of seed ``i``; with
  ``both_directions`` also the reverse. Table 1 reports the mean over the fits.
* Case 2 (``"different training data"``): two networks with the first seed trained on the two
  disjoint halves of the training images (tasks ``half0`` / ``half1``), g fitted in both
  directions, reported as :func:`kc.two_way_instability`.

Functions returning tables take and return plain DataFrames, so the checks of the paper's
claims run unchanged on our numbers and on the paper's (:func:`paper_frame`).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from kc.core.metrics import two_way_instability
from kc.engine import experiments as ex
from kc.engine import zoo
from kc.engine.tasks import Task, consistency_task, net_task
from kc.studies.claims import Claim, from_checks
from kc.studies.common import GFit, net_fields, pick
from kc.studies.paper import (
    ARCH_DEPTH,
    ARCH_NAMES,
    CASE1,
    CASE2,
    SETTINGS,
    paper_column,
    parse_column,
)
from kc.studies.regime import Regime, arch_fields

# ---------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class InstabilityStudy:
    """The notebook parameters that determine the networks and the fits of Tables 1-2.

    Build it with :meth:`from_params` from the notebook's parameters (CONTRIBUTING.md); the
    defaults live in the notebook and the profiles only.

    Attributes:
        dataset: DATASET. layers: LAYERS, ``{arch: [layer, ...]}``. seeds: SEEDS (two or
            more distinct). both_directions: BOTH_DIRECTIONS (Case 1 also fits j -> i).
        net: the shared :class:`kc.engine.experiments.NetSpec` fields (:func:`net_fields`).
        g: how g is fitted; AlexNet features use ``g.lam_alexnet`` (Sec. 4).
        device: DEVICE. progress: show progress bars.
    """

    dataset: str
    layers: Mapping[str, Sequence[str]]
    seeds: Sequence[int]
    net: Mapping[str, Any]
    g: GFit
    both_directions: bool
    device: str
    progress: bool = False

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> InstabilityStudy:
        """From DATASET, LAYERS, SEEDS, BOTH_DIRECTIONS, DEVICE, the networks' and g's names."""
        p = pick(params, ["DATASET", "LAYERS", "SEEDS", "BOTH_DIRECTIONS", "DEVICE"])
        return cls(
            dataset=p["DATASET"],
            layers=p["LAYERS"],
            seeds=p["SEEDS"],
            net=net_fields(params),
            g=GFit.from_params(params),
            both_directions=bool(p["BOTH_DIRECTIONS"]),
            device=p["DEVICE"],
        )

    def __post_init__(self) -> None:
        layers = {str(a): tuple(ls) for a, ls in dict(self.layers).items()}
        if not layers or any(not ls for ls in layers.values()):
            raise ValueError(f"layers must map each arch to at least one layer, got {layers}")
        for arch, names in layers.items():
            if arch not in zoo.ARCHS:
                raise ValueError(f"unknown arch {arch!r}; expected one of {list(zoo.ARCHS)}")
            bad = [n for n in names if n not in zoo.layers(arch)]
            if bad:
                raise ValueError(f"unknown layers {bad} of {arch}; expected {zoo.layers(arch)}")
        seeds = tuple(int(s) for s in self.seeds)
        if len(set(seeds)) < 2 or len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be at least two distinct values, got {list(seeds)}")
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "seeds", seeds)
        object.__setattr__(self, "net", dict(self.net))

    def in_regime(self, regime: Regime) -> InstabilityStudy:
        """The same layers, seeds and g with the networks of ``regime`` (issue 24): trained on
        its few images per class (Case 2's halves on half of them each), g fitted on them."""
        return replace(self, net=regime.net(self.net), g=regime.g(self.g))

    def layer_list(self) -> list[tuple[str, str]]:
        """``[(arch, layer), ...]`` in the order of :attr:`layers`."""
        return [(arch, layer) for arch, names in self.layers.items() for layer in names]

    def spec(self, arch: str, seed: int, task: str = "all") -> ex.NetSpec:
        """The network of ``arch`` and ``seed``; the NetSpec every notebook uses for it.

        Case 2's halves (``task`` ``half0`` / ``half1``) are trained on ``train_limit // 2``
        images each, so that each sees half as many images as a Case 1 network.
        """
        fields = arch_fields(self.net, arch)
        if task != "all" and fields["train_limit"] is not None:
            fields["train_limit"] = max(1, fields["train_limit"] // 2)
        return ex.NetSpec(arch, datasets=(self.dataset,), task=task, seed=seed, **fields)

    def case1_pairs(self) -> list[tuple[int, int]]:
        """(seed of x, seed of x*) of the Case 1 fits."""
        pairs = list(itertools.combinations(self.seeds, 2))
        if self.both_directions:
            pairs += [(b, a) for a, b in pairs]
        return pairs

    def specs(self) -> list[ex.NetSpec]:
        """Every network of both cases: all seeds, then the two halves of the first seed."""
        out = [self.spec(arch, s) for arch in self.layers for s in self.seeds]
        out += [
            self.spec(arch, self.seeds[0], t) for arch in self.layers for t in ("half0", "half1")
        ]
        return out

    def fit_list(
        self, cases: Iterable[str] = SETTINGS
    ) -> list[tuple[str, ex.NetSpec, ex.NetSpec, str]]:
        """``(setting, x, x*, layer)`` of every fit of both cases, in the table's order."""
        cases = list(cases)
        unknown = [c for c in cases if c not in SETTINGS]
        if unknown:
            raise ValueError(f"unknown cases {unknown}; expected some of {list(SETTINGS)}")
        out = []
        for arch, layer in self.layer_list():
            if CASE1 in cases:
                for a, b in self.case1_pairs():
                    out.append((CASE1, self.spec(arch, a), self.spec(arch, b), layer))
            if CASE2 in cases:
                h0, h1 = (self.spec(arch, self.seeds[0], t) for t in ("half0", "half1"))
                out += [(CASE2, h0, h1, layer), (CASE2, h1, h0, layer)]
        return out

    def tasks(self, cases: Iterable[str] = SETTINGS) -> list[Task]:
        """The networks and the fits of g that :func:`networks` and :func:`fits` compute,
        declared before they run (:mod:`kc.engine.tasks`)."""
        nets = [net_task(spec, device=self.device) for spec in self.specs()]
        fits = [consistency_task(x, layer, t, layer, **self.g.kwargs(x.arch), device=self.device)
                for _, x, t, layer in self.fit_list(cases)]  # fmt: skip
        return [*nets, *fits]

    def fit(self, x_spec: ex.NetSpec, target_spec: ex.NetSpec, layer: str) -> Any:
        """:func:`kc.engine.experiments.get_consistency` with this study's settings (one cache key)."""
        return ex.get_consistency(
            x_spec,
            layer,
            target_spec,
            layer,
            **self.g.kwargs(x_spec.arch),
            device=self.device,
            progress=self.progress,
        )


# ---------------------------------------------------------------------------- running


def networks(study: InstabilityStudy) -> pd.DataFrame:
    """Train (or load) every network of the study.

    Returns:
        One row per network: ``arch, task, seed, train_limit, accuracy, train_seconds,
        from_cache, label``.
    """
    rows = []
    for spec in study.specs():
        net = ex.get_net(spec, device=study.device, progress=study.progress)
        rows.append(
            {
                "arch": spec.arch,
                "task": spec.task,
                "seed": spec.seed,
                "train_limit": spec.train_limit,
                "accuracy": net.accuracy,
                "train_seconds": net.train_seconds,
                "from_cache": net.from_cache,
                "label": net.label,
            }
        )
    return pd.DataFrame(rows)


def _fit_row(study: InstabilityStudy, setting: str, x: ex.NetSpec, t: ex.NetSpec, layer: str):
    start = time.perf_counter()
    res = study.fit(x, t, layer)
    seconds = time.perf_counter() - start
    row: dict[str, Any] = {
        "setting": setting,
        "arch": x.arch,
        "layer": layer,
        "column": paper_column(1, x.arch, layer),
        "x": x.label,
        "target": t.label,
        "instability": float(res.instability),
    }
    for name, value in res.variances.items():
        row[_row_name(str(name))] = float(value)
    for name, value in res.variances_raw.items():
        row[f"{_row_name(str(name))} raw"] = float(value)
    row.update(from_cache=bool(res.info["from_cache"]), seconds=seconds)
    return row


def _row_name(index: str) -> str:
    """``Var(delta)`` of :class:`kc.ConsistencyResult` is ``Var(xDelta)`` in the paper."""
    return "Var(xDelta)" if index == "Var(delta)" else index


def fits(study: InstabilityStudy, cases: Iterable[str] = SETTINGS) -> pd.DataFrame:
    """Fit (or load) g for every layer and pair of both cases.

    Returns:
        One row per fit: ``setting, arch, layer, column, x, target, instability``, the
        normalised ``Var(x0) .. Var(xK), Var(xDelta), Var(x*)``, the same with a `` raw``
        suffix (raw units of x*), ``from_cache`` (g loaded, not fitted) and ``seconds`` (wall
        time of the call, including feature extraction when not cached).
    """
    rows = [_fit_row(study, *fit) for fit in study.fit_list(cases)]
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------- Table 1


def instability_table(fit_rows: pd.DataFrame) -> pd.DataFrame:
    """Table 1 from :func:`fits`: one row per setting and layer.

    Case 1: the mean of the fits' instabilities; Case 2: :func:`kc.two_way_instability` of
    the two directions. ``std`` (population), ``min``, ``max`` and ``n_fits`` give the spread.

    Returns:
        Columns ``setting, arch, layer, column, instability, std, min, max, n_fits``.
    """
    rows = []
    for (setting, column), group in fit_rows.groupby(["setting", "column"], sort=False):
        values = group["instability"].to_numpy(dtype=float)
        if setting == CASE2:
            if len(values) != 2:
                raise ValueError(f"Case 2 needs exactly two fits for {column}, got {len(values)}")
            value = two_way_instability(float(values[0]), float(values[1]))
        else:
            value = float(values.mean())
        rows.append(
            {
                "setting": setting,
                "arch": group["arch"].iloc[0],
                "layer": group["layer"].iloc[0],
                "column": column,
                "instability": value,
                "std": float(values.std()),
                "min": float(values.min()),
                "max": float(values.max()),
                "n_fits": len(values),
            }
        )
    return pd.DataFrame(rows)


def paper_frame(paper: pd.DataFrame) -> pd.DataFrame:
    """Rows of :func:`kc.studies.paper.paper_table` with ``arch`` and ``layer`` parsed from the column."""
    out = paper.copy()
    parsed = [parse_column(1, c) for c in out["column"]]
    out["arch"] = [a for a, _ in parsed]
    out["layer"] = [layer for _, layer in parsed]
    return out


def _fmt(values: Mapping[str, float]) -> str:
    return ", ".join(f"{k} {v:.3f}" for k, v in values.items())


def _increasing(values: Sequence[float]) -> bool:
    return bool(all(x < y for x, y in itertools.pairwise(values)))


def _case(setting: str) -> str:
    return f"case{SETTINGS.index(setting) + 1}"


def instability_checks(table: pd.DataFrame, value: str = "instability") -> dict[str, dict]:
    """Check Sec. 4.2's claims on a Table 1 (ours, or :func:`paper_frame` with ``value="value"``).

    Per setting: (a) within each architecture, instability grows with depth (conv4 < conv5,
    conv4_3 < conv5_3); (b) the architectures' mean instability grows with their depth
    (AlexNet < VGG-16 < ResNet-34); (c) the deepest network's layers are the least stable of
    all. A check whose data are missing (one layer of an architecture, one architecture) is
    returned with ``holds=None`` and the reason.

    Returns:
        ``{claim id: {"setting", "claim", "holds" (bool or None), "evidence", "numbers"}}``.
    """
    out: dict[str, dict] = {}
    for setting, group in table.groupby("setting", sort=False):
        vals = {
            (a, layer): float(v)
            for a, layer, v in zip(group["arch"], group["layer"], group[value], strict=True)
        }
        case = _case(str(setting))
        archs = sorted({a for a, _ in vals}, key=lambda a: ARCH_DEPTH[a])
        for arch in archs:
            layers = sorted((layer for a, layer in vals if a == arch), key=zoo.layers(arch).index)
            seq = [vals[arch, layer] for layer in layers]
            numbers = dict(zip(layers, seq, strict=True))
            ok = len(layers) >= 2
            out[f"table1.{case}.{arch}_layers"] = {
                "setting": setting,
                "claim": f"{ARCH_NAMES[arch]}: the deeper layer is less stable",
                "holds": _increasing(seq) if ok else None,
                "evidence": _fmt(numbers)
                if ok
                else f"needs two or more layers of {arch}, got {layers}",
                "numbers": numbers,
            }
        means = {
            ARCH_NAMES[a]: float(np.mean([v for (b, _), v in vals.items() if b == a]))
            for a in archs
        }
        ok = len(archs) >= 2
        reason = f"needs two or more architectures, got {archs}"
        out[f"table1.{case}.network_depth"] = {
            "setting": setting,
            "claim": "deeper networks are less stable (mean over layers)",
            "holds": _increasing(list(means.values())) if ok else None,
            "evidence": _fmt(means) if ok else reason,
            "numbers": means,
        }
        deepest = archs[-1]
        low = min(v for (a, _), v in vals.items() if a == deepest)
        rest = {paper_column(1, a, layer): v for (a, layer), v in vals.items() if a != deepest}
        claim = "the deepest network is the least stable"
        if not ok:
            out[f"table1.{case}.deepest"] = {
                "setting": setting, "claim": claim, "holds": None, "evidence": reason,
                "numbers": {},
            }  # fmt: skip
            continue
        worst = max(rest, key=rest.__getitem__)
        out[f"table1.{case}.deepest"] = {
            "setting": setting,
            "claim": claim,
            "holds": bool(low > rest[worst]),
            "evidence": f"{ARCH_NAMES[deepest]} min {low:.3f} vs the next highest {worst} "
            f"{rest[worst]:.3f}",
            "numbers": {f"{ARCH_NAMES[deepest]} min": low, worst: rest[worst]},
        }
    return out


def table1_claims(table: pd.DataFrame, paper: pd.DataFrame) -> list[Claim]:
    """Sec. 4.2's claims on our Table 1 (:func:`instability_table`) beside the paper's."""
    return from_checks(
        instability_checks(table), instability_checks(paper_frame(paper), "value"), "Table 1"
    )


def pairwise_support(fit_rows: pd.DataFrame) -> pd.DataFrame:
    """For each within-architecture claim, in how many matched fits (same x and target
    networks) the shallower layer is the more stable one.

    Returns:
        Columns ``setting, arch, shallow, deep, n_holds, n_fits``.
    """
    rows = []
    for (setting, arch), group in fit_rows.groupby(["setting", "arch"], sort=False):
        layers = sorted(group["layer"].unique(), key=zoo.layers(arch).index)
        for shallow, deep in itertools.pairwise(layers):
            a = group[group["layer"] == shallow].set_index(["x", "target"])["instability"]
            b = group[group["layer"] == deep].set_index(["x", "target"])["instability"]
            both = a.index.intersection(b.index)
            n_holds = int((a[both] < b[both]).sum())
            rows.append((setting, arch, shallow, deep, n_holds, len(both)))
    return pd.DataFrame(rows, columns=["setting", "arch", "shallow", "deep", "n_holds", "n_fits"])
