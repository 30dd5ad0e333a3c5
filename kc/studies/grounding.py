"""Grounding the measures: ReSi-style tests with a known answer (beyond the paper).

Three tests of the representation-similarity benchmark ReSi (Klabunde et al.) that port to
small CNNs trained here, each with its own score; knowledge consistency takes part as
``kc_consistency`` = 1 - instability (Eq. 3) and as the order-0 share Var(x(0)) / Var(x*):

* **layer monotonicity** (one network, its conv layers 1..L in order): similarity should fall
  with layer distance. Scores: the violation rate over layer triplets i < j < k (a violation
  is s(i, k) > s(i, j) or s(i, k) > s(j, k); a tie counts half) and the Spearman correlation
  of similarity with minus the layer distance. Pairs are taken shallow -> deep (x = layer i,
  x* = layer j, g pools x to x*'s size).
* **functional difference** (pairs of the Table 1 networks of one architecture: the seeds and
  the two halves): similarity at a layer should fall as the networks' behaviour differs.
  Scores: Spearman of similarity with minus the absolute accuracy difference, and with minus
  the Jensen-Shannon divergence of their softmax outputs on the test images.
* **augmentation** (one network, its features for test images under Gaussian input noise of
  increasing level, several noise draws per level): representations of one level form a
  group. Scores: the violation rate over noise-level triplets (as above, on the mean
  similarity between levels) and the AUPRC of similarity for "same level" over all pairs.

Every score is oriented so that it is better when lower (violation rates) or higher (the
rest); :func:`winners` names the best measure of each score.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from kc import experiments as ex
from kc import zoo
from kc.claims import Claim, check, untestable
from kc.data import make_task
from kc.similarity import PROPERTIES, compare_all, ridge_r2
from kc.studies.baselines import (
    _G_FIELDS,
    _NET_FIELDS,
    BEYOND,
    MAPS,
    kc_columns,
    oriented,
    pick,
    table1_spec,
)

__all__ = [
    "MEASURES",
    "SCORES",
    "Result",
    "Settings",
    "auprc",
    "claims",
    "conv_features",
    "js_divergence",
    "plot_grounding",
    "run",
    "scores",
    "spearman",
    "violation_rate",
    "winners",
]

#: The measures that take part: every baseline, then knowledge consistency.
MEASURES = (*PROPERTIES, "kc_consistency", "share_x0")
#: Score name -> (test, True if lower is better).
SCORES = {
    "layer_violation": ("layer monotonicity", True),
    "layer_spearman": ("layer monotonicity", False),
    "func_acc_spearman": ("functional difference", False),
    "func_jsd_spearman": ("functional difference", False),
    "aug_violation": ("augmentation", True),
    "aug_auprc": ("augmentation", False),
}


# ---------------------------------------------------------------------------- scores


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation (average ranks for ties); NaN if either side is constant.

    Example:
        >>> spearman([1, 2, 3], [10, 20, 30]), spearman([1, 2, 3], [3, 2, 1])
        (1.0, -1.0)
    """
    ra, rb = pd.Series(a, dtype=float).rank(), pd.Series(b, dtype=float).rank()
    if len(ra) != len(rb) or len(ra) < 2:
        raise ValueError(f"need two sequences of equal length >= 2, got {len(ra)} and {len(rb)}")
    if ra.nunique() < 2 or rb.nunique() < 2:
        return math.nan
    return float(np.corrcoef(ra, rb)[0, 1])


