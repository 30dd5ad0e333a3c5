"""Knowledge consistency beside the similarity measures practitioners use (beyond the paper).

For the network pairs and layers of Table 1 (Case 1: seed pairs, Case 2: the two halves in
both directions) one row holds every measure of :func:`kc.similarity.compare_all` on the
held-out features, next to the instability and the order shares Var(x(k)) / Var(x*) of the
fitted g (Eq. 1-3). :func:`agreement` ranks the rows by each measure and correlates the ranks
(Spearman) to say where the measures agree; :func:`planted_case` builds a target that is a
purely nonlinear function of the source plus noise (:mod:`kc.planted`), the case where every
linear measure should see nothing and orders >= 1 of g should see the planted share.

The networks are the Table 1 notebook's (:func:`table1_spec` builds the same
:class:`kc.experiments.NetSpec`, so the cache is shared); g is fitted with the same arguments
as there, so the Table 1 fits are read from the cache too.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from kc import experiments as ex
from kc import zoo
from kc.claims import Claim, check, untestable
from kc.similarity import PROPERTIES, compare_all, ridge_r2

__all__ = [
    "BEYOND",
    "LINEAR_MEASURES",
    "Result",
    "Settings",
    "agreement",
    "agreement_account",
    "claims",
    "oriented",
    "planted_case",
    "plot_baselines",
    "plot_planted_case",
    "run",
    "table1_spec",
]

BEYOND = "Beyond the paper"
CASE1 = "different initializations"
CASE2 = "different training data"
#: Measures of :mod:`kc.similarity` that see linear relations only.
LINEAR_MEASURES = ("linear_cka", "svcca", "pwcca", "procrustes", "ridge_r2")
#: Columns of knowledge consistency in the table: 1 - instability and the order shares.
KC_MEASURES = ("kc_consistency", "share_x0", "share_higher")
MAPS = "flatten"
"""The rule for maps of every baseline here (one sample per image, C*H*W features)."""

_NET_FIELDS = {
    "DATASET": "dataset",
    "EPOCHS": "epochs",
    "WIDTH": "width",
    "INPUT_SIZE": "input_size",
    "TRAIN_LIMIT": "train_limit",
    "EVAL_LIMIT": "eval_limit",
    "OPTIMIZER": "optimizer",
    "LR": "lr",
    "BATCH_SIZE": "batch_size",
    "SEEDS": "seeds",
}
_G_FIELDS = {
    "ORDER": "order",
    "LAMBDA": "lam",
    "LAMBDA_ALEXNET": "lam_alexnet",
    "FIT_LIMIT": "fit_limit",
    "TEST_LIMIT": "test_limit",
    "G_STEPS": "g_steps",
    "G_LR": "g_lr",
    "G_BATCH_SIZE": "g_batch_size",
}


def pick(params: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """``{field: params[NAME]}``; a ValueError lists every missing parameter name."""
    missing = [n for n in names if n not in params]
    if missing:
        raise ValueError(f"the notebook parameters lack {missing}; they have {sorted(params)}")
    return {f: params[n] for n, f in names.items()}


def table1_spec(s: Any, arch: str, seed: int, task: str = "all") -> ex.NetSpec:
    """The Table 1 notebook's network of ``arch``/``seed``/``task`` (identical NetSpec, so
    identical cache key): the halves ``half0``/``half1`` see ``train_limit // 2`` images.

    Args:
        s: settings with the fields of :data:`_NET_FIELDS` (any study of this package).
    """
    limit = s.train_limit
    if task != "all" and limit is not None:
        limit = max(1, limit // 2)
    return ex.NetSpec(
        arch,
        datasets=(s.dataset,),
        task=task,
        seed=seed,
        epochs=s.epochs,
        width=s.width,
        input_size=s.input_size,
        train_limit=limit,
        test_limit=s.eval_limit,
        optimizer=s.optimizer,
        lr=s.lr,
        batch_size=s.batch_size,
    )


# ---------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    """Networks, layers, g's fit and the planted case of the baselines notebook.

    Build it with :meth:`from_params` from the notebook's parameters (CONTRIBUTING.md). The
    network and g fields mean what they mean in the Table 1 notebook; ``planted_*`` are the
    planted benchmark's (``PLANTED_N`` samples, ``PLANTED_STEPS`` optimiser steps of g,
    ``PLANTED_SEEDS``).
    """

    dataset: str
    layers: Mapping[str, Sequence[str]]
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
    planted_n: int = 384
    planted_steps: int = 150
    planted_seeds: Sequence[int] = (0,)
    both_directions: bool = False
    device: str = "auto"

    def __post_init__(self) -> None:
        layers = {str(a): tuple(ls) for a, ls in dict(self.layers).items()}
        if not layers or any(not ls for ls in layers.values()):
            raise ValueError(f"LAYERS must map each arch to at least one layer, got {layers}")
        for arch, names in layers.items():
            if arch not in zoo.ARCHS:
                raise ValueError(f"unknown arch {arch!r}; expected one of {list(zoo.ARCHS)}")
            bad = [n for n in names if n not in zoo.layers(arch)]
            if bad:
                raise ValueError(f"unknown layers {bad} of {arch}; expected {zoo.layers(arch)}")
        seeds = tuple(int(s) for s in self.seeds)
        if len(set(seeds)) < 2 or len(set(seeds)) != len(seeds):
            raise ValueError(f"SEEDS must be at least two distinct values, got {list(seeds)}")
        if self.planted_n < 16 or self.planted_steps < 1 or not self.planted_seeds:
            raise ValueError(
                f"need PLANTED_N >= 16, PLANTED_STEPS >= 1 and a seed, got {self.planted_n}, "
                f"{self.planted_steps}, {list(self.planted_seeds)}"
            )
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "seeds", seeds)
        object.__setattr__(self, "planted_seeds", tuple(int(s) for s in self.planted_seeds))

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Settings:
        """From the notebook's parameters: the Table 1 names plus ``LAYERS``,
        ``BOTH_DIRECTIONS``, ``PLANTED_N``, ``PLANTED_STEPS``, ``PLANTED_SEEDS``, ``DEVICE``."""
        extra = {
            "LAYERS": "layers",
            "BOTH_DIRECTIONS": "both_directions",
            "PLANTED_N": "planted_n",
            "PLANTED_STEPS": "planted_steps",
            "PLANTED_SEEDS": "planted_seeds",
            "DEVICE": "device",
        }
        return cls(**pick(params, {**_NET_FIELDS, **_G_FIELDS, **extra}))

    def lam_for(self, arch: str) -> float:
        """lambda of Eq. 2 for features of ``arch`` (LAMBDA_ALEXNET for AlexNet)."""
        return float(self.lam_alexnet if arch == "alexnet" else self.lam)

    def pairs(self, arch: str) -> list[tuple[str, ex.NetSpec, ex.NetSpec]]:
        """``(setting, x network, x* network)`` of Table 1's fits for ``arch``."""
        out = []
        seed_pairs = list(itertools.combinations(self.seeds, 2))
        if self.both_directions:
            seed_pairs += [(b, a) for a, b in seed_pairs]
        for a, b in seed_pairs:
            out.append((CASE1, table1_spec(self, arch, a), table1_spec(self, arch, b)))
        h0, h1 = (table1_spec(self, arch, self.seeds[0], t) for t in ("half0", "half1"))
        out += [(CASE2, h0, h1), (CASE2, h1, h0)]
        return out


