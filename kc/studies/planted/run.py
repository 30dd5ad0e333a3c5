"""The planted-structure benchmark as a study: is the order decomposition identifiable?

Wraps :mod:`kc.studies.planted.pairs`: targets x* made from Gaussian source maps x by random CNNs of known
depth (0 = linear; 1, 2, 4 ReLU layers) plus noise of a known share, split exactly into a
linear, a nonlinear and a noise part. g (Eq. 1-2) is fitted on half of the samples and
decomposed on the other half; the decomposition recovers the plant when

* Var(x(0)) / Var(x*) is the planted linear share,
* the orders >= 1 together take the planted nonlinear share,
* the instability Var(x_Delta) / Var(x*) is the planted noise share.

The design varies one factor at a time around a base case (lambda, K, N, noise;
:func:`kc.studies.planted.pairs.design`). :func:`identifiability` says, case by case, which of the three
shares are recovered to within a tolerance; :func:`baseline_response` how each baseline of
:mod:`kc.core.similarity` moves with depth and noise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from kc.core.similarity import PROPERTIES
from kc.studies.baselines import BEYOND
from kc.studies.claims import Claim, check, untestable
from kc.studies.common import pick
from kc.studies.planted import pairs as pl

__all__ = [
    "FACTORS",
    "PART_COLUMNS",
    "Result",
    "Settings",
    "baseline_response",
    "claims",
    "identifiability",
    "noise_drop",
    "run",
    "summary",
]

#: Factors the design varies, one at a time.
FACTORS = ("lam", "order", "n", "noise")
#: Planted part -> (planted column, recovered column, error column).
PART_COLUMNS = {
    "linear": ("planted_linear", "share_x0", "err_linear"),
    "nonlinear": ("planted_nonlinear", "share_higher", "err_higher"),
    "noise": ("planted_noise", "instability", "err_noise"),
}
BASE_NOISE = 0.2
"""Noise share of the base case (every factor but noise is the profile's)."""


@dataclass(frozen=True)
class Settings:
    """The planted notebook's parameters.

    Attributes:
        depths: PLANTED_DEPTHS, ReLU layers of the planted networks (0 = linear).
        n: PLANTED_N, samples of the base case (half fit g, half score it).
        steps: PLANTED_STEPS, optimiser steps of each fit of g.
        seeds: PLANTED_SEEDS, one planted pair and fit per seed and case.
        order, lam: ORDER and LAMBDA, K and lambda of the base case.
        vary: PLANTED_VARY, {factor: values} each varied alone around the base.
        tolerance: an absolute error of a share below this counts as recovered.
    """

    depths: Sequence[int]
    n: int
    steps: int
    seeds: Sequence[int]
    order: int
    lam: float
    vary: Mapping[str, Sequence[float]]
    tolerance: float = 0.05

    def __post_init__(self) -> None:
        depths = tuple(int(d) for d in self.depths)
        if not depths or any(d < 0 for d in depths):
            raise ValueError(f"PLANTED_DEPTHS must be integers >= 0, got {list(depths)}")
        bad = [f for f in self.vary if f not in FACTORS]
        if bad:
            raise ValueError(f"PLANTED_VARY factors must be among {FACTORS}, got {bad}")
        if self.n < 16 or self.steps < 1 or not self.seeds:
            raise ValueError(
                f"need PLANTED_N >= 16, PLANTED_STEPS >= 1 and a seed, got {self.n}, "
                f"{self.steps}, {list(self.seeds)}"
            )
        object.__setattr__(self, "depths", depths)
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        object.__setattr__(self, "vary", {f: tuple(v) for f, v in dict(self.vary).items()})

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Settings:
        """From PLANTED_DEPTHS, PLANTED_N, PLANTED_STEPS, PLANTED_SEEDS, PLANTED_VARY, ORDER,
        LAMBDA."""
        names = {"PLANTED_DEPTHS": "depths", "PLANTED_N": "n", "PLANTED_STEPS": "steps",
                 "PLANTED_SEEDS": "seeds", "ORDER": "order", "LAMBDA": "lam",
                 "PLANTED_VARY": "vary"}  # fmt: skip
        return cls(**{names[n]: v for n, v in pick(params, list(names)).items()})

    def base(self) -> dict[str, float]:
        """The base case: ``lam, order, n, noise``."""
        return dict(lam=float(self.lam), order=int(self.order), n=int(self.n), noise=BASE_NOISE)

    def cases(self) -> list[dict]:
        """:func:`kc.studies.planted.pairs.design` of these settings."""
        vary = {f: tuple(int(v) if f in ("order", "n") else float(v) for v in vals)
                for f, vals in self.vary.items()}  # fmt: skip
        return pl.design(self.depths, self.base(), vary)


@dataclass(frozen=True)
class Result:
    """:func:`run`'s rows: one per case and seed (:func:`kc.studies.planted.pairs.run`'s columns)."""

    rows: pd.DataFrame
    settings: Settings = field(repr=False)


def run(settings: Settings, *, progress: bool = True) -> Result:
    """Generate, fit and score every case of the design for every seed."""

    def show(row: dict) -> None:
        if progress:
            print(f"depth {row['depth']} {row['varied']:>5}: x0 {row['share_x0']:.3f} "
                  f"higher {row['share_higher']:.3f} inst {row['instability']:.3f} "
                  f"({row['seconds']:.1f} s)")  # fmt: skip

    rows = pl.run(settings.cases(), steps=settings.steps, seeds=settings.seeds, on_row=show)
    return Result(pd.DataFrame(rows), settings)


# ---------------------------------------------------------------------------- tables

_KEYS = ["depth", "varied", "lam", "order", "n", "noise"]


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds per case of the planted and recovered shares, their errors and the
    baselines; ``n_seeds`` and the largest absolute error over seeds (``max_abs_err_*``)."""
    cols = [c for c in rows.columns if c not in (*_KEYS, "seed", "seconds")]
    g = rows.groupby(_KEYS, sort=False)
    out = g[cols].mean()
    for _, _, err in PART_COLUMNS.values():
        out[f"max_abs_{err}"] = g[err].apply(lambda e: float(np.abs(e).max()))
    out["n_seeds"] = g.size()
    return out.reset_index()


def identifiability(table: pd.DataFrame, tolerance: float = 0.05) -> pd.DataFrame:
    """Which shares are recovered in each case of :func:`summary` (mean error within
    ``tolerance``); ``identifiable`` when all three are.

    Returns:
        ``depth, varied, lam, order, n, noise``, ``linear``, ``nonlinear``, ``noise_ok``
        (booleans) and ``identifiable``.
    """
    out = table[_KEYS].copy()
    for part, (_, _, err) in PART_COLUMNS.items():
        out[part if part != "noise" else "noise_ok"] = table[err].abs() <= tolerance
    out["identifiable"] = out[["linear", "nonlinear", "noise_ok"]].all(axis=1)
    return out


def baseline_response(table: pd.DataFrame) -> pd.DataFrame:
    """The baselines and 1 - instability of the base cases (by depth) and of the noise cases,
    in long form: ``depth, varied, noise, measure, value``."""
    measures = [m for m in (*PROPERTIES, "instability") if m in table.columns]
    sel = table[table["varied"].isin(["base", "noise"])]
    long = sel.melt(id_vars=["depth", "varied", "noise"], value_vars=measures,
                    var_name="measure", value_name="value")  # fmt: skip
    is_inst = long["measure"] == "instability"
    long.loc[is_inst, "value"] = 1.0 - long.loc[is_inst, "value"]
    long.loc[is_inst, "measure"] = "kc_consistency"
    return long


def noise_drop(long: pd.DataFrame) -> pd.DataFrame:
    """Per measure and depth: value at the lowest minus value at the highest noise share of
    :func:`baseline_response` (a measure of shared signal should drop; Procrustes, a
    distance, should rise, so its drop is negative). Measures as rows, depths as columns."""
    lo, hi = long["noise"].min(), long["noise"].max()
    at = long.groupby(["measure", "depth", "noise"])["value"].mean()
    drop = at.xs(lo, level="noise") - at.xs(hi, level="noise")
    return drop.unstack("depth")


# ---------------------------------------------------------------------------- claims


def _errs(rows: pd.DataFrame, err: str) -> str:
    e = rows[err].to_numpy(dtype=float)
    return f"mean |error| {np.abs(e).mean():.3f}, max {np.abs(e).max():.3f} over {len(e)} case(s)"


def claims(table: pd.DataFrame, tolerance: float = 0.05) -> list[Claim]:
    """Beyond-the-paper claims of the planted benchmark, from :func:`summary`.

    * ``planted.linear``: for linear plants (depth 0) order 0 takes the planted linear share
      and the instability the noise share (within ``tolerance``) in every case;
    * ``planted.nonlinear``: for nonlinear plants (depth >= 1) the orders >= 1 take the planted
      nonlinear share (within ``2 * tolerance``) in the base case;
    * ``planted.noise``: the instability is the planted noise share (within ``tolerance``) in
      every case of every depth;
    * ``planted.cka_vs_noise``: linear CKA ranks the noise-free nonlinear plant above the
      noisiest linear plant (the expectation of a measure of shared knowledge), and so does
      1 - instability.
    """
    out = []
    lin = table[table["depth"] == 0]
    deep = table[(table["depth"] > 0) & (table["varied"] == "base")]
    if lin.empty:
        out.append(untestable("planted.linear", BEYOND, "order 0 recovers a linear plant",
                              "PLANTED_DEPTHS has no depth 0"))  # fmt: skip
    else:
        ok = bool((lin["err_linear"].abs() <= tolerance).all()
                  and (lin["err_noise"].abs() <= tolerance).all())  # fmt: skip
        out.append(check(
            "planted.linear", BEYOND,
            f"order 0 takes the planted linear share and the instability the noise share of a "
            f"linear plant (within {tolerance}, every case)", ok,
            evidence=f"order 0: {_errs(lin, 'err_linear')}; noise: {_errs(lin, 'err_noise')}",
            numbers={"max_abs_err_linear": float(lin["err_linear"].abs().max()),
                     "max_abs_err_noise": float(lin["err_noise"].abs().max())},
        ))  # fmt: skip
    if deep.empty:
        out.append(untestable("planted.nonlinear", BEYOND,
                              "orders >= 1 recover a nonlinear plant",
                              "PLANTED_DEPTHS has no depth >= 1"))  # fmt: skip
    else:
        ok = bool((deep["err_higher"].abs() <= 2 * tolerance).all())
        got = ", ".join(f"depth {d}: {h:.3f} vs {p:.3f}" for d, h, p in
                        zip(deep["depth"], deep["share_higher"], deep["planted_nonlinear"],
                            strict=True))  # fmt: skip
        out.append(check(
            "planted.nonlinear", BEYOND,
            f"orders >= 1 take the planted nonlinear share (within {2 * tolerance}, base case, "
            f"lambda {deep['lam'].iloc[0]})", ok, evidence=f"orders >= 1 vs planted: {got}",
            numbers={"max_abs_err_higher": float(deep["err_higher"].abs().max()),
                     "mean_share_higher": float(deep["share_higher"].mean()),
                     "mean_planted_nonlinear": float(deep["planted_nonlinear"].mean())},
        ))  # fmt: skip
    ok = bool((table["err_noise"].abs() <= tolerance).all())
    out.append(check(
        "planted.noise", BEYOND,
        f"the instability is the planted noise share (within {tolerance}, every case)", ok,
        evidence=_errs(table, "err_noise"),
        numbers={"max_abs_err_noise": float(table["err_noise"].abs().max())},
    ))  # fmt: skip
    clean = table[(table["depth"] > 0) & (table["noise"] == 0.0)]
    if "linear_cka" not in table.columns or clean.empty or lin.empty or lin["noise"].max() <= 0:
        out.append(untestable(
            "planted.cka_vs_noise", BEYOND,
            "linear CKA ranks a noise-free nonlinear plant above a noisy linear plant",
            "needs baselines, a depth >= 1 case with noise 0 and a depth-0 case with noise > 0",
        ))  # fmt: skip
    else:
        noisy = lin[lin["noise"] == lin["noise"].max()].iloc[0]
        c = clean.sort_values("depth").iloc[-1]
        kc_c, kc_n = 1 - c["instability"], 1 - noisy["instability"]
        out.append(check(
            "planted.cka_vs_noise", BEYOND,
            f"linear CKA ranks the noise-free depth-{int(c['depth'])} plant above the linear plant "
            f"with noise {noisy['noise']:g}", bool(c["linear_cka"] > noisy["linear_cka"]),
            evidence=f"linear CKA {c['linear_cka']:.3f} vs {noisy['linear_cka']:.3f}; "
            f"1 - instability {kc_c:.3f} vs {kc_n:.3f}",
            numbers={"cka_clean": float(c["linear_cka"]), "cka_noisy": float(noisy["linear_cka"]),
                     "kc_clean": float(kc_c), "kc_noisy": float(kc_n)},
        ))  # fmt: skip
    return out


def account(ident: pd.DataFrame) -> list[str]:
    """Sentences: where the decomposition is identifiable, per depth and factor value."""
    lines = []
    for depth, g in ident.groupby("depth"):
        good = g[g["identifiable"]]
        bad = g[~g["identifiable"]]

        def name(r: Any) -> str:
            return "base" if r.varied == "base" else f"{r.varied}={getattr(r, r.varied):g}"

        lines.append(
            f"depth {depth}: identifiable in {len(good)}/{len(g)} cases"
            + (f" ({', '.join(name(r) for r in good.itertuples())})" if len(good) else "")
            + (
                f"; not in {', '.join(name(r) for r in bad.itertuples())}"
                f" (fails: {', '.join(sorted({p for r in bad.itertuples() for p in ('linear', 'nonlinear', 'noise_ok') if not getattr(r, p)}))})"
                if len(bad)
                else ""
            )  # fmt: skip
        )
    return lines
