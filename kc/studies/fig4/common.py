"""What the two Fig. 4 studies share: Table 1's VGG-16 networks, one fit of g, the statistics.

:mod:`kc.studies.fig4.compression` (Sec. 4.4) and :mod:`kc.studies.fig4.born_again` (Sec. 4.5) both start
from the VGG-16 networks of Table 1 (the same :class:`kc.engine.experiments.NetSpec`, so the cached
networks are reused), reconstruct one feature layer with g (Eq. 1-2), show x-Delta over a few
test images and test a monotone trend with a rank statistic. Private to those two modules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
import torch
from scipy import stats
from torch import Tensor

from kc.core.measure import ConsistencyResult
from kc.engine import data, zoo
from kc.engine import experiments as ex
from kc.engine.overlay import map_of
from kc.studies.common import GFit, net_fields, pick
from kc.studies.regime import Regime, arch_fields

ARCH = "vgg16"

#: Notebook parameters every Fig. 4 notebook reads besides the networks' and g's names.
SHARED_PARAMS = ("DATASET", "FIG4_SEEDS", "FIG4_LAYER", "N_SHOW", "DEVICE")


@dataclass(frozen=True, kw_only=True)
class Fig4Settings:
    """Table 1's VGG-16 networks, the layer, g's fit and the figure, shared by both studies.

    Build it with :meth:`from_params` from the notebook's parameters: the defaults live in the
    notebook and the profiles only. A subclass lists its own parameters in :attr:`PARAMS`.

    Attributes:
        dataset: DATASET. seeds: FIG4_SEEDS, a subset of Table 1's SEEDS: the original
            networks / teachers, each the start of one curve.
        net: the NetSpec fields shared with Table 1 (:func:`kc.studies.common.net_fields`), so
            that :meth:`spec` is Table 1's network of a seed.
        layer: FIG4_LAYER, the feature layer of VGG-16 reconstructed (the paper does not name
            the layer of Fig. 4).
        g: how g is fitted (:class:`kc.studies.common.GFit`).
        n_show: N_SHOW, the number of test images drawn in the component grids.
        device: DEVICE. progress: show the training progress bars.
    """

    #: The subclass's own notebook parameter -> field.
    PARAMS: ClassVar[Mapping[str, str]] = {}

    dataset: str
    seeds: Sequence[int]
    net: Mapping[str, Any]
    layer: str
    g: GFit
    n_show: int
    device: str
    progress: bool = False

    def __post_init__(self) -> None:
        seeds = tuple(int(s) for s in self.seeds)
        if not seeds or len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be one or more distinct ints, got {list(self.seeds)}")
        object.__setattr__(self, "seeds", seeds)
        object.__setattr__(self, "net", dict(self.net))
        if self.layer not in zoo.layers(ARCH):
            raise ValueError(f"unknown layer {self.layer!r} of {ARCH}; expected {zoo.layers(ARCH)}")
        most = self.g.test_limit  # None: every test image
        if self.n_show < 1 or (most is not None and self.n_show > most):
            raise ValueError(f"n_show must lie in [1, test_limit={most}], got {self.n_show}")

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Self:
        """Settings from the notebook's UPPER_CASE parameters (``globals()`` will do).

        Raises:
            ValueError: a parameter is missing (the message names them).
        """
        p = pick(params, [*SHARED_PARAMS, *cls.PARAMS])
        return cls(
            dataset=p["DATASET"],
            seeds=p["FIG4_SEEDS"],
            net=net_fields(params),
            layer=p["FIG4_LAYER"],
            g=GFit.from_params(params),
            n_show=int(p["N_SHOW"]),
            device=p["DEVICE"],
            **{field: p[name] for name, field in cls.PARAMS.items()},
        )

    def in_regime(self, regime: Regime) -> Self:
        """The same study with the networks of ``regime`` (issue 24): trained on its few images
        per class (every generation too), g fitted on those images."""
        return replace(self, net=regime.net(self.net), g=regime.g(self.g))

    def spec(self, seed: int) -> ex.NetSpec:
        """Table 1's VGG-16 network of ``seed`` (Case 1: task ``"all"``)."""
        return ex.NetSpec(ARCH, datasets=(self.dataset,), task="all", seed=seed,
                          **arch_fields(self.net, ARCH))  # fmt: skip

    def fit(self, x_net: ex.NetLike, target_net: ex.NetLike) -> ConsistencyResult:
        """g from ``x_net``'s feature to ``target_net``'s at :attr:`layer`, cached (Eq. 2)."""
        return ex.get_consistency(
            x_net,
            self.layer,
            target_net,
            self.layer,
            **self.g.kwargs(ARCH),
            device=self.device,
            progress=self.progress,
        )


