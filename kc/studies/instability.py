"""Table 1 (Sec. 4.2): the fits between pairs of networks and the instability of learning.

``table1_instability`` fits g between pairs of networks (:func:`fits`) and summarises
Var(x_Delta) / Var(x*) per layer (:func:`instability_table`). ``table2_order_variances`` calls
:func:`fits` with the same study, so it reads the same cached fits (identical
:func:`kc.experiments.get_consistency` arguments, hence identical cache keys), and summarises
them with :mod:`kc.studies.orders`.

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
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from kc import experiments as ex
from kc import zoo
from kc.metrics import two_way_instability

CASE1 = "different initializations"
CASE2 = "different training data"
SETTINGS = (CASE1, CASE2)

ARCH_NAMES = {
    "alexnet": "AlexNet",
    "vgg16": "VGG-16",
    "resnet18": "ResNet-18",
    "resnet34": "ResNet-34",
    "resnet50": "ResNet-50",
}
#: Number of weight layers, the "depth" the paper's explanation of Table 1 refers to.
ARCH_DEPTH = {"alexnet": 8, "vgg16": 16, "resnet18": 18, "resnet34": 34, "resnet50": 50}
_LAYER_NAMES = {"last14": "last conv"}

#: The layers of Tables 1 and 2.
PAPER_LAYERS: dict[str, list[str]] = {
    "alexnet": ["conv4", "conv5"],
    "vgg16": ["conv4_3", "conv5_3"],
    "resnet34": ["last14"],
}


def paper_column(arch: str, layer: str) -> str:
    """The paper's column name of a layer, e.g. ``("vgg16", "conv4_3") -> "conv4-3 @ VGG-16"``."""
    if arch not in ARCH_NAMES or layer not in zoo.layers(arch):
        raise ValueError(f"unknown layer {layer!r} of arch {arch!r}")
    return f"{_LAYER_NAMES.get(layer, layer.replace('_', '-'))} @ {ARCH_NAMES[arch]}"


def parse_column(column: str) -> tuple[str, str]:
    """Inverse of :func:`paper_column`: ``"last conv @ ResNet-34" -> ("resnet34", "last14")``."""
    for arch in ARCH_NAMES:
        for layer in zoo.layers(arch):
            if paper_column(arch, layer) == column:
                return arch, layer
    raise ValueError(f"not a layer column of Tables 1-2: {column!r}")


def _depth_rank(arch: str, layer: str) -> tuple[int, int]:
    return ARCH_DEPTH[arch], zoo.layers(arch).index(layer)


