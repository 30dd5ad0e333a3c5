"""Seed, then build: fresh modules that do not depend on what the process did before.

Example:
    >>> from torch import nn
    >>> a = seeded_build(0, lambda: nn.Linear(3, 2))
    >>> b = seeded_build(0, lambda: nn.Linear(3, 2))
    >>> bool((a.weight == b.weight).all())
    True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import torch

__all__ = ["seeded_build"]

T = TypeVar("T")


def seeded_build(seed: int, build: Callable[[], T]) -> T:
    """Call ``build()`` with torch's CPU generator seeded by ``seed``; restore it afterwards.

    The initial weights of a fresh network or head then depend on ``seed`` only, and the
    global random state seen by the caller is unchanged.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()