def fit_numbers(result: ConsistencyResult) -> dict[str, float]:
    """The variances of one fit: ``Var(xDelta)`` (normalised units), its raw value, ``Var(x*)``
    (raw) and ``instability`` = Var(x_Delta) / Var(x*) (Sec. 4.2)."""
    return {
        "Var(xDelta)": float(result.variances["Var(delta)"]),
        "Var(xDelta) raw": float(result.variances_raw["Var(delta)"]),
        "Var(x*) raw": float(result.variances_raw["Var(x*)"]),
        "instability": float(result.instability),
    }


# ---------------------------------------------------------------------------- images


def shown_indices(labels: Tensor, n: int) -> list[int]:
    """Which test images to draw: the first image of each class, classes in order, ``n`` of them.

    With fewer classes than ``n`` the remaining images are the next ones in order.

    Example:
        >>> shown_indices(torch.tensor([3, 3, 1, 0, 1, 2]), 3)  # classes 0, 1, 2
        [2, 3, 5]
    """
    if n < 1 or n > len(labels):
        raise ValueError(f"n must lie in [1, {len(labels)}], got {n}")
    first: dict[int, int] = {}
    for i, y in enumerate(labels.tolist()):
        first.setdefault(int(y), i)
    picks = [first[c] for c in sorted(first)][:n]
    rest = [i for i in range(len(labels)) if i not in picks]
    return sorted(picks + rest[: n - len(picks)])


def held_out(settings: Fig4Settings) -> Any:
    """The test images behind the test features of :meth:`Fig4Settings.fit`.

    :func:`kc.engine.experiments.get_features` computes them on ``make_task("all", dataset, "test",
    limit=test_limit, seed=DATA_SEED)``, so index i of a test component is image i here.
    """
    return data.make_task(
        "all",
        (settings.dataset,),
        "test",
        image_size=settings.net["input_size"],
        limit=settings.g.test_limit,
        seed=ex.DATA_SEED,
    )


def images_of(ds: Any, indices: Sequence[int]) -> tuple[Tensor, list[str]]:
    """``(images, names)``: (n, C, H, W) images of ``ds`` at ``indices`` and their class names."""
    images = torch.stack([ds[i][0] for i in indices])
    return images, [ds.class_names[int(ds.labels[i])] for i in indices]


def component_maps(tensor: Tensor, indices: Sequence[int]) -> Tensor:
    """(n, h, w) maps, the mean |.| over channels (:func:`kc.engine.overlay.map_of`), of some images."""
    return map_of(tensor[list(indices)])


# ---------------------------------------------------------------------------- statistics


def rank_correlation(x: Sequence[float], y: Sequence[float], alternative: str) -> dict[str, float]:
    """Spearman's rank correlation of ``y`` with ``x`` and its one-sided p-value (scipy).

    Args:
        x, y: paired values (n >= 3).
        alternative: ``"greater"`` (tests rho > 0) or ``"less"`` (rho < 0).

    Returns:
        ``{"rho", "p", "n"}``; rho is NaN when x or y is constant.

    Example:
        >>> round(rank_correlation([1, 2, 3, 4], [1.0, 3.0, 2.0, 5.0], "greater")["rho"], 6)
        0.8
    """
    if alternative not in ("greater", "less"):
        raise ValueError(f"alternative must be 'greater' or 'less', got {alternative!r}")
    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if xs.shape != ys.shape or xs.ndim != 1 or len(xs) < 3:
        raise ValueError(f"need two 1-D sequences of equal length >= 3, got {xs.shape}, {ys.shape}")
    if np.ptp(xs) == 0 or np.ptp(ys) == 0:
        return {"rho": float("nan"), "p": float("nan"), "n": float(len(xs))}
    res = stats.spearmanr(xs, ys, alternative=alternative)
    return {"rho": float(res.statistic), "p": float(res.pvalue), "n": float(len(xs))}


def spread(frame: pd.DataFrame, by: str, value: str) -> pd.DataFrame:
    """Mean, population std, min, max and count of ``value`` per ``by`` (over seeds)."""
    out = frame.groupby(by, sort=True)[value].agg(["mean", "std", "min", "max", "count"])
    out["std"] = frame.groupby(by, sort=True)[value].std(ddof=0)
    return out.rename(columns={"count": "n_seeds"}).reset_index()