# ---------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class InstabilityStudy:
    """The notebook parameters that determine the networks and the fits of Tables 1-2.

    Args mirror the notebooks' parameter cells (CONTRIBUTING.md): ``layers`` maps an
    architecture to its layers (default :data:`PAPER_LAYERS`); ``lam`` is used for all
    features except AlexNet's, which use ``lam_alexnet`` (Sec. 4).
    """

    dataset: str = "fashion-mnist"
    layers: Mapping[str, Sequence[str]] = field(default_factory=lambda: dict(PAPER_LAYERS))
    seeds: Sequence[int] = (0, 1)
    epochs: int = 1
    width: float = 0.125
    input_size: int = 32
    train_limit: int | None = 600
    eval_limit: int | None = None
    optimizer: str = "adam"
    lr: float = 1e-3
    batch_size: int = 64
    order: int = 2
    lam: float = 0.1
    lam_alexnet: float = 8.0
    fit_limit: int = 128
    test_limit: int = 128
    g_epochs: int = 3
    g_lr: float = 1e-2
    g_batch_size: int = 64
    both_directions: bool = False
    device: str = "auto"
    progress: bool = False

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

    def layer_list(self) -> list[tuple[str, str]]:
        """``[(arch, layer), ...]`` in the order of :attr:`layers`."""
        return [(arch, layer) for arch, names in self.layers.items() for layer in names]

    def spec(self, arch: str, seed: int, task: str = "all") -> ex.NetSpec:
        """The network of ``arch`` and ``seed``; the NetSpec every notebook uses for it.

        Case 2's halves (``task`` ``half0`` / ``half1``) are trained on ``train_limit // 2``
        images each, so that each sees half as many images as a Case 1 network.
        """
        limit = self.train_limit
        if task != "all" and limit is not None:
            limit = max(1, limit // 2)
        return ex.NetSpec(
            arch,
            datasets=(self.dataset,),
            task=task,
            seed=seed,
            epochs=self.epochs,
            width=self.width,
            input_size=self.input_size,
            train_limit=limit,
            test_limit=self.eval_limit,
            optimizer=self.optimizer,
            lr=self.lr,
            batch_size=self.batch_size,
        )

    def lam_for(self, arch: str) -> float:
        """lambda of Eq. 2 for features of ``arch`` (8.0 for AlexNet in the paper)."""
        return float(self.lam_alexnet if arch == "alexnet" else self.lam)

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

    def fit(self, x_spec: ex.NetSpec, target_spec: ex.NetSpec, layer: str) -> Any:
        """:func:`kc.experiments.get_consistency` with this study's settings (one cache key)."""
        return ex.get_consistency(
            x_spec,
            layer,
            target_spec,
            layer,
            order=self.order,
            lam=self.lam_for(x_spec.arch),
            fit_limit=self.fit_limit,
            test_limit=self.test_limit,
            g_epochs=self.g_epochs,
            g_lr=self.g_lr,
            g_batch_size=self.g_batch_size,
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
        "column": paper_column(x.arch, layer),
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
    cases = list(cases)
    unknown = [c for c in cases if c not in SETTINGS]
    if unknown:
        raise ValueError(f"unknown cases {unknown}; expected some of {list(SETTINGS)}")
    rows = []
    for arch, layer in study.layer_list():
        if CASE1 in cases:
            for a, b in study.case1_pairs():
                rows.append(_fit_row(study, CASE1, study.spec(arch, a), study.spec(arch, b), layer))
        if CASE2 in cases:
            h0, h1 = (study.spec(arch, study.seeds[0], t) for t in ("half0", "half1"))
            rows.append(_fit_row(study, CASE2, h0, h1, layer))
            rows.append(_fit_row(study, CASE2, h1, h0, layer))
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
    """Rows of :func:`kc.paper.paper_table` with ``arch`` and ``layer`` parsed from the column."""
    out = paper.copy()
    parsed = [parse_column(c) for c in out["column"]]
    out["arch"] = [a for a, _ in parsed]
    out["layer"] = [layer for _, layer in parsed]
    return out


def _fmt(values: Mapping[str, float]) -> str:
    return ", ".join(f"{k} {v:.3f}" for k, v in values.items())


def instability_claims(table: pd.DataFrame, value: str = "instability") -> pd.DataFrame:
    """Check Sec. 4.2's claims on a Table 1 (ours, or :func:`paper_frame` with ``value="value"``).

    Per setting: (a) within each architecture with two or more layers, instability grows with
    depth (conv4 < conv5, conv4_3 < conv5_3); (b) the architectures' mean instability grows with
    their depth (AlexNet < VGG-16 < ResNet-34); (c) the deepest network's layers are the least
    stable of all. Claims whose layers are absent are skipped.

    Returns:
        Columns ``setting, claim, holds, evidence``.
    """
    rows = []
    for setting, group in table.groupby("setting", sort=False):
        vals = {
            (a, layer): float(v)
            for a, layer, v in zip(group["arch"], group["layer"], group[value], strict=True)
        }
        archs = sorted({a for a, _ in vals}, key=lambda a: ARCH_DEPTH[a])
        for arch in archs:
            layers = sorted((layer for a, layer in vals if a == arch), key=zoo.layers(arch).index)
            if len(layers) < 2:
                continue
            seq = [vals[arch, layer] for layer in layers]
            claim = f"{ARCH_NAMES[arch]}: the deeper layer is less stable ({' < '.join(layers)})"
            holds = bool(all(x < y for x, y in itertools.pairwise(seq)))
            rows.append((setting, claim, holds, _fmt(dict(zip(layers, seq, strict=True)))))
        if len(archs) >= 2:
            means = {
                ARCH_NAMES[a]: np.mean([v for (b, _), v in vals.items() if b == a]) for a in archs
            }
            seq = list(means.values())
            claim = f"deeper networks are less stable ({' < '.join(means)}, mean over layers)"
            holds = bool(all(x < y for x, y in itertools.pairwise(seq)))
            rows.append((setting, claim, holds, _fmt(means)))
            deepest = archs[-1]
            low = min(v for (a, _), v in vals.items() if a == deepest)
            rest = {paper_column(a, layer): v for (a, layer), v in vals.items() if a != deepest}
            worst = max(rest, key=rest.__getitem__)
            claim = f"{ARCH_NAMES[deepest]} is the least stable"
            evidence = (
                f"{ARCH_NAMES[deepest]} min {low:.3f} vs the next highest {worst} {rest[worst]:.3f}"
            )
            rows.append((setting, claim, bool(low > rest[worst]), evidence))
    return pd.DataFrame(rows, columns=["setting", "claim", "holds", "evidence"])


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


# ---------------------------------------------------------------------------- claims


def compare_claims(ours: pd.DataFrame, paper: pd.DataFrame) -> pd.DataFrame:
    """Put the outcome of each claim on the paper's numbers beside ours.

    Args:
        ours, paper: frames from :func:`instability_claims` or :func:`order_claims`.

    Returns:
        ``ours`` with ``paper_holds`` and ``paper_evidence`` (NaN where the paper's numbers do
        not allow the check).
    """
    keys = [k for k in ("setting", "claim") if k in ours.columns]
    other = paper[[*keys, "holds", "evidence"]].rename(
        columns={"holds": "paper_holds", "evidence": "paper_evidence"}
    )
    return ours.merge(other, on=keys, how="left")


# ---------------------------------------------------------------------------- figures


def plot_table1(ours: pd.DataFrame, paper: pd.DataFrame) -> Any:
    """Bars of our instability (with min-max range) next to the paper's, per layer and case.

    Args:
        ours: :func:`instability_table`.
        paper: :func:`kc.paper.paper_table` (1).

    Returns:
        The matplotlib figure.
    """
    import matplotlib.pyplot as plt

    settings = [s for s in SETTINGS if s in set(ours["setting"])]
    fig, axes = plt.subplots(1, len(settings), figsize=(5.5 * len(settings), 3.8), squeeze=False)
    for ax, setting in zip(axes[0], settings, strict=True):
        mine = ours[ours["setting"] == setting]
        theirs = paper[paper["setting"] == setting].set_index("column")["value"]
        x = np.arange(len(mine))
        err = np.vstack([mine["instability"] - mine["min"], mine["max"] - mine["instability"]])
        ax.bar(x - 0.2, mine["instability"], 0.4, yerr=err, capsize=3, label="ours")
        ax.bar(x + 0.2, theirs.reindex(mine["column"]).to_numpy(), 0.4, label="paper")
        ax.set_xticks(x, [c.replace(" @ ", "\n") for c in mine["column"]], fontsize=8)
        ax.set_title(f"Case {SETTINGS.index(setting) + 1}: {setting}")
        ax.set_ylabel("Var(x_Delta) / Var(x*)")
        ax.legend()
    fig.tight_layout()
    return fig