def violation_rate(sim: Mapping[tuple[int, int], float], n: int) -> float:
    """Share of violated comparisons over the triplets i < j < k of positions 0..n-1.

    Each triplet makes two comparisons, s(i, k) <= s(i, j) and s(i, k) <= s(j, k) (the far
    pair should be the least similar); a strict violation counts 1, a tie 1/2.

    Args:
        sim: similarity (higher = more similar) of each pair (i, j), i < j.
        n: number of positions (layers or noise levels), >= 3.

    Example:
        >>> s = {(0, 1): 0.9, (0, 2): 0.5, (1, 2): 0.8}
        >>> violation_rate(s, 3)
        0.0
    """
    if n < 3:
        raise ValueError(f"violation rates need at least 3 positions, got {n}")
    bad, total = 0.0, 0
    for i, j, k in itertools.combinations(range(n), 3):
        far = sim[i, k]
        for near in (sim[i, j], sim[j, k]):
            bad += 1.0 if far > near else 0.5 if far == near else 0.0
            total += 1
    return bad / total


def auprc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Area under the precision-recall curve (average precision) of ``scores`` for ``labels``.

    Tied scores are ranked pessimistically (negatives first within a tie), so a measure that
    cannot tell the groups apart gets no credit for the order of its ties.

    Example:
        >>> auprc([0.9, 0.8, 0.1, 0.2], [True, True, False, False])
        1.0
    """
    s, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=bool)
    if s.shape != y.shape or not y.any():
        raise ValueError(f"need equal lengths and at least one positive, got {s.shape} {y.sum()}")
    order = np.lexsort((y, -s))  # by score descending, negatives first among ties
    hits = y[order]
    precision = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision[hits].mean())


def js_divergence(p: Tensor, q: Tensor) -> float:
    """Mean over samples of the Jensen-Shannon divergence (base 2, in [0, 1]) of two
    probability vectors per sample, ``p`` and ``q`` of shape (N, classes)."""
    if p.shape != q.shape:
        raise ValueError(f"p and q must have the same shape, got {tuple(p.shape)} {tuple(q.shape)}")
    p, q = p.double().clamp_min(1e-12), q.double().clamp_min(1e-12)
    m = (p + q) / 2
    kl = lambda a, b: (a * (a / b).log2()).sum(1)  # noqa: E731
    return float(((kl(p, m) + kl(q, m)) / 2).mean())


# ---------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    """The grounding notebook's parameters (CONTRIBUTING.md; Table 1's network and g names).

    Attributes beyond Table 1's: ``arch`` (GROUNDING_ARCH, an architecture with plain conv
    layers: alexnet or vgg16), ``layer`` (the last of LAYERS[arch], where the functional and
    augmentation tests look), ``noise_levels`` (NOISE_LEVELS, input noise std in units of the
    images' std) and ``noise_repeats`` (NOISE_REPEATS, noise draws per level).
    """

    dataset: str
    seeds: Sequence[int]
    epochs: int
    width: float
    input_size: int
    train_limit: int | None
    eval_limit: int | None
    optimizer: str
    lr: float
    batch_size: int
    order: int
    lam: float
    lam_alexnet: float
    fit_limit: int
    test_limit: int
    g_steps: int
    g_lr: float
    g_batch_size: int
    arch: str = "alexnet"
    layer: str = "conv5"
    noise_levels: Sequence[float] = (0.0, 0.5, 1.0)
    noise_repeats: int = 2
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.arch not in ("alexnet", "vgg16"):
            raise ValueError(f"GROUNDING_ARCH must be alexnet or vgg16, got {self.arch!r}")
        if self.layer not in zoo.layers(self.arch):
            raise ValueError(f"unknown layer {self.layer!r} of {self.arch}")
        levels = tuple(float(v) for v in self.noise_levels)
        if any(v < 0 for v in levels) or len(set(levels)) != len(levels):
            raise ValueError(f"NOISE_LEVELS must be distinct and >= 0, got {list(levels)}")
        if self.noise_repeats < 1:
            raise ValueError(f"NOISE_REPEATS must be >= 1, got {self.noise_repeats}")
        object.__setattr__(self, "noise_levels", tuple(sorted(levels)))
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Settings:
        """From the notebook's parameters (Table 1's names, LAYERS, GROUNDING_ARCH,
        NOISE_LEVELS, NOISE_REPEATS, DEVICE)."""
        p = pick(params, {**_NET_FIELDS, **_G_FIELDS, "DEVICE": "device"})
        extra = pick(params, {"GROUNDING_ARCH": "arch", "NOISE_LEVELS": "noise_levels",
                              "NOISE_REPEATS": "noise_repeats", "LAYERS": "layers"})  # fmt: skip
        layers = dict(extra.pop("layers")).get(extra["arch"]) or zoo.layers(extra["arch"])
        return cls(**p, **extra, layer=list(layers)[-1])

    @property
    def lam_arch(self) -> float:
        """lambda of Eq. 2 for this architecture's features (LAMBDA_ALEXNET for AlexNet)."""
        return float(self.lam_alexnet if self.arch == "alexnet" else self.lam)

    def networks(self) -> list[ex.NetSpec]:
        """The functional test's networks: one per seed, then the two halves of the first."""
        out = [table1_spec(self, self.arch, s) for s in self.seeds]
        return out + [table1_spec(self, self.arch, self.seeds[0], t) for t in ("half0", "half1")]


