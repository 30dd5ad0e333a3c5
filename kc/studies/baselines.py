"""Knowledge consistency beside the similarity measures practitioners use (beyond the paper).

For the network pairs and layers of Table 1 (Case 1: seed pairs, Case 2: the two halves in
both directions) one row holds every measure of :func:`kc.core.similarity.compare_all` on the
held-out features, next to the instability and the order shares Var(x(k)) / Var(x*) of the
fitted g (Eq. 1-3). :func:`agreement` ranks the rows by each measure and correlates the ranks
(Spearman) to say where the measures agree; :func:`planted_case` builds a target that is a
purely nonlinear function of the source plus noise (:mod:`kc.studies.planted.pairs`), the case where every
linear measure should see nothing and orders >= 1 of g should see the planted share.

The networks and the fits of g are the Table 1 notebook's (:class:`Settings` holds its
:class:`kc.studies.instability.run.InstabilityStudy`: the same NetSpecs and get_consistency
arguments), so both are read from its cache.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from kc.core.similarity import PROPERTIES, compare_all, ridge_r2
from kc.engine import experiments as ex
from kc.studies.claims import Claim, check, untestable
from kc.studies.common import pick
from kc.studies.instability.run import InstabilityStudy

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
    "run",
]

BEYOND = "Beyond the paper"
CASE1 = "different initializations"
CASE2 = "different training data"
#: Measures of :mod:`kc.core.similarity` that see linear relations only.
LINEAR_MEASURES = ("linear_cka", "svcca", "pwcca", "procrustes", "ridge_r2")
#: Columns of knowledge consistency in the table: 1 - instability and the order shares.
KC_MEASURES = ("kc_consistency", "share_x0", "share_higher")
MAPS = "flatten"
"""The rule for maps of the CKAs, Procrustes and ridge R^2 here (one sample per image, C*H*W
features)."""
CCA_MAPS = "positions"
"""The rule for maps of SVCCA and PWCCA (instead of :data:`MAPS`): spatial positions as samples (N*H*W rows, C columns).
On flattened maps the held-out images are fewer than the C*H*W features (1000 against 4096 for
VGG-16 conv4_3 under ``small``), so every canonical correlation is 1 whatever the features
(:class:`kc.core.similarity.FewSamplesWarning`): PWCCA was 1.0 on every row until 2026-11-29."""

# ---------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    """Networks, layers, g's fit and the planted case of the baselines notebook.

    Build it with :meth:`from_params` from the notebook's parameters (CONTRIBUTING.md); the
    defaults live in the notebook and the profiles only.

    Attributes:
        table1: the Table 1 notebook's networks, layers and fits of g
            (:class:`kc.studies.instability.run.InstabilityStudy`, so the cache is shared).
        planted_n, planted_steps, planted_seeds: the planted case's samples (PLANTED_N),
            optimiser steps of g (PLANTED_STEPS) and seeds (PLANTED_SEEDS).
    """

    table1: InstabilityStudy
    planted_n: int
    planted_steps: int
    planted_seeds: Sequence[int]

    def __post_init__(self) -> None:
        if self.planted_n < 16 or self.planted_steps < 1 or not self.planted_seeds:
            raise ValueError(
                f"need PLANTED_N >= 16, PLANTED_STEPS >= 1 and a seed, got {self.planted_n}, "
                f"{self.planted_steps}, {list(self.planted_seeds)}"
            )
        object.__setattr__(self, "planted_seeds", tuple(int(s) for s in self.planted_seeds))

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Settings:
        """From the notebook's parameters: the Table 1 names (LAYERS, BOTH_DIRECTIONS, DEVICE
        included) plus ``PLANTED_N``, ``PLANTED_STEPS``, ``PLANTED_SEEDS``."""
        p = pick(params, ["PLANTED_N", "PLANTED_STEPS", "PLANTED_SEEDS"])
        return cls(
            table1=InstabilityStudy.from_params(params),
            planted_n=int(p["PLANTED_N"]),
            planted_steps=int(p["PLANTED_STEPS"]),
            planted_seeds=p["PLANTED_SEEDS"],
        )

    def pairs(self, arch: str) -> list[tuple[str, ex.NetSpec, ex.NetSpec]]:
        """``(setting, x network, x* network)`` of Table 1's fits for ``arch``."""
        t1 = self.table1
        out = [(CASE1, t1.spec(arch, a), t1.spec(arch, b)) for a, b in t1.case1_pairs()]
        h0, h1 = (t1.spec(arch, t1.seeds[0], t) for t in ("half0", "half1"))
        return out + [(CASE2, h0, h1), (CASE2, h1, h0)]


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