# ---------------------------------------------------------------------------- running


@dataclass(frozen=True)
class Result:
    """What :func:`run` computed.

    Attributes:
        table: one row per fit (setting, arch, layer, x, target): every baseline, the
            instability, ``kc_consistency`` = 1 - instability and the order shares.
        planted: :func:`planted_case`'s rows (one per seed and kind of pair).
    """

    table: pd.DataFrame
    planted: pd.DataFrame
    settings: Settings = field(repr=False)


def _fit(s: Settings, x: ex.NetSpec, t: ex.NetSpec, layer: str, progress: bool) -> Any:
    # The study's one call of get_consistency (the same arguments as Table 1's fits).
    return ex.get_consistency(
        x,
        layer,
        t,
        layer,
        order=s.order,
        lam=s.lam_for(x.arch),
        fit_limit=s.fit_limit,
        test_limit=s.test_limit,
        g_steps=s.g_steps,
        g_lr=s.g_lr,
        g_batch_size=s.g_batch_size,
        device=s.device,
        progress=progress,
    )


def _features(s: Settings, spec: ex.NetSpec, layer: str, split: str, limit: int) -> Any:
    task = "all" if spec.task in ("half0", "half1") else spec.task
    return ex.get_features(spec, layer, split=split, task=task, limit=limit, device=s.device,
                           progress=False)[0]  # fmt: skip


