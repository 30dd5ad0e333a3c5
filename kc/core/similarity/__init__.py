"""Representation-similarity measures practitioners use, beside knowledge consistency.

Every measure takes two features of the same N samples, (N, C) or (N, C, H, W), as torch
tensors or numpy arrays, and returns a float computed in float64. The rule for convolutional
maps lives in one place, :mod:`kc.core.similarity._input` (``maps="flatten"``: one sample per image
with C*H*W features; ``maps="positions"``: one sample per image and position with C features;
``maps="pool"``: one sample per image with its C spatial means).

What each measure is unchanged by is data, :data:`INVARIANCES`, and the direction of its scale
is in :data:`PROPERTIES`::

    >>> INVARIANCES["linear_cka"]["invertible_linear"]
    False
    >>> PROPERTIES["procrustes"]["higher_is_similar"]
    False

Inputs are refused with a ValueError when N differs, a side is constant over all samples
(zero variance: every measure is undefined), values are not finite, or (debiased CKA) n <= 3.
Constant single features among varying ones are fine: they add nothing to CKA and Procrustes
and fall below the rank cut of the CCA measures.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from kc.core.similarity._input import MAPS, Features, as_matrix
from kc.core.similarity.alignment import procrustes, ridge_r2
from kc.core.similarity.cca import (
    FewSamplesWarning,
    canonical_correlations,
    n_directions,
    pwcca,
    svcca,
    svd_reduce,
)
from kc.core.similarity.cka import linear_cka, median_bandwidth, rbf_cka

TRANSFORMS = ("orthogonal", "isotropic_scaling", "invertible_linear", "permutation", "translation")
"""Transforms of one argument's features (columns after ``maps``): x -> x Q, c x, x A, x P, x + b."""

# True: the value is unchanged when the transform is applied to either argument (at the
# default parameters). svcca: invertible_linear holds only with keep=1; rbf_cka: isotropic
# scaling only with sigma=None (median bandwidth); ridge_r2: invertible_linear only with alpha=0.
INVARIANCES: dict[str, dict[str, bool]] = {
    "linear_cka": dict(
        orthogonal=True,
        isotropic_scaling=True,
        invertible_linear=False,
        permutation=True,
        translation=True,
    ),
    "rbf_cka": dict(
        orthogonal=True,
        isotropic_scaling=True,
        invertible_linear=False,
        permutation=True,
        translation=True,
    ),
    "svcca": dict(
        orthogonal=True,
        isotropic_scaling=True,
        invertible_linear=False,
        permutation=True,
        translation=True,
    ),
    "pwcca": dict(
        orthogonal=False,
        isotropic_scaling=True,
        invertible_linear=False,
        permutation=True,
        translation=True,
    ),
    "procrustes": dict(
        orthogonal=True,
        isotropic_scaling=True,
        invertible_linear=False,
        permutation=True,
        translation=True,
    ),
    "ridge_r2": dict(
        orthogonal=True,
        isotropic_scaling=True,
        invertible_linear=False,
        permutation=True,
        translation=True,
    ),
}

PROPERTIES: dict[str, dict[str, Any]] = {
    "linear_cka": dict(symmetric=True, higher_is_similar=True, identical=1.0),
    "rbf_cka": dict(symmetric=True, higher_is_similar=True, identical=1.0),
    "svcca": dict(symmetric=True, higher_is_similar=True, identical=1.0),
    "pwcca": dict(symmetric=False, higher_is_similar=True, identical=1.0),
    "procrustes": dict(symmetric=True, higher_is_similar=False, identical=0.0),
    "ridge_r2": dict(symmetric=False, higher_is_similar=True, identical=1.0),
}
"""``identical``: the value for y equal to x (the optimum)."""

MEASURES: dict[str, Callable[..., float]] = {
    "linear_cka": linear_cka,
    "rbf_cka": rbf_cka,
    "svcca": svcca,
    "pwcca": pwcca,
    "procrustes": procrustes,
    "ridge_r2": ridge_r2,
}

for _name, _fn in MEASURES.items():
    _fn.invariances = INVARIANCES[_name]  # type: ignore[attr-defined]
    _fn.properties = PROPERTIES[_name]  # type: ignore[attr-defined]


def compare_all(
    x: Features,
    y: Features,
    *,
    maps: str = "flatten",
    test: tuple[Features, Features] | None = None,
    debiased: bool = False,
    kernel_samples: int | None = 2048,
    cca_maps: str | None = None,
) -> dict[str, float]:
    """Every measure of :data:`MEASURES` on one pair, as a row for a table.

    Args:
        x, y: features of the same N samples, (N, C) or (N, C, H, W).
        maps: see :mod:`kc.core.similarity._input`.
        test: held-out pair for ``ridge_r2`` (the others are not fitted).
        debiased: use the debiased CKA estimators.
        kernel_samples: RBF CKA costs n^2 memory and time; above this many samples (rows
            after ``maps``) it is computed on a fixed random subset of that size (seed 0).
            None: always on all samples.
        cca_maps: the rule for maps of ``svcca`` and ``pwcca`` when it differs from ``maps``
            (for example ``"positions"`` when flattened maps have more features than samples,
            which forces every canonical correlation to 1). None: ``maps``.

    Returns:
        {measure name: value}, in the order of :data:`MEASURES`.
    """
    cca_maps = maps if cca_maps is None else cca_maps
    xm, ym = as_matrix(x, maps, name="x"), as_matrix(y, maps, name="y")
    if kernel_samples is not None and xm.shape[0] == ym.shape[0] and xm.shape[0] > kernel_samples:
        rows = torch.randperm(xm.shape[0], generator=torch.Generator().manual_seed(0))
        rows = rows[:kernel_samples]
        rbf = rbf_cka(xm[rows], ym[rows], debiased=debiased)
    else:
        rbf = rbf_cka(x, y, debiased=debiased, maps=maps)
    return {
        "linear_cka": linear_cka(x, y, debiased, maps=maps),
        "rbf_cka": rbf,
        "svcca": svcca(x, y, maps=cca_maps),
        "pwcca": pwcca(x, y, maps=cca_maps),
        "procrustes": procrustes(x, y, maps=maps),
        "ridge_r2": ridge_r2(x, y, test=test, maps=maps),
    }


__all__ = [
    "FewSamplesWarning",
    "INVARIANCES",
    "MAPS",
    "MEASURES",
    "PROPERTIES",
    "TRANSFORMS",
    "as_matrix",
    "canonical_correlations",
    "compare_all",
    "linear_cka",
    "median_bandwidth",
    "n_directions",
    "procrustes",
    "pwcca",
    "rbf_cka",
    "ridge_r2",
    "svcca",
    "svd_reduce",
]
