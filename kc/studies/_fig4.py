"""What the two Fig. 4 studies share: Table 1's VGG-16 networks, one fit of g, the statistics.

:mod:`kc.studies.compression` (Sec. 4.4) and :mod:`kc.studies.born_again` (Sec. 4.5) both start
from the VGG-16 networks of Table 1 (the same :class:`kc.experiments.NetSpec`, so the cached
networks are reused), reconstruct one feature layer with g (Eq. 1-2), show x-Delta over a few
test images and test a monotone trend with a rank statistic. Private to those two modules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import stats
from torch import Tensor

from kc import data, zoo
from kc import experiments as ex
from kc.measure import ConsistencyResult
from kc.overlay import map_of

ARCH = "vgg16"

#: Notebook parameter -> settings field, for the names every Fig. 4 notebook shares.
SHARED_PARAMS = {
    "DATASET": "dataset",
    "FIG4_SEEDS": "seeds",
    "EPOCHS": "epochs",
    "WIDTH": "width",
    "INPUT_SIZE": "input_size",
    "TRAIN_LIMIT": "train_limit",
    "EVAL_LIMIT": "eval_limit",
    "OPTIMIZER": "optimizer",
    "LR": "lr",
    "BATCH_SIZE": "batch_size",
    "FIG4_LAYER": "layer",
    "ORDER": "order",
    "LAMBDA": "lam",
    "FIT_LIMIT": "fit_limit",
    "TEST_LIMIT": "test_limit",
    "G_STEPS": "g_steps",
    "G_LR": "g_lr",
    "G_BATCH_SIZE": "g_batch_size",
    "N_SHOW": "n_show",
    "DEVICE": "device",
}


def kwargs_from_params(params: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """Settings keyword arguments from a notebook's parameters.

    Args:
        params: UPPER_CASE notebook parameters (others, e.g. ``PROFILE``, are ignored).
        names: parameter -> field; every listed parameter must be present.

    Raises:
        ValueError: a listed parameter is missing (the message names them).
    """
    missing = sorted(set(names) - set(params))
    if missing:
        raise ValueError(f"missing notebook parameters {missing}; got {sorted(params)}")
    return {field: params[name] for name, field in names.items()}


@dataclass(frozen=True)
class Fig4Settings:
    """Table 1's VGG-16 networks, the layer, g's fit and the figure, shared by both studies.

    The network fields mirror :class:`kc.studies.instability.InstabilityStudy` so that
    :meth:`spec` is Table 1's NetSpec for a seed; ``seeds`` (``FIG4_SEEDS``, a subset of Table
    1's ``SEEDS``) are the original networks / teachers, each the start of one curve. ``layer`` is the feature layer of VGG-16
    reconstructed (the paper does not name the layer of Fig. 4). ``n_show`` is the number of test
    images drawn in the component grids.
    """

    dataset: str = "fashion-mnist"
    seeds: Sequence[int] = (0, 1)
    epochs: int = 1
    width: float = 0.125
    input_size: int = 32
    train_limit: int | None = 600
    eval_limit: int | None = 500
    optimizer: str = "adam"
    lr: float = 1e-3
    batch_size: int = 64
    layer: str = "conv4_3"
    order: int = 2
    lam: float = 0.1
    fit_limit: int = 128
    test_limit: int = 128
    g_steps: int = 1000
    g_lr: float = 1e-2
    g_batch_size: int = 64
    n_show: int = 4
    device: str = "auto"
    progress: bool = False

    def __post_init__(self) -> None:
        seeds = tuple(int(s) for s in self.seeds)
        if not seeds or len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds must be one or more distinct ints, got {list(self.seeds)}")
        object.__setattr__(self, "seeds", seeds)
        if self.layer not in zoo.layers(ARCH):
            raise ValueError(f"unknown layer {self.layer!r} of {ARCH}; expected {zoo.layers(ARCH)}")
        if not 1 <= self.n_show <= self.test_limit:
            raise ValueError(
                f"n_show must lie in [1, test_limit={self.test_limit}], got {self.n_show}"
            )

    def spec(self, seed: int) -> ex.NetSpec:
        """Table 1's VGG-16 network of ``seed`` (Case 1: task ``"all"``)."""
        return ex.NetSpec(
            ARCH,
            datasets=(self.dataset,),
            task="all",
            seed=seed,
            epochs=self.epochs,
            width=self.width,
            input_size=self.input_size,
            train_limit=self.train_limit,
            test_limit=self.eval_limit,
            optimizer=self.optimizer,
            lr=self.lr,
            batch_size=self.batch_size,
        )

    def fit(self, x_net: ex.NetLike, target_net: ex.NetLike) -> ConsistencyResult:
        """g from ``x_net``'s feature to ``target_net``'s at :attr:`layer`, cached (Eq. 2)."""
        return ex.get_consistency(
            x_net,
            self.layer,
            target_net,
            self.layer,
            order=self.order,
            lam=self.lam,
            fit_limit=self.fit_limit,
            test_limit=self.test_limit,
            g_steps=self.g_steps,
            g_lr=self.g_lr,
            g_batch_size=self.g_batch_size,
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

    :func:`kc.experiments.get_features` computes them on ``make_task("all", dataset, "test",
    limit=test_limit, seed=DATA_SEED)``, so index i of a test component is image i here.
    """
    return data.make_task(
        "all",
        (settings.dataset,),
        "test",
        image_size=settings.input_size,
        limit=settings.test_limit,
        seed=ex.DATA_SEED,
    )


def images_of(ds: Any, indices: Sequence[int]) -> tuple[Tensor, list[str]]:
    """``(images, names)``: (n, C, H, W) images of ``ds`` at ``indices`` and their class names."""
    images = torch.stack([ds[i][0] for i in indices])
    return images, [ds.class_names[int(ds.labels[i])] for i in indices]


def component_maps(tensor: Tensor, indices: Sequence[int]) -> Tensor:
    """(n, h, w) maps, the mean |.| over channels (:func:`kc.overlay.map_of`), of some images."""
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


# ---------------------------------------------------------------------------- figures


def seed_curves(ax: Any, frame: pd.DataFrame, x: str, y: str, *, label: str = "mean") -> None:
    """Draw one faint line per seed and the mean over seeds with a min-max band on ``ax``.

    Args:
        frame: rows with columns ``seed``, ``x`` and ``y``.
    """
    for _, rows in frame.groupby("seed"):
        rows = rows.sort_values(x)
        ax.plot(rows[x], rows[y], "o-", color="grey", alpha=0.35, lw=1, ms=3)
    stat = spread(frame, x, y)
    ax.plot(stat[x], stat["mean"], "o-", color="C0", lw=2, label=f"{label} over seeds")
    ax.fill_between(stat[x], stat["min"], stat["max"], color="C0", alpha=0.2, label="min-max")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