def kc_columns(variances: Mapping[str, float], instability: float, order: int) -> dict:
    """``instability``, ``kc_consistency`` = 1 - instability, ``share_x<k>`` =
    Var(x(k)) / Var(x*) for k <= K and ``share_higher`` (their sum over k >= 1)."""
    total = float(variances["Var(x*)"])
    row = {"instability": float(instability), "kc_consistency": 1.0 - float(instability)}
    for k in range(order + 1):
        row[f"share_x{k}"] = float(variances[f"Var(x{k})"]) / total
    row["share_higher"] = sum(row[f"share_x{k}"] for k in range(1, order + 1))
    return row


def run(settings: Settings, *, progress: bool = True) -> Result:
    """Every baseline and g's decomposition for every Table 1 pair and layer, and the planted
    case. Baselines are computed on the ``TEST_LIMIT`` held-out images on which g is scored;
    ``ridge_r2`` is fitted on the ``FIT_LIMIT`` images g is fitted on (the same split)."""
    rows = []
    for arch, layers in settings.layers.items():
        for layer in layers:
            for setting, x, t in settings.pairs(arch):
                res = _fit(settings, x, t, layer, progress)
                xf = _features(settings, x, layer, "train", settings.fit_limit)
                tf = _features(settings, t, layer, "train", settings.fit_limit)
                xt = _features(settings, x, layer, "test", settings.test_limit)
                tt = _features(settings, t, layer, "test", settings.test_limit)
                row: dict[str, Any] = {
                    "setting": setting, "arch": arch, "layer": layer,
                    "x": x.label, "target": t.label,
                    "n_test": int(xt.shape[0]), "d_x": int(np.prod(xt.shape[1:])),
                }  # fmt: skip
                row.update(compare_all(xt, tt, maps=MAPS))
                row["ridge_r2"] = ridge_r2(xf, tf, test=(xt, tt), maps=MAPS)
                row.update(kc_columns(res.variances, res.instability, settings.order))
                rows.append(row)
    planted = planted_case(
        n=settings.planted_n,
        order=settings.order,
        lam=settings.lam,
        steps=settings.planted_steps,
        seeds=settings.planted_seeds,
    )
    return Result(pd.DataFrame(rows), planted, settings)


# ---------------------------------------------------------------------------- agreement


def oriented(table: pd.DataFrame, measures: Sequence[str]) -> pd.DataFrame:
    """The columns ``measures`` with every one turned so that higher means more similar
    (Procrustes distance is negated; :data:`kc.similarity.PROPERTIES`)."""
    out = table[list(measures)].astype(float).copy()
    for m in measures:
        if m in PROPERTIES and not PROPERTIES[m]["higher_is_similar"]:
            out[m] = -out[m]
    return out


def measure_columns(table: pd.DataFrame) -> list[str]:
    """The baselines and the KC columns present in ``table``, in display order."""
    names = [*PROPERTIES, *KC_MEASURES]
    return [m for m in names if m in table.columns]


