"""Fig. 4 (right), Sec. 4.5: blind spots of born-again networks over generations.

For each seed in ``seeds`` the teacher (generation 0) is Table 1's VGG-16 of that seed (cached).
Generations 1 .. ``generations`` are born-again networks (Furlanello et al., 2018;
:func:`kc.engine.experiments.get_born_again`): same architecture and training settings, a fresh
initialisation, trained with footnote 3's loss ``CE + weight * KD`` at temperature ``tau``
against the previous generation. g (Eq. 1-2) then rebuilds the newest generation's feature x*
from each earlier generation's feature x at ``layer``:

    x* = g(x) + x_Delta   (Eq. 3),

so x_Delta is what the newest network knows and the earlier one does not: the earlier
network's blind spots, quantified by Var(x_Delta) (Sec. 4.2). The paper (teacher plus four
generations; its "1st .. 4th generations" are our generations 0 .. 3, the newest our 4) finds
that they shrink over generations.

A reference the paper does not show: the same reconstruction from an independently trained
network (Table 1's network of the next seed in ``seeds``), i.e. the blind spots of a network
outside the lineage.

:func:`run` computes (everything cached); :func:`summary`, :func:`trend`, :func:`claims` and
the figures are pure functions of its :class:`BornAgainResult`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pandas as pd
from scipy import stats
from torch import Tensor

from kc.engine import experiments as ex
from kc.studies.claims import Claim, no_spread
from kc.studies.fig4.common import (
    Fig4Settings,
    component_maps,
    fit_numbers,
    held_out,
    images_of,
    rank_correlation,
    shown_indices,
    spread,
)

__all__ = [
    "BornAgainResult",
    "Settings",
    "claims",
    "run",
    "summary",
    "trend",
    "within_seed_slope",
]

ITEM = "Fig. 4 (right)"
#: Notebook parameters of this study besides :data:`kc.studies.fig4.common.SHARED_PARAMS`.
PARAMS = {"GENERATIONS": "generations", "DISTILL_TAU": "tau", "DISTILL_WEIGHT": "weight"}
#: Fewest earlier generations (points per seed) for which a trend is meaningful.
MIN_GENERATIONS = 3
#: One-sided significance level of the trend.
ALPHA = 0.05
INDEPENDENT = "independent"


@dataclass(frozen=True, kw_only=True)
class Settings(Fig4Settings):
    """The notebook's parameters of Fig. 4 (right) (fields of :class:`Fig4Settings` plus):

    Args:
        generations: born-again generations trained after the teacher (the paper: 4); the
            newest, generation ``generations``, is the target x*.
        tau, weight: footnote 3's distillation loss ``CE + weight * KD`` at temperature ``tau``
            (the paper: 1.0 and 0.5).
    """

    PARAMS: ClassVar[Mapping[str, str]] = PARAMS

    generations: int
    tau: float
    weight: float

    def __post_init__(self) -> None:
        super().__post_init__()
        if (
            isinstance(self.generations, bool)
            or not isinstance(self.generations, int)
            or (self.generations < 1)
        ):
            raise ValueError(f"generations must be an int >= 1, got {self.generations!r}")
        if self.tau <= 0 or self.weight < 0:
            raise ValueError(f"need tau > 0 and weight >= 0, got {self.tau} and {self.weight}")
        object.__setattr__(self, "tau", float(self.tau))
        object.__setattr__(self, "weight", float(self.weight))

    def independent_seed(self, seed: int) -> int | None:
        """The seed of the network outside ``seed``'s lineage: the next one in :attr:`seeds`."""
        if len(self.seeds) < 2:
            return None
        return self.seeds[(self.seeds.index(seed) + 1) % len(self.seeds)]


@dataclass
class BornAgainResult:
    """What :func:`run` computed.

    Attributes:
        settings: the settings it ran with.
        networks: one row per (seed, generation 0 .. G): ``seed, generation, accuracy,
            from_cache, train_seconds, label``.
        fits: one row per (seed, source): ``seed, source`` (``"generation k"`` or
            ``"independent"``), ``generation`` (k; NaN for the independent network),
            ``x`` (label of the source), ``accuracy_x``, ``accuracy_newest``,
            ``Var(xDelta)``, ``Var(xDelta) raw``, ``Var(x*) raw``, ``instability``,
            ``g_from_cache``, ``seconds``.
        images: (n, C, H, W) test images of :func:`kc.book.plotting.plot_blind_spots`.
        image_names: their class names.
        maps: row name -> (n, h, w) maps over those images, for ``seeds[0]``: the newest's
            feature x*, then x_Delta from every earlier generation.
    """

    settings: Settings
    networks: pd.DataFrame
    fits: pd.DataFrame
    images: Tensor
    image_names: list[str]
    maps: dict[str, Tensor] = field(default_factory=dict)