# ---------------------------------------------------------------------------- features


def conv_features(model: nn.Module, images: Tensor, batch_size: int = 256) -> dict[str, Tensor]:
    """The output of every convolution's ReLU in ``model.features`` (AlexNet/VGG layout).

    Returns:
        ``{"conv1": (N, C1, H1, W1), "conv2": ...}`` in the network's order, float32 on the CPU
        (conv4 and conv5 of AlexNet are :func:`kc.zoo.features`'s layers of those names).
    """
    feats = getattr(model, "features", None)
    if not isinstance(feats, nn.Sequential):
        raise ValueError(
            f"expected a model with a .features Sequential, got {type(model).__name__}"
        )
    relus, seen_conv = [], False
    for m in feats:
        if isinstance(m, nn.Conv2d):
            seen_conv = True
        elif isinstance(m, nn.ReLU) and seen_conv:
            relus.append(m)
            seen_conv = False
    out: dict[str, list[Tensor]] = {f"conv{i + 1}": [] for i in range(len(relus))}
    hooks = [
        r.register_forward_hook(lambda _m, _i, o, name=f"conv{i + 1}": out[name].append(o.cpu()))
        for i, r in enumerate(relus)
    ]
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        with torch.no_grad():
            for start in range(0, images.shape[0], batch_size):
                feats(images[start : start + batch_size].to(device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return {k: torch.cat(v).float() for k, v in out.items()}


def _images(s: Settings, split: str, limit: int | None) -> Tensor:
    """The images of ``get_features`` (same task, subset and seed), stacked."""
    ds = make_task("all", (s.dataset,), split, image_size=s.input_size, limit=limit,
                   seed=ex.DATA_SEED)  # fmt: skip
    return torch.stack([ds[i][0] for i in range(len(ds))])


def _outputs(model: nn.Module, images: Tensor) -> Tensor:
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad():
        return torch.cat([model(images[i : i + 256].to(device)).softmax(1).cpu()
                          for i in range(0, len(images), 256)])  # fmt: skip


# ---------------------------------------------------------------------------- running


@dataclass(frozen=True)
class Result:
    """Pairs of every test with every measure (``pairs``), and the networks (``networks``)."""

    pairs: pd.DataFrame
    networks: pd.DataFrame
    settings: Settings = field(repr=False)


def _fit_tensors(s: Settings, train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor]) -> dict:
    """g on feature tensors that are not named layers (hooks, noisy inputs). Same budget as
    the ``get_consistency`` fits: at most ``G_STEPS`` optimiser steps."""
    from kc.fit import consistency

    res = consistency(
        train[0], train[1], order=s.order, lam=s.lam_arch, test=test,
        resize="pool" if train[0].shape[2:] != train[1].shape[2:] else None,
        max_steps=s.g_steps, batch_size=s.g_batch_size, lr=s.g_lr, seed=0, progress=False,
        device=ex.tr.resolve_device(s.device),
    )  # fmt: skip
    return kc_columns(res.variances, res.instability, s.order)


def _measures(train: tuple[Tensor, Tensor], test: tuple[Tensor, Tensor]) -> dict[str, float]:
    row = compare_all(test[0], test[1], maps=MAPS)
    row["ridge_r2"] = ridge_r2(train[0], train[1], test=test, maps=MAPS)
    return row


def _layer_rows(s: Settings, train_images: Tensor, test_images: Tensor, progress: bool) -> list:
    rows = []
    for seed in s.seeds:
        net = ex.get_net(table1_spec(s, s.arch, seed), device=s.device, progress=progress)
        ftr, fte = conv_features(net.model, train_images), conv_features(net.model, test_images)
        names = list(ftr)
        for i, j in itertools.combinations(range(len(names)), 2):
            a, b = names[i], names[j]
            tr_, te_ = (ftr[a], ftr[b]), (fte[a], fte[b])
            row = {"test": "layer", "network": net.label, "a": a, "b": b, "i": i, "j": j}
            rows.append({**row, **_measures(tr_, te_), **_fit_tensors(s, tr_, te_)})
    return rows


def _functional_rows(s: Settings, test_images: Tensor, progress: bool) -> tuple[list, list]:
    specs = s.networks()
    nets = [ex.get_net(sp, device=s.device, progress=progress) for sp in specs]
    probs = [_outputs(n.model, test_images) for n in nets]
    feats = {}
    for sp in specs:
        for split, lim in (("train", s.fit_limit), ("test", s.test_limit)):
            feats[sp.label, split] = ex.get_features(
                sp, s.layer, split=split, task="all", limit=lim, device=s.device, progress=False
            )[0]
    rows = []
    for i, j in itertools.combinations(range(len(specs)), 2):
        a, b = specs[i], specs[j]
        tr_ = (feats[a.label, "train"], feats[b.label, "train"])
        te_ = (feats[a.label, "test"], feats[b.label, "test"])
        both = [_kc_pair(s, x, t, progress) for x, t in ((a, b), (b, a))]
        kc = {k: float(np.mean([d[k] for d in both])) for k in both[0]}
        rows.append({
            "test": "functional", "network": s.arch, "a": a.label, "b": b.label, "i": i, "j": j,
            "acc_diff": abs(nets[i].accuracy - nets[j].accuracy),
            "jsd": js_divergence(probs[i], probs[j]), **_measures(tr_, te_), **kc,
        })  # fmt: skip
    table = [{"network": n.label, "task": sp.task, "seed": sp.seed, "accuracy": n.accuracy}
             for n, sp in zip(nets, specs, strict=True)]  # fmt: skip
    return rows, table


def _kc_pair(s: Settings, x: ex.NetSpec, t: ex.NetSpec, progress: bool) -> dict:
    # The study's one call of get_consistency (Table 1's arguments, so its fits are reused).
    res = ex.get_consistency(
        x, s.layer, t, s.layer, task="all", order=s.order, lam=s.lam_arch,
        fit_limit=s.fit_limit, test_limit=s.test_limit, g_steps=s.g_steps, g_lr=s.g_lr,
        g_batch_size=s.g_batch_size, device=s.device, progress=progress,
    )  # fmt: skip
    return kc_columns(res.variances, res.instability, s.order)


def noisy(images: Tensor, level: float, seed: int) -> Tensor:
    """``images`` plus Gaussian noise of std ``level`` times the images' std (seeded)."""
    gen = torch.Generator().manual_seed(seed)
    return images + level * images.std() * torch.randn(images.shape, generator=gen)


def _augmentation_rows(s: Settings, train_images: Tensor, test_images: Tensor, progress: bool):
    net = ex.get_net(table1_spec(s, s.arch, s.seeds[0]), device=s.device, progress=progress)
    reps = []
    for li, level in enumerate(s.noise_levels):
        for r in range(s.noise_repeats):
            seed = 1000 * li + r
            tr_ = zoo.features(net.model, s.arch, s.layer, noisy(train_images, level, seed))
            te_ = zoo.features(net.model, s.arch, s.layer, noisy(test_images, level, seed + 1))
            reps.append((li, r, tr_, te_))
    rows = []
    for p, q in itertools.combinations(range(len(reps)), 2):
        (la, ra, tra, tea), (lb, rb, trb, teb) = reps[p], reps[q]
        tr_, te_ = (tra, trb), (tea, teb)
        rows.append({
            "test": "augmentation", "network": net.label, "a": f"{s.noise_levels[la]}#{ra}",
            "b": f"{s.noise_levels[lb]}#{rb}", "i": la, "j": lb, "same_group": la == lb,
            **_measures(tr_, te_), **_fit_tensors(s, tr_, te_),
        })  # fmt: skip
    return rows


def run(settings: Settings, *, progress: bool = True) -> Result:
    """Every pair of the three tests, with every measure of :data:`MEASURES`."""
    train_images = _images(settings, "train", settings.fit_limit)
    test_images = _images(settings, "test", settings.test_limit)
    rows = _layer_rows(settings, train_images, test_images, progress)
    func, nets = _functional_rows(settings, test_images, progress)
    rows += func
    rows += _augmentation_rows(settings, train_images, test_images, progress)
    return Result(pd.DataFrame(rows), pd.DataFrame(nets), settings)


# ---------------------------------------------------------------------------- tables


def _sim(group: pd.DataFrame, measure: str) -> dict[tuple[int, int], float]:
    vals = oriented(group, [measure])[measure]
    return {(int(i), int(j)): float(v)
            for i, j, v in zip(group["i"], group["j"], vals, strict=True)}  # fmt: skip


def scores(pairs: pd.DataFrame, measures: Sequence[str] = MEASURES) -> pd.DataFrame:
    """The six scores of :data:`SCORES` for every measure (NaN where a test lacks the data:
    fewer than 3 layers, networks or noise levels).

    Layer scores are averaged over the networks; augmentation violations use the mean
    similarity of two levels over their noise draws (within a level: excluded).

    Returns:
        One row per measure, one column per score.
    """
    out = {m: dict.fromkeys(SCORES, math.nan) for m in measures}
    layer = pairs[pairs["test"] == "layer"]
    func = pairs[pairs["test"] == "functional"]
    aug = pairs[pairs["test"] == "augmentation"].copy()
    if len(aug):
        aug["same_group"] = aug["same_group"].astype(bool)
    for m in measures:
        viol, rho = [], []
        for _, g in layer.groupby("network"):
            n = int(max(g["j"].max(), g["i"].max())) + 1
            if n < 3:  # fewer than 3 layers: no triplet, no ranking of distances
                continue
            sim = _sim(g, m)
            rho.append(spearman(list(sim.values()), [-(j - i) for i, j in sim]))
            viol.append(violation_rate(sim, n))
        out[m]["layer_violation"] = float(np.mean(viol)) if viol else math.nan
        out[m]["layer_spearman"] = float(np.nanmean(rho)) if np.isfinite(rho).any() else math.nan
        if len(func) >= 3:
            sim = oriented(func, [m])[m]
            out[m]["func_acc_spearman"] = spearman(sim, -func["acc_diff"])
            out[m]["func_jsd_spearman"] = spearman(sim, -func["jsd"])
        if len(aug) and aug["same_group"].any():
            cross = aug[~aug["same_group"]].assign(s=oriented(aug, [m])[m])
            levels = int(max(aug["i"].max(), aug["j"].max())) + 1
            if levels >= 3:
                mean = cross.groupby(["i", "j"])["s"].mean()
                sim = {(int(i), int(j)): float(v) for (i, j), v in mean.items()}
                out[m]["aug_violation"] = violation_rate(sim, levels)
            out[m]["aug_auprc"] = auprc(oriented(aug, [m])[m], aug["same_group"])
    return pd.DataFrame(out).T.rename_axis("measure").reset_index()


def winners(table: pd.DataFrame) -> pd.DataFrame:
    """The best measure of each score of :func:`scores` (ties: all best measures, joined).

    Returns:
        Columns ``score, test, better, best, value, kc_consistency, share_x0, linear_cka``.
    """
    rows = []
    t = table.set_index("measure")
    for score, (test, lower) in SCORES.items():
        col = t[score].dropna()
        if col.empty:
            continue
        best_val = col.min() if lower else col.max()
        best = ", ".join(col.index[np.isclose(col, best_val)])
        rows.append(
            {
                "score": score,
                "test": test,
                "better": "lower" if lower else "higher",
                "best": best,
                "value": float(best_val),
                **{
                    m: float(t.loc[m, score])
                    for m in ("kc_consistency", "share_x0", "linear_cka")
                    if m in t.index
                },
            }
        )
    return pd.DataFrame(rows)


def claims(table: pd.DataFrame) -> list[Claim]:
    """Per test: knowledge consistency (1 - instability) scores at least as well as linear
    CKA, the most used baseline, on both of the test's scores. "not testable" when the test
    lacks the data (NaN scores)."""
    t = table.set_index("measure")
    out = []
    for test in dict.fromkeys(test for test, _ in SCORES.values()):
        names = [s for s, (tt, _) in SCORES.items() if tt == test]
        cid = "grounding." + test.split()[0]
        text = f"{test}: 1 - instability scores at least as well as linear CKA"
        kc = {s: float(t.loc["kc_consistency", s]) for s in names}
        cka = {s: float(t.loc["linear_cka", s]) for s in names}
        if any(math.isnan(v) for v in [*kc.values(), *cka.values()]):
            undefined = [s for s in names if math.isnan(kc[s]) or math.isnan(cka[s])]
            out.append(untestable(cid, BEYOND, text,
                                  f"{', '.join(undefined)} undefined: too few layers, networks "
                                  "or noise levels, or the measure or the functional difference "
                                  "is constant over the pairs (e.g. networks all at chance)"))  # fmt: skip
            continue
        holds = all(kc[s] <= cka[s] + 1e-12 if SCORES[s][1] else kc[s] >= cka[s] - 1e-12
                    for s in names)  # fmt: skip
        best = {s: t[s].idxmin() if SCORES[s][1] else t[s].idxmax() for s in names}
        evidence = "; ".join(f"{s}: KC {kc[s]:.2f} vs CKA {cka[s]:.2f} (best {best[s]})"
                             for s in names)  # fmt: skip
        numbers = {f"kc_{s}": kc[s] for s in names} | {f"cka_{s}": cka[s] for s in names}
        out.append(check(cid, BEYOND, text, bool(holds), evidence=evidence, numbers=numbers))
    return out


# ---------------------------------------------------------------------------- figures


def plot_grounding(table: pd.DataFrame) -> Any:
    """One panel per score: each measure's value, knowledge consistency highlighted."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    names = [s for s in SCORES if table[s].notna().any()]
    fig, axes = plt.subplots(1, max(1, len(names)), figsize=(2.6 * max(1, len(names)), 3.8),
                             sharey=True, squeeze=False)  # fmt: skip
    palette = {m: ("tab:red" if m in ("kc_consistency", "share_x0") else "tab:blue")
               for m in table["measure"]}  # fmt: skip
    for ax, score in zip(axes[0], names, strict=False):
        sns.barplot(table, y="measure", x=score, hue="measure", palette=palette, ax=ax,
                    legend=False)  # fmt: skip
        lower = SCORES[score][1]
        ax.set_title(f"{score}\n({'lower' if lower else 'higher'} is better)", fontsize=9)
        ax.set_xlabel("")
    fig.tight_layout()
    return fig
