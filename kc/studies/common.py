"""What every study shares: reading the notebook's parameters, and g's fitting settings.

A study's settings are built from the notebook's ``parameters`` cell (UPPER_CASE names, see
CONTRIBUTING.md) with ``Settings.from_params(params)``; the defaults live in the notebook and
the profiles only, never here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kc.core.precision import PRECISIONS
from kc.engine import zoo

__all__ = ["GFit", "check_n_show", "check_network", "net_fields", "pick"]

#: Notebook parameter -> field of :class:`kc.engine.experiments.NetSpec` (training the networks).
_NET_PARAMS = {
    "EPOCHS": "epochs",
    "WIDTH": "width",
    "INPUT_SIZE": "input_size",
    "TRAIN_LIMIT": "train_limit",
    "EVAL_LIMIT": "test_limit",
    "OPTIMIZER": "optimizer",
    "LR": "lr",
    "BATCH_SIZE": "batch_size",
}


def pick(params: Mapping[str, Any], names: Sequence[str]) -> dict[str, Any]:
    """``{name: params[name]}`` for ``names``; a ValueError lists every missing name.

    Example:
        >>> pick({"SEEDS": [0, 1], "ORDER": 2}, ["ORDER"])
        {'ORDER': 2}
    """
    missing = [n for n in names if n not in params]
    if missing:
        raise ValueError(f"the notebook parameters lack {missing}; they have {sorted(params)}")
    return {n: params[n] for n in names}


def net_fields(params: Mapping[str, Any]) -> dict[str, Any]:
    """The :class:`kc.engine.experiments.NetSpec` fields shared by a notebook's networks."""
    return {
        field: value
        for field, value in zip(
            _NET_PARAMS.values(), pick(params, list(_NET_PARAMS)).values(), strict=True
        )
    }


def check_network(name: str, arch: str, layer: str) -> None:
    """Raise a ValueError unless ``[arch, layer]``, parameter ``name``, is a layer of kc.engine.zoo.

    Example:
        >>> check_network("ORDERS_NETWORK", "vgg16", "conv4_3")  # a known layer: no error
    """
    if arch not in zoo.ARCHS or layer not in zoo.layers(arch):
        raise ValueError(f"{name} must be [arch, layer] of kc.engine.zoo, got [{arch!r}, {layer!r}]")


def check_n_show(n_show: int, most: int = 12) -> None:
    """Raise a ValueError unless N_SHOW, the images a figure shows, lies in [1, ``most``]."""
    if not 1 <= n_show <= most:
        raise ValueError(f"N_SHOW must lie in [1, {most}], got {n_show}")


@dataclass(frozen=True)
class GFit:
    """How g is fitted (Eq. 1-2): the arguments of :func:`kc.engine.experiments.get_consistency`.

    Attributes:
        order: K of Eq. 1 (ORDER).
        lam: lambda of Eq. 2 (LAMBDA); ``lam_alexnet`` (LAMBDA_ALEXNET) for AlexNet features.
        fit_limit, test_limit: images whose features fit / evaluate g (FIT_LIMIT, TEST_LIMIT).
        g_steps, g_lr, g_batch_size: g's optimiser budget (G_STEPS, G_LR, G_BATCH_SIZE).
        precision: the arithmetic of g's training steps, ``"fp32"`` or ``"bf16"``
            (G_PRECISION, ``"fp32"`` if absent; :mod:`kc.core.precision`).
    """

    order: int
    lam: float
    lam_alexnet: float
    fit_limit: int | None
    test_limit: int | None
    g_steps: int
    g_lr: float
    g_batch_size: int
    precision: str = "fp32"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"G_PRECISION must be one of {PRECISIONS}, got {self.precision!r}")
        if isinstance(self.g_steps, bool) or not isinstance(self.g_steps, int) or self.g_steps < 1:
            raise ValueError(f"G_STEPS must be an int >= 1, got {self.g_steps!r}")

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> GFit:
        """From ORDER, LAMBDA, LAMBDA_ALEXNET (LAMBDA if absent), FIT_LIMIT, TEST_LIMIT, G_*."""
        p = pick(params, ["ORDER", "LAMBDA", "FIT_LIMIT", "TEST_LIMIT", "G_STEPS", "G_LR",
                          "G_BATCH_SIZE"])  # fmt: skip
        return cls(
            order=int(p["ORDER"]),
            lam=float(p["LAMBDA"]),
            lam_alexnet=float(params.get("LAMBDA_ALEXNET", p["LAMBDA"])),
            fit_limit=p["FIT_LIMIT"],
            test_limit=p["TEST_LIMIT"],
            g_steps=int(p["G_STEPS"]),
            g_lr=float(p["G_LR"]),
            g_batch_size=int(p["G_BATCH_SIZE"]),
            precision=str(params.get("G_PRECISION", "fp32")),
        )

    def lam_for(self, *archs: str) -> float:
        """lambda of Eq. 2 for a fit touching ``archs``: ``lam_alexnet`` if one is AlexNet."""
        return float(self.lam_alexnet if "alexnet" in archs else self.lam)

    def kwargs(self, *archs: str) -> dict[str, Any]:
        """Keyword arguments of :func:`kc.engine.experiments.get_consistency` for a fit of ``archs``."""
        return {
            "order": self.order,
            "lam": self.lam_for(*archs),
            "fit_limit": self.fit_limit,
            "test_limit": self.test_limit,
            "g_steps": self.g_steps,
            "g_lr": self.g_lr,
            "g_batch_size": self.g_batch_size,
            "precision": self.precision,
        }