def run(settings: Settings, *, progress: bool = True) -> BornAgainResult:
    """Train (or load) every generation and fit g from each earlier one to the newest.

    Args:
        settings: the study's settings.
        progress: print one line per fit.

    Returns:
        A :class:`BornAgainResult`.
    """
    s = settings
    nets, fits = [], []
    maps: dict[str, Tensor] = {}
    test = held_out(s)
    shown = shown_indices(test.labels, s.n_show)
    newest_gen = s.generations
    for seed in s.seeds:
        spec = s.spec(seed)
        lineage = [
            ex.get_born_again(
                spec, g, tau=s.tau, weight=s.weight, device=s.device, progress=s.progress
            )
            for g in range(newest_gen + 1)
        ]
        for g, net in enumerate(lineage):
            nets.append(
                {
                    "seed": seed,
                    "generation": g,
                    "accuracy": net.accuracy,
                    "from_cache": net.from_cache,
                    "train_seconds": net.train_seconds,
                    "label": net.label,
                }
            )
        newest = lineage[-1]
        sources: list[tuple[str, float, ex.TrainedNet]] = [
            (f"generation {g}", float(g), net) for g, net in enumerate(lineage[:-1])
        ]
        other = s.independent_seed(seed)
        if other is not None:
            independent = ex.get_net(s.spec(other), device=s.device, progress=s.progress)
            sources.append((INDEPENDENT, float("nan"), independent))
        for source, generation, net in sources:
            start = time.perf_counter()
            result = s.fit(net, newest)  # x: an earlier network, x*: the newest generation
            fits.append(
                {
                    "seed": seed,
                    "source": source,
                    "generation": generation,
                    "x": net.label,
                    "accuracy_x": net.accuracy,
                    "accuracy_newest": newest.accuracy,
                    **fit_numbers(result),
                    "g_from_cache": bool(result.info["from_cache"]),
                    "seconds": time.perf_counter() - start,
                }
            )
            if progress:
                print(f"seed {seed}, {source} -> generation {newest_gen}: "
                      f"instability {result.instability:.3f}")  # fmt: skip
            if seed == s.seeds[0] and source != INDEPENDENT:
                maps.setdefault(f"x* (gen {newest_gen})", component_maps(result.target, shown))
                maps[f"x-Delta, gen {int(generation)}"] = component_maps(
                    result.components["delta"], shown
                )
    images, names = images_of(test, shown)
    return BornAgainResult(s, pd.DataFrame(nets), pd.DataFrame(fits), images, names, maps)


# ---------------------------------------------------------------------------- tables


def summary(fits: pd.DataFrame) -> pd.DataFrame:
    """Per source (each earlier generation, then the independent network), the spread over
    seeds of Var(x_Delta) (normalised and raw) and of the instability.

    Returns:
        One row per source: ``source, generation`` and, for ``Var(xDelta)``, ``Var(xDelta) raw``
        and ``instability``: ``<name> mean, <name> std, <name> min, <name> max``; ``n_seeds``.
    """
    order = fits.drop_duplicates("source").sort_values("generation", na_position="last")
    out = order[["source", "generation"]].reset_index(drop=True)
    for value in ("Var(xDelta)", "Var(xDelta) raw", "instability"):
        stat = spread(fits, "source", value).set_index("source")
        for col in ("mean", "std", "min", "max"):
            out[f"{value} {col}"] = out["source"].map(stat[col])
        out["n_seeds"] = out["source"].map(stat["n_seeds"]).astype(int)
    return out