def agreement(table: pd.DataFrame, measures: Sequence[str] | None = None) -> pd.DataFrame:
    """Spearman rank correlation between every two measures across the rows of ``table``
    (all oriented so that higher means more similar). A measure that is constant over the
    rows has NaN correlations (it cannot rank them).

    Returns:
        A square DataFrame indexed and columned by measure.
    """
    measures = list(measures or measure_columns(table))
    if len(table) < 3:
        raise ValueError(f"rank correlations need at least 3 rows, got {len(table)}")
    vals = oriented(table, measures)
    spread = vals.max() - vals.min()
    # A measure flat to rounding (e.g. PWCCA saturated at 1 when d >= n) cannot rank the rows.
    flat = spread <= 1e-6 * np.maximum(1.0, vals.abs().max())
    corr = vals.rank().corr(method="pearson")
    corr.loc[flat, :] = np.nan
    corr.loc[:, flat] = np.nan
    return corr


def agreement_account(corr: pd.DataFrame, *, threshold: float = 0.5) -> pd.DataFrame:
    """Where the measures agree and disagree, from :func:`agreement`.

    Returns:
        One row per unordered pair of measures: ``a, b, spearman, agree`` (rho >= threshold),
        ``disagree`` (rho <= 0) , sorted by rho, NaN pairs last.
    """
    rows = []
    for a, b in itertools.combinations(corr.index, 2):
        rho = float(corr.loc[a, b])
        rows.append({"a": a, "b": b, "spearman": rho, "agree": rho >= threshold,
                     "disagree": rho <= 0})  # fmt: skip
    out = pd.DataFrame(rows).sort_values("spearman", ascending=False, na_position="last")
    return out.reset_index(drop=True)


# ---------------------------------------------------------------------------- planted case


