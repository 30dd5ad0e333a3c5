"""Fig. 4 (left), Sec. 4.4: the knowledge a VGG-16 discards when it is compressed.

For each seed in ``seeds`` the original network is Table 1's VGG-16 of that seed (cached). It is
pruned by weight magnitude (Han et al., 2016; :func:`kc.engine.experiments.get_pruned`) at each rate in
``amounts`` (the fraction of conv and linear weights removed; the paper's largest is 93.3% of
the parameters) and fine-tuned for ``finetune_epochs`` at ``finetune_lr`` with the masks fixed. The threshold is
Han et al.'s: one quality parameter times each layer's weight std (``relative=True``), so every
layer keeps some weights; one global magnitude threshold would remove the whole classifier of
our narrow VGG-16 at 93.3%, whose weights are small. g (Eq. 1-2) then
rebuilds the original's feature x* from the pruned network's feature x at ``layer``:

    x* = g(x) + x_Delta   (Eq. 3),

so x_Delta is the part of the original's knowledge the pruned network no longer has: the
discarded knowledge. Var(x_Delta) (Sec. 4.2) quantifies it; the paper plots it against the
drop in accuracy and finds that less discarding goes with higher accuracy.

:func:`run` computes (everything cached); :func:`summary`, :func:`claims` and the figures are
pure functions of its :class:`CompressionResult`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pandas as pd
from torch import Tensor

from kc.engine import experiments as ex
from kc.studies.claims import Claim
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
    "PAPER_LARGEST_AMOUNT",
    "CompressionResult",
    "Settings",
    "claims",
    "run",
    "summary",
]

ITEM = "Fig. 4 (left)"
#: The fraction of parameters removed in the paper's Fig. 4 (left).
PAPER_LARGEST_AMOUNT = 0.933
#: Notebook parameters of this study besides :data:`kc.studies.fig4.common.SHARED_PARAMS`.
PARAMS = {
    "PRUNE_AMOUNTS": "amounts",
    "PRUNE_FT_EPOCHS": "finetune_epochs",
    "PRUNE_FT_LR": "finetune_lr",
}
#: Fewest distinct pruning rates for which a rank correlation is meaningful.
MIN_RATES = 3
#: One-sided significance level of the claims' rank correlations.
ALPHA = 0.05


@dataclass(frozen=True, kw_only=True)
class Settings(Fig4Settings):
    """The notebook's parameters of Fig. 4 (left) (fields of :class:`Fig4Settings` plus):

    Args:
        amounts: fractions of conv and linear weights removed, each in [0, 1), sorted on input.
        finetune_epochs: epochs of fine-tuning after pruning (masks fixed).
        finetune_lr: its learning rate (the spec's optimiser, cosine schedule).
    """

    PARAMS: ClassVar[Mapping[str, str]] = PARAMS

    amounts: Sequence[float]
    finetune_epochs: int
    finetune_lr: float

    def __post_init__(self) -> None:
        super().__post_init__()
        amounts = tuple(sorted(float(a) for a in self.amounts))
        if (
            not amounts
            or len(set(amounts)) != len(amounts)
            or not all(0.0 <= a < 1.0 for a in amounts)
        ):
            raise ValueError(f"amounts must be distinct fractions in [0, 1), got {self.amounts}")
        if self.finetune_epochs < 0:
            raise ValueError(f"finetune_epochs must be >= 0, got {self.finetune_epochs}")
        if not self.finetune_lr > 0:
            raise ValueError(f"finetune_lr must be > 0, got {self.finetune_lr}")
        object.__setattr__(self, "finetune_lr", float(self.finetune_lr))
        object.__setattr__(self, "amounts", amounts)


@dataclass
class CompressionResult:
    """What :func:`run` computed.

    Attributes:
        settings: the settings it ran with.
        runs: one row per (seed, amount): ``seed, amount, sparsity, accuracy_original,
            accuracy, accuracy_drop`` (percentage points, original - pruned), ``Var(xDelta)``
            (units of x*'s variance on the fitting images), ``Var(xDelta) raw``, ``Var(x*) raw``,
            ``instability``, ``net_from_cache``, ``g_from_cache``, ``train_seconds``,
            ``seconds`` (wall time of the row).
        images: (n, C, H, W) test images drawn in :func:`kc.book.plotting.plot_discarded`.
        image_names: their class names.
        maps: row name -> (n, h, w) maps over those images, for ``seeds[0]``: the original's
            feature x*, g(x) at the largest rate, and x_Delta at every rate.
    """

    settings: Settings
    runs: pd.DataFrame
    images: Tensor
    image_names: list[str]
    maps: dict[str, Tensor] = field(default_factory=dict)


def pct(amount: float) -> str:
    """``amount`` (a fraction) as a percentage: ``pct(0.25) == "25.0%"``."""
    return f"{100 * amount:.1f}%"


def run(settings: Settings, *, progress: bool = True) -> CompressionResult:
    """Prune, fine-tune and reconstruct for every seed and rate (all cached).

    Args:
        settings: the study's settings.
        progress: print one line per pruned network.

    Returns:
        A :class:`CompressionResult`.
    """
    rows: list[dict[str, Any]] = []
    maps: dict[str, Tensor] = {}
    test = held_out(settings)
    shown = shown_indices(test.labels, settings.n_show)
    for seed in settings.seeds:
        spec = settings.spec(seed)
        original = ex.get_net(spec, device=settings.device, progress=settings.progress)
        for amount in settings.amounts:
            start = time.perf_counter()
            pruned = ex.get_pruned(
                spec,
                amount,
                finetune_epochs=settings.finetune_epochs,
                lr=settings.finetune_lr,
                relative=True,  # Han et al.'s threshold: quality x each layer's weight std
                device=settings.device,
                progress=settings.progress,
            )
            result = settings.fit(pruned, spec)  # x: the pruned net, x*: the original
            seconds = time.perf_counter() - start
            rows.append(
                {
                    "seed": seed,
                    "amount": amount,
                    "sparsity": float(pruned.info["sparsity"]),
                    "accuracy_original": original.accuracy,
                    "accuracy": pruned.accuracy,
                    "accuracy_drop": original.accuracy - pruned.accuracy,
                    **fit_numbers(result),
                    "net_from_cache": pruned.from_cache,
                    "g_from_cache": bool(result.info["from_cache"]),
                    "train_seconds": pruned.train_seconds,
                    "seconds": seconds,
                }
            )
            if progress:
                print(
                    f"seed {seed}, {pct(amount)} removed: accuracy {pruned.accuracy:.1f}% "
                    f"(original {original.accuracy:.1f}%), instability {result.instability:.3f}"
                )
            if seed == settings.seeds[0]:
                maps.setdefault("x* original", component_maps(result.target, shown))
                if amount == settings.amounts[-1]:
                    maps[f"g(x), {pct(amount)}"] = component_maps(result.consistent, shown)
                maps[f"x-Delta, {pct(amount)}"] = component_maps(result.components["delta"], shown)
    images, names = images_of(test, shown)
    head = {k: v for k, v in maps.items() if not k.startswith("x-Delta")}
    tail = {k: v for k, v in maps.items() if k.startswith("x-Delta")}
    return CompressionResult(settings, pd.DataFrame(rows), images, names, {**head, **tail})


# ---------------------------------------------------------------------------- tables


def summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Per pruning rate, the spread over seeds of accuracy drop, Var(x_Delta) and instability.

    Args:
        runs: :attr:`CompressionResult.runs`.

    Returns:
        One row per amount: ``amount, sparsity`` (mean) and, for each of ``accuracy_drop``,
        ``Var(xDelta)``, ``instability``: ``<name> mean, <name> std, <name> min, <name> max``;
        ``n_seeds``.
    """
    out = runs.groupby("amount", sort=True)[["sparsity"]].mean().reset_index()
    for value in ("accuracy_drop", "Var(xDelta)", "instability"):
        stat = spread(runs, "amount", value).set_index("amount")
        for col in ("mean", "std", "min", "max"):
            out[f"{value} {col}"] = out["amount"].map(stat[col])
        out["n_seeds"] = out["amount"].map(stat["n_seeds"]).astype(int)
    return out


# ---------------------------------------------------------------------------- claims


def _correlation_claim(
    runs: pd.DataFrame, cid: str, text: str, paper: str, x: str, x_name: str
) -> Claim:
    rates = sorted(runs["amount"].unique())
    if len(rates) < MIN_RATES:
        return Claim(
            cid, ITEM, text, paper, "not testable",
            f"{len(rates)} pruning rate(s) ({', '.join(map(pct, rates))}); "
            f"a rank correlation needs at least {MIN_RATES}",
            {"n_rates": float(len(rates))},
        )  # fmt: skip
    pooled = rank_correlation(runs[x], runs["instability"], "greater")
    per_seed = {
        int(seed): rank_correlation(rows[x], rows["instability"], "greater")["rho"]
        for seed, rows in runs.groupby("seed")
    }
    holds = pooled["rho"] > 0 and pooled["p"] < ALPHA
    seeds = ", ".join(f"seed {s} {r:+.2f}" for s, r in per_seed.items())
    evidence = (
        f"Spearman rho of Var(x_Delta)/Var(x*) with {x_name} {pooled['rho']:+.2f} "
        f"(one-sided p {pooled['p']:.3g}, n {int(pooled['n'])} runs over {len(rates)} rates "
        f"and {len(per_seed)} seeds; per seed: {seeds})"
    )
    numbers = {
        "rho": pooled["rho"],
        "p": pooled["p"],
        "n": pooled["n"],
        "n_rates": float(len(rates)),
        **{f"rho_seed{s}": r for s, r in per_seed.items()},
    }
    status = "reproduced" if holds else "not reproduced"
    return Claim(cid, ITEM, text, paper, status, evidence, numbers)


def claims(runs: pd.DataFrame) -> list[Claim]:
    """The claims of Sec. 4.4 / Fig. 4 (left), computed on :attr:`CompressionResult.runs`.

    1. More discarded knowledge goes with a larger accuracy drop: Spearman's rho between
       Var(x_Delta)/Var(x*) and the accuracy drop over all (seed, rate) runs is positive with a
       one-sided p < :data:`ALPHA`.
    2. Pruning more discards more: the same between Var(x_Delta)/Var(x*) and the fraction of
       weights removed.

    Var(x_Delta) is taken relative to Var(x*) so that seeds with different feature scales can be
    pooled; within one seed it ranks the runs exactly as Var(x_Delta) does. Each claim is
    ``"not testable"`` with fewer than :data:`MIN_RATES` distinct rates.
    """
    return [
        _correlation_claim(
            runs,
            "fig4_compression.discarding_vs_accuracy",
            "more knowledge discarded by pruning goes with a larger accuracy drop",
            "Fig. 4 (left): a lower Var(x_Delta) goes with a higher accuracy (curve, no numbers)",
            "accuracy_drop",
            "the accuracy drop",
        ),
        _correlation_claim(
            runs,
            "fig4_compression.discarding_vs_rate",
            "removing more parameters discards more of the original's knowledge",
            "Sec. 4.4: x_Delta of the original is the knowledge discarded by compression",
            "amount",
            "the fraction removed",
        ),
    ]