def within_seed_slope(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> dict[str, float]:
    """Least-squares slope of y on x with one intercept per group (seed), and its uncertainty.

    Each seed's lineage has its own level (its own newest network as x*), so x and y are
    centred within each group and the common slope is ``sum(xc * yc) / sum(xc ** 2)``; its
    standard error uses the residual variance with ``n - 1 - n_groups`` degrees of freedom,
    and ``p`` is the one-sided t-test of slope < 0.

    Returns:
        ``{"slope", "slope_se", "p", "df"}`` (NaN when there are no residual degrees of freedom).

    Example:
        >>> x = np.array([0, 1, 2, 0, 1, 2.0])
        >>> round(within_seed_slope(x, 5 - x + np.array([0, 0, 0, 9, 9, 9]), np.array([0, 0, 0, 1, 1, 1]))["slope"], 6)
        -1.0
    """
    frame = pd.DataFrame({"x": x, "y": y, "g": groups}).astype({"x": float, "y": float})
    xc = frame["x"] - frame.groupby("g")["x"].transform("mean")
    yc = frame["y"] - frame.groupby("g")["y"].transform("mean")
    sxx = float((xc**2).sum())
    df = len(frame) - 1 - frame["g"].nunique()
    if sxx == 0:
        raise ValueError("x does not vary within any group; no slope")
    slope = float((xc * yc).sum()) / sxx
    if df < 1:
        return {"slope": slope, "slope_se": float("nan"), "p": float("nan"), "df": float(df)}
    resid = yc - slope * xc
    se = float(np.sqrt(float((resid**2).sum()) / df / sxx))
    p = float(stats.t.cdf(slope / se, df)) if se > 0 else float(slope >= 0)
    return {"slope": slope, "slope_se": se, "p": p, "df": float(df)}


def trend(fits: pd.DataFrame, value: str = "instability") -> dict[str, float]:
    """The trend of ``value`` over the earlier generations (the independent network excluded).

    The common slope with one level per seed (:func:`within_seed_slope`, one-sided test of
    slope < 0), Spearman's rho over all points (one-sided, rho < 0) and the per-seed slopes.

    Returns:
        ``slope, slope_se, p, df, rho, rho_p, n, n_generations``, ``slope_seed<k>`` for each
        seed, and ``independent`` (mean ``value`` of the independent network; NaN without one).
        Slope and rho are NaN with fewer than :data:`MIN_GENERATIONS` generations.
    """
    lineage = fits[fits["source"] != INDEPENDENT]
    gens = sorted(lineage["generation"].unique())
    independent = fits.loc[fits["source"] == INDEPENDENT, value]
    out: dict[str, float] = {
        "n": float(len(lineage)),
        "n_generations": float(len(gens)),
        "independent": float(independent.mean()) if len(independent) else float("nan"),
    }
    if len(gens) < MIN_GENERATIONS:
        nan = float("nan")
        return {**out, "slope": nan, "slope_se": nan, "p": nan, "df": nan, "rho": nan,
                "rho_p": nan}  # fmt: skip
    x, y = lineage["generation"].to_numpy(float), lineage[value].to_numpy(float)
    out.update(within_seed_slope(x, y, lineage["seed"].to_numpy()))
    rank = rank_correlation(x, y, "less")
    out.update(rho=rank["rho"], rho_p=rank["p"])
    for seed, rows in lineage.groupby("seed"):
        out[f"slope_seed{int(seed)}"] = float(
            np.polyfit(rows["generation"].to_numpy(float), rows[value].to_numpy(float), 1)[0]
        )
    return out


# ---------------------------------------------------------------------------- claims


def claims(fits: pd.DataFrame) -> list[Claim]:
    """The claim of Sec. 4.5 / Fig. 4 (right), computed on :attr:`BornAgainResult.fits`.

    Blind spots shrink over generations: the least-squares slope of Var(x_Delta)/Var(x*)
    against the generation (all seeds' earlier generations, one level per seed:
    :func:`within_seed_slope`) is negative with a one-sided p < :data:`ALPHA`. Var(x_Delta) is taken relative to Var(x*) so seeds can be pooled; the
    target x* is the same newest network within a seed, so within a seed this ranks the
    generations exactly as Var(x_Delta) does. ``"not testable"`` with fewer than
    :data:`MIN_GENERATIONS` earlier generations; "not testable: no spread" with one teacher
    (FIG4_SEEDS), whose lineage alone cannot tell a trend from seed noise.
    """
    cid = "fig4_born_again.blind_spots_shrink"
    text = "blind spots (knowledge the newest generation has and an earlier one lacks) shrink over generations"
    paper = (
        "Fig. 4 (right): Var(x_Delta) decreases over the 1st .. 4th generations (curve, no numbers)"
    )
    t = trend(fits)
    if t["n_generations"] < MIN_GENERATIONS:
        return [
            Claim(
                cid,
                ITEM,
                text,
                paper,
                "not testable",
                f"{int(t['n_generations'])} earlier generation(s); a trend needs at least "
                f"{MIN_GENERATIONS} (GENERATIONS >= {MIN_GENERATIONS})",
                {"n_generations": t["n_generations"]},
            )  # fmt: skip
        ]
    teachers = sorted(int(s) for s in fits.loc[fits["source"] != INDEPENDENT, "seed"].unique())
    if len(teachers) < 2:
        return [no_spread(cid, ITEM, text, f"one teacher (seed {teachers}), slope per generation "
                          f"{t['slope']:+.3f}", paper=paper, numbers=t,
                          needs="a trend's uncertainty needs two or more teachers (FIG4_SEEDS)")]  # fmt: skip
    holds = t["slope"] < 0 and t["p"] < ALPHA
    seeds = ", ".join(
        f"{k[len('slope_') :]} {v:+.3f}" for k, v in t.items() if k.startswith("slope_seed")
    )
    evidence = (
        f"slope of Var(x_Delta)/Var(x*) per generation {t['slope']:+.3f} +- {t['slope_se']:.3f} "
        f"(one level per seed, one-sided p {t['p']:.3g}; Spearman rho {t['rho']:+.2f}, p {t['rho_p']:.3g}; "
        f"n {int(t['n'])} fits over {int(t['n_generations'])} generations; per seed: {seeds}); "
        f"an independent network: {t['independent']:.3f}"
    )
    status = "reproduced" if holds else "not reproduced"
    return [Claim(cid, ITEM, text, paper, status, evidence, t)]