def _features(s: Settings, spec: ex.NetSpec, layer: str, split: str, limit: int) -> Any:
    task = "all" if spec.task in ("half0", "half1") else spec.task
    return ex.get_features(spec, layer, split=split, task=task, limit=limit,
                           device=s.table1.device, progress=False)[0]  # fmt: skip


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
    # Table 1's fits of g, with the same get_consistency arguments (so read from its cache).
    t1 = dataclasses.replace(settings.table1, progress=progress)
    g = t1.g
    rows = []
    for arch, layer in t1.layer_list():
        for setting, x, t in settings.pairs(arch):
            res = t1.fit(x, t, layer)
            xf = _features(settings, x, layer, "train", g.fit_limit)
            tf = _features(settings, t, layer, "train", g.fit_limit)
            xt = _features(settings, x, layer, "test", g.test_limit)
            tt = _features(settings, t, layer, "test", g.test_limit)
            row: dict[str, Any] = {
                "setting": setting, "arch": arch, "layer": layer,
                "x": x.label, "target": t.label,
                "n_test": int(xt.shape[0]), "d_x": int(np.prod(xt.shape[1:])),
            }  # fmt: skip
            row.update(compare_all(xt, tt, maps=MAPS, cca_maps=CCA_MAPS))
            row["cca_rows"] = int(xt.shape[0] * int(np.prod(xt.shape[2:])))
            row["ridge_r2"] = ridge_r2(xf, tf, test=(xt, tt), maps=MAPS)
            row.update(kc_columns(res.variances, res.instability, g.order))
            rows.append(row)
    planted = planted_case(
        n=settings.planted_n,
        order=g.order,
        lam=g.lam,
        steps=settings.planted_steps,
        seeds=settings.planted_seeds,
    )
    return Result(pd.DataFrame(rows), planted, settings)


# ---------------------------------------------------------------------------- agreement


def oriented(table: pd.DataFrame, measures: Sequence[str]) -> pd.DataFrame:
    """The columns ``measures`` with every one turned so that higher means more similar
    (Procrustes distance is negated; :data:`kc.core.similarity.PROPERTIES`)."""
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
    """Three planted pairs per seed, all measures and g on each (:func:`kc.studies.planted.pairs.recover`):

    * ``nonlinear``: x* is a purely nonlinear function of x (linear share 0) plus ``noise``;
    * ``linear``: x* a linear function of x (depth 0) plus the same noise share;
    * ``unrelated``: x* is independent of x (noise share 1 - 1e-9, the null of each measure).

    Returns:
        One row per (seed, kind): the planted shares, g's shares, the instability and every
        baseline (:func:`kc.core.similarity.compare_all`, on 4x4 maps flattened).
    """
    from kc.studies.planted.pairs import planted_pair, recover

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
    (:data:`kc.core.similarity.PROPERTIES` ``identical``) on the nonlinear and linear plants:
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


# ---------------------------------------------------------------------------- accounts


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
    """Layers where flattened features per image ``d_x`` >= held-out images ``n_test``: there
    ridge R^2 has more weights than samples (its ridge keeps it finite), and CCA on flattened
    maps would find perfect correlations, which is why SVCCA and PWCCA use :data:`CCA_MAPS`
    (``cca_rows`` samples of C channels). Columns ``arch, layer, n_test, d_x, cca_rows, pwcca,
    svcca, ridge_r2`` (one row per layer, its first pair)."""
    cols = ["arch", "layer", "n_test", "d_x", "cca_rows", "pwcca", "svcca", "ridge_r2"]
    cols = [c for c in cols if c in table.columns]
    return table.loc[table["d_x"] >= table["n_test"], cols].drop_duplicates(["arch", "layer"])
