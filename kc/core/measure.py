"""Measuring knowledge consistency with a fitted g: Eq. 3-4 and the variances of Sec. 4.2.

:func:`consistency` is the one-call API (fit with :func:`kc.fit_consistency`, then
:func:`evaluate_consistency`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch
from torch import Tensor

from kc.core.decompose import decompose
from kc.core.fit import MIN_EVAL_IMAGES, as_features, check_pair, fit_consistency, prepare
from kc.core.metrics import variance
from kc.core.model import ConsistencyNet


@dataclass
class ConsistencyResult:
    """What :func:`consistency` measures (all tensors on the CPU, normalised units).

    Attributes:
        model: the fitted g.
        components: ``"x0"`` .. ``"xK"`` (Eq. 4) and ``"delta"`` = x* - g(x) (Eq. 3), each
            with the shape of x*.
        target: the normalised x* the components decompose.
        variances: Var of each component and of x* (Sec. 4.2), normalised units; index
            ``Var(x0)``, ..., ``Var(xK)``, ``Var(delta)``, ``Var(x*)``.
        variances_raw: the same in the raw units of x* (components rescaled by x*'s std).
        instability: Var(delta) / Var(x*).
        evaluated_on: ``"test"`` or ``"train"`` (the fitting pair itself).
    """

    model: ConsistencyNet
    components: dict[str, Tensor]
    target: Tensor
    variances: pd.Series
    variances_raw: pd.Series
    instability: float
    evaluated_on: str = "test"
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def consistent(self) -> Tensor:
        """g(x) = x(0) + ... + x(K)."""
        return self.target - self.components["delta"]

    def __repr__(self) -> str:
        vs = ", ".join(f"{k}={v:.4g}" for k, v in self.variances.items())
        return (f"ConsistencyResult(order={self.model.order}, instability={self.instability:.4f}, "
                f"evaluated_on={self.evaluated_on!r}, {vs})")


@torch.no_grad()
def evaluate_consistency(
    g: ConsistencyNet,
    x: Any,
    x_star: Any,
    *,
    resize: str | None = None,
    batch_size: int = 256,
    evaluated_on: str = "test",
    ids: tuple[Any, Any] | None = None,
) -> ConsistencyResult:
    """Decompose x* into x(0)..x(K) and x_Delta with a fitted g, and measure variances.

    Args:
        g: a fitted consistency network (its stored normalisers are applied).
        x: raw input features (N, C, H, W) or (N, C), N >= ``MIN_EVAL_IMAGES`` (tensor or
            array-like; cast to float32).
        x_star: raw target features with N matching.
        resize: as in :func:`kc.fit_consistency`.
        batch_size: images per decomposition batch (memory only).
        evaluated_on: label recorded in the result.
        ids: optional ``(ids_x, ids_x_star)`` per-image ids or labels; misaligned pairs
            are refused.

    Returns:
        A :class:`ConsistencyResult`; ``instability`` = Var(x_Delta) / Var(x*) (Sec. 4.2);
        ``info["fit"]`` is g's :class:`kc.core.fit.FitReport` as a dict (steps, seconds,
        final_loss, converged, ...) when g carries one.
    """
    x, x_star = as_features(x, "x"), as_features(x_star, "x_star")
    check_pair(x, x_star, resize, min_images=MIN_EVAL_IMAGES, ids=ids)
    xn, tn = prepare(g, x, x_star, resize=resize)
    g.eval()
    parts = [decompose(g, xn[i:i + batch_size]) for i in range(0, xn.shape[0], batch_size)]
    comps = torch.cat(parts, dim=1)
    names = [f"x{k}" for k in range(g.order + 1)]
    components = {name: comps[k] for k, name in enumerate(names)}
    components["delta"] = tn - comps.sum(0)
    std = g.normalizer("x_star")
    scale = std.std if std is not None else torch.tensor(1.0)
    index = [f"Var({n})" for n in names] + ["Var(delta)", "Var(x*)"]
    tensors = [components[n] for n in names] + [components["delta"], tn]
    variances = pd.Series([variance(t) for t in tensors], index=index, name="variance")
    raw = pd.Series([variance(t * scale) for t in tensors], index=index, name="variance (raw units)")
    return ConsistencyResult(
        model=g,
        components=components,
        target=tn,
        variances=variances,
        variances_raw=raw,
        instability=float(variances["Var(delta)"] / variances["Var(x*)"]),
        evaluated_on=evaluated_on,
        info={"fit": g.fit_report.to_dict()} if g.fit_report is not None else {},
    )


def consistency(
    x: Any,
    x_star: Any,
    *,
    order: int = 2,
    lam: float = 0.1,
    test: tuple[Any, Any] | None = None,
    ids: tuple[Any, Any] | None = None,
    test_ids: tuple[Any, Any] | None = None,
    **fit_kwargs: Any,
) -> ConsistencyResult:
    """Fit g on (x, x*) and decompose a feature pair: the one-call API.

    Args:
        x: input features of network A, (N, C, H, W) or (N, C): a tensor, NumPy array or
            array-like of any floating dtype (cast once to float32), N >= 16
            (``kc.core.fit.MIN_FIT_IMAGES``).
        x_star: target features of network B for the same N images (not constant).
        order: K of Eq. 1.
        lam: lambda of Eq. 2.
        test: a held-out pair (x_test, x_star_test) to evaluate on. Without it the
            result is measured on the training pair (``evaluated_on == "train"``), which
            understates the residual of an expressive g.
        ids, test_ids: optional ``(ids_x, ids_x_star)`` per-image ids or labels of the
            fitting and the test pair; misaligned pairs are refused.
        **fit_kwargs: passed to :func:`kc.fit_consistency` (max_steps, lr, seed, sigma, ...).

    Returns:
        A :class:`ConsistencyResult` with components, variances and instability, and the
        fit's report in ``info["fit"]``.

    Example:
        >>> x = torch.randn(80, 4, 5, 5, generator=torch.Generator().manual_seed(0))
        >>> res = consistency(x[:64], x[:64, [2, 0, 3, 1]], test=(x[64:], x[64:, [2, 0, 3, 1]]),
        ...                   max_steps=300, warm_start=True, progress=False)
        >>> res.instability < 0.02, res.info["fit"]["monitor"]
        (True, 'train')
    """
    g = fit_consistency(x, x_star, order=order, lam=lam, ids=ids, **fit_kwargs)
    resize = fit_kwargs.get("resize")
    if test is None:
        return evaluate_consistency(g, x, x_star, resize=resize, evaluated_on="train", ids=ids)
    if not (isinstance(test, tuple) and len(test) == 2):
        raise ValueError("test must be a pair (x_test, x_star_test)")
    return evaluate_consistency(g, test[0], test[1], resize=resize, evaluated_on="test",
                                ids=test_ids)