def planted_case(
    *,
    n: int,
    order: int,
    lam: float,
    steps: int,
    seeds: Sequence[int] = (0,),
    depth: int = 2,
    noise: float = 0.1,
) -> pd.DataFrame:
    """Three planted pairs per seed, all measures and g on each (:func:`kc.planted.recover`):

    * ``nonlinear``: x* is a purely nonlinear function of x (linear share 0) plus ``noise``;
    * ``linear``: x* a linear function of x (depth 0) plus the same noise share;
    * ``unrelated``: x* is independent of x (noise share 1 - 1e-9, the null of each measure).

    Returns:
        One row per (seed, kind): the planted shares, g's shares, the instability and every
        baseline (:func:`kc.similarity.compare_all`, on 4x4 maps flattened).
    """
    from kc.planted import planted_pair, recover

    rows = []
    for seed in seeds:
        kinds = {
            "nonlinear": planted_pair(depth, noise=noise, linear_share=0.0, n=n, size=4, seed=seed),
            "linear": planted_pair(0, noise=noise, n=n, size=4, seed=seed),
            "unrelated": planted_pair(0, noise=1.0 - 1e-9, n=n, size=4, seed=seed),
        }
        for kind, pair in kinds.items():
            train, test = pair.split(n // 2)
            row = {"kind": kind, "seed": seed, "depth": pair.depth, "n": n, "lam": lam}
            row.update(recover(train, test, order=order, lam=lam, steps=steps, seed=seed))
            row["kc_consistency"] = 1.0 - row["instability"]
            rows.append(row)
    return pd.DataFrame(rows)


def detection(planted: pd.DataFrame) -> pd.DataFrame:
    """How far each measure moves from its null (``unrelated``) towards its optimum
    (:data:`kc.similarity.PROPERTIES` ``identical``) on the nonlinear and linear plants:
    0 = no better than unrelated features, 1 = as for identical features. Mean over seeds.

    Returns:
        Columns ``measure, nonlinear, linear, unrelated_value``.
    """
    means = planted.groupby("kind")[[*PROPERTIES, "kc_consistency", "share_higher"]].mean()
    rows = []
    for m in means.columns:
        ident = PROPERTIES[m]["identical"] if m in PROPERTIES else 1.0
        null = float(means.loc["unrelated", m])
        gap = ident - null
        score = {k: (float(means.loc[k, m]) - null) / gap if gap else math.nan
                 for k in ("nonlinear", "linear")}  # fmt: skip
        rows.append({"measure": m, **score, "unrelated_value": null})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------- claims


def claims(result: Result, *, miss: float = 0.2, min_rows: int = 4) -> list[Claim]:
    """Beyond-the-paper claims of the baselines notebook, computed from ``result``.

    * ``baselines.kc_vs_linear_cka``: 1 - instability ranks the Table 1 rows as linear CKA
      does (Spearman > 0);
    * ``baselines.linear_agree``: the linear measures rank the rows alike (mean pairwise
      Spearman >= 0.5);
    * ``baselines.planted_linear_miss``: on the purely nonlinear plant every linear measure
      stays within ``miss`` of its null (:func:`detection`);
    * ``baselines.planted_orders_recover``: orders >= 1 of g take at least half the planted
      nonlinear share.

    Rank claims are "not testable" with fewer than ``min_rows`` rows.
    """
    table, out = result.table, []
    n = len(table)
    if n < min_rows:
        why = f"needs >= {min_rows} layer/pair rows to rank, got {n}"
        out.append(
            untestable(
                "baselines.kc_vs_linear_cka",
                BEYOND,
                "1 - instability ranks layers/pairs as linear CKA does",
                why,
            )
        )
        out.append(untestable("baselines.linear_agree", BEYOND,
                              "the linear measures rank layers/pairs alike", why))  # fmt: skip
    else:
        corr = agreement(table)
        rho = float(corr.loc["kc_consistency", "linear_cka"])
        claim = "1 - instability ranks the Table 1 layers/pairs as linear CKA does"
        if math.isnan(rho):
            out.append(untestable("baselines.kc_vs_linear_cka", BEYOND, claim,
                                  "one of the two is constant over the rows"))  # fmt: skip
        else:
            out.append(check(
                "baselines.kc_vs_linear_cka", BEYOND, f"{claim} (Spearman >= 0.5)",
                bool(rho >= 0.5), evidence=f"Spearman {rho:.2f} over {n} rows",
                numbers={"spearman": rho, "rows": n},
            ))  # fmt: skip
        lin = corr.loc[list(LINEAR_MEASURES), list(LINEAR_MEASURES)].to_numpy()
        upper = lin[np.triu_indices(len(LINEAR_MEASURES), 1)]
        mean = float(np.nanmean(upper)) if np.isfinite(upper).any() else math.nan
        n_nan = int(np.isnan(upper).sum())
        out.append(check(
            "baselines.linear_agree", BEYOND,
            "the linear measures rank the layers/pairs alike (mean pairwise Spearman >= 0.5)",
            bool(mean >= 0.5), evidence=f"mean Spearman {mean:.2f} over {n} rows, "
            f"range {np.nanmin(upper):.2f}..{np.nanmax(upper):.2f}"
            + (f", {n_nan} undefined (a constant measure)" if n_nan else ""),
            numbers={"mean_spearman": mean, "rows": n},
        ))  # fmt: skip
    det = detection(result.planted).set_index("measure")
    lin = det.loc[list(LINEAR_MEASURES), "nonlinear"]
    worst = lin.idxmax()
    out.append(check(
        "baselines.planted_linear_miss", BEYOND,
        f"every linear measure misses a purely nonlinear planted relation "
        f"(moves < {miss} of the way from unrelated to identical)",
        bool((lin < miss).all()),
        evidence=", ".join(f"{m} {v:.2f}" for m, v in lin.items())
        + f"; RBF CKA {det.loc['rbf_cka', 'nonlinear']:.2f}",
        numbers={f"detect_{m}": float(v) for m, v in det["nonlinear"].items()} | {"worst": lin[worst]},
    ))  # fmt: skip
    nl = result.planted[result.planted["kind"] == "nonlinear"]
    got, planted = float(nl["share_higher"].mean()), float(nl["planted_nonlinear"].mean())
    x0 = float(nl["share_x0"].mean())
    out.append(check(
        "baselines.planted_orders_recover", BEYOND,
        "orders >= 1 of g recover the nonlinear relation the linear measures miss "
        "(>= half the planted nonlinear share)",
        bool(got >= 0.5 * planted),
        evidence=f"orders >= 1 take {got:.3f} of Var(x*) vs planted {planted:.3f} "
        f"(order 0 {x0:.3f}, instability {float(nl['instability'].mean()):.3f}; "
        f"lambda {float(nl['lam'].iloc[0])}, {len(nl)} seed(s))",
        numbers={"share_higher": got, "planted_nonlinear": planted, "share_x0": x0},
    ))  # fmt: skip
    return out


# ---------------------------------------------------------------------------- figures


def plot_baselines(table: pd.DataFrame, corr: pd.DataFrame) -> Any:
    """Left: every measure per layer/pair row (oriented: higher = more similar; Procrustes
    negated). Right: Spearman correlations of the measures across the rows.

    Args:
        table: :attr:`Result.table`.
        corr: :func:`agreement` of it.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    measures = list(corr.index)
    vals = oriented(table, measures)
    vals.index = [
        f"{r.arch} {r.layer} {'C1' if r.setting == CASE1 else 'C2'} {i}"
        for i, r in enumerate(table.itertuples())
    ]
    fig, axes = plt.subplots(1, 2, figsize=(13, 0.35 * len(vals) + 2.5),
                             gridspec_kw={"width_ratios": [1.3, 1]})  # fmt: skip
    sns.heatmap(
        vals,
        annot=len(vals) <= 20,
        fmt=".2f",
        cmap="viridis",
        ax=axes[0],
        cbar_kws={"label": "value (Procrustes negated)"},
        annot_kws={"size": 7},
    )
    axes[0].set_title("measures per Table 1 pair and layer")
    sns.heatmap(corr, annot=True, fmt=".2f", vmin=-1, vmax=1, cmap="RdBu_r", ax=axes[1],
                annot_kws={"size": 7})  # fmt: skip
    axes[1].set_title("Spearman correlation across the rows")
    fig.tight_layout()
    return fig


def plot_planted_case(planted: pd.DataFrame) -> Any:
    """Each measure's :func:`detection` score on the nonlinear and the linear plant."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    det = detection(planted).melt(id_vars="measure", value_vars=["nonlinear", "linear"],
                                  var_name="plant", value_name="score")  # fmt: skip
    fig, ax = plt.subplots(figsize=(8, 3.6))
    sns.barplot(det, x="measure", y="score", hue="plant", ax=ax)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_ylabel("0 = as unrelated, 1 = as identical")
    ax.set_title("planted relations: which measure sees them")
    ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    return fig


def describe_agreement(account: pd.DataFrame, k: int = 3) -> list[str]:
    """Sentences naming the ``k`` most and least concordant pairs of measures and the
    measures that cannot rank the rows (constant), from :func:`agreement_account`."""
    ok = account.dropna(subset=["spearman"])
    fmt = lambda rows: ", ".join(f"{r.a} ~ {r.b} ({r.spearman:+.2f})" for r in rows.itertuples())  # noqa: E731
    lines = [f"most concordant: {fmt(ok.head(k))}", f"least concordant: {fmt(ok.tail(k)[::-1])}"]
    measures = dict.fromkeys([*account["a"], *account["b"]])
    flat = [
        m
        for m in measures
        if account.loc[account["a"].eq(m) | account["b"].eq(m), "spearman"].isna().all()
    ]
    if flat:
        lines.append(f"constant over the rows (cannot rank them): {', '.join(flat)}")
    return lines


def saturation(table: pd.DataFrame) -> pd.DataFrame:
    """Rows where a measure sits at its optimum for lack of samples: features per image
    ``d_x`` >= held-out images ``n_test`` (CCA then finds perfect correlations: SVCCA/PWCCA
    near 1; ridge R^2 has more weights than samples). Columns ``arch, layer, n_test, d_x,
    pwcca, svcca, ridge_r2``."""
    cols = ["arch", "layer", "n_test", "d_x", "pwcca", "svcca", "ridge_r2"]
    return table.loc[table["d_x"] >= table["n_test"], cols].drop_duplicates(["arch", "layer"])
