"""Planted feature pairs with known consistency, for teaching and for checking g.

Each case returns features x (N, C, S, S) of a pretend network A and a target x* of a
pretend network B whose relation to x is known, so what :func:`kc.consistency` should find
is known too:

* ``"permuted"``: x* is x with its channels shuffled (the paper's footnote 1): fully
  0-order consistent, instability ~ 0.
* ``"linear"``: x* = M x for a random channel mixing M: still 0-order consistent.
* ``"nonlinear"``: x* = M (x + ReLU(V x)), the form of Eq. 1 with K = 1: needs order 1.
* ``"half"``: half of x*'s channels are a permuted copy of x, half independent noise:
  instability ~ 0.5.
* ``"independent"``: x* unrelated to x: instability ~ 1.
"""

from __future__ import annotations

import torch
from torch import Tensor

# The lab compares order-0 consistency with linear CKA (Kornblith et al., 2019): kc.core.similarity's.
from kc.core.similarity import linear_cka  # noqa: F401  (re-exported as toy.linear_cka)

CASES = ("permuted", "linear", "nonlinear", "half", "independent")


def _mix(w: Tensor, z: Tensor) -> Tensor:
    """Apply a channel mixing w (C_out, C_in) at every position of z (N, C_in, H, W)."""
    return torch.einsum("oc,nchw->nohw", w, z)


def planted_pair(
    case: str, *, n: int = 512, channels: int = 8, size: int = 6, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """Make one planted pair (x, x*), both of shape (n, channels, size, size).

    Args:
        case: one of :data:`CASES`.
        n, channels, size: number of samples, channels and map side.
        seed: makes the pair reproducible.
    """
    if case not in CASES:
        raise ValueError(f"case must be one of {CASES}, got {case!r}")
    if channels < 2 or n < 1 or size < 1:
        raise ValueError(f"need n >= 1, channels >= 2, size >= 1; got {n}, {channels}, {size}")
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, channels, size, size, generator=gen)
    perm = torch.randperm(channels, generator=gen)
    m = torch.randn(channels, channels, generator=gen) / channels**0.5
    v = torch.randn(channels, channels, generator=gen) / channels**0.5
    noise = torch.randn(n, channels, size, size, generator=gen)
    if case == "permuted":
        return x, x[:, perm]
    if case == "linear":
        return x, _mix(m, x)
    if case == "nonlinear":
        return x, _mix(m, x + torch.relu(_mix(v, x)))
    if case == "half":
        half = channels // 2
        return x, torch.cat([x[:, perm[:half]], noise[:, : channels - half]], dim=1)
    return x, noise


# ---------------------------------------------------------------------------------------------
# Checks for the course lab (notebooks/00_toy_consistency.ipynb)
#
# Each check takes a student's answer, prints whether it is right (with a hint when it is not)
# and returns True or False. ``None`` means "not answered yet": it returns False without
# raising, so the lab runs top to bottom before any answer is filled in.


def _verdict(ok: bool, right: str, hint: str) -> bool:
    print(("Correct. " + right) if ok else ("Not yet. " + hint))
    return ok


def _unanswered(answer: object) -> bool:
    if answer is None:
        print("No answer yet: replace None by your answer and run this cell again.")
        return True
    return False


def _number(answer: object, name: str) -> float:
    if isinstance(answer, bool) or not isinstance(answer, int | float):
        raise TypeError(f"{name} must be a number, got {answer!r}")
    return float(answer)


def check_half_instability(answer: float | None) -> bool:
    """Exercise 1: the instability of the ``"half"`` case, predicted before fitting.

    Half of x*'s channels are a copy of x's, half are independent unit-variance noise, so a
    perfect g rebuilds the first half and leaves all of the second: 0.5 of Var(x*).
    Accepted within 0.1.
    """
    if _unanswered(answer):
        return False
    value = _number(answer, "answer")
    return _verdict(
        abs(value - 0.5) <= 0.1,
        "The noise channels carry half of Var(x*) and nothing in x predicts them, so about "
        "0.5 of the variance stays in x_Delta whatever the order K.",
        f"{value:g} is off. Which part of Var(x*) can no function of x reconstruct?",
    )


def check_directions(answer: tuple[float, float] | None) -> bool:
    """Exercise 5: (instability x -> x*, instability x* -> x) when x* = x[:, :C/2].

    x* is a subset of x's channels: x explains all of x* (0), x* explains only its own
    half of x (0.5). Accepted within 0.1 each.
    """
    if _unanswered(answer):
        return False
    if not (isinstance(answer, tuple | list) and len(answer) == 2):
        raise TypeError(f"answer must be a pair (forward, backward), got {answer!r}")
    fwd, bwd = _number(answer[0], "answer[0]"), _number(answer[1], "answer[1]")
    return _verdict(
        abs(fwd) <= 0.1 and abs(bwd - 0.5) <= 0.1,
        "Instability is not symmetric: the richer feature reconstructs the poorer one, not "
        "the reverse (the paper's Sec. 4.6 uses this between tasks).",
        f"({fwd:g}, {bwd:g}) is off. Which channels of x can x* not produce?",
    )


LAMBDA_CHOICES = ("up", "down", "unchanged")


def check_lambda_effect(answer: str | None) -> bool:
    """Exercise 3: what a larger lambda does to the share of Var(x*) in orders >= 1."""
    if _unanswered(answer):
        return False
    if answer not in LAMBDA_CHOICES:
        raise ValueError(f"answer must be one of {LAMBDA_CHOICES}, got {answer!r}")
    return _verdict(
        answer == "down",
        "Eq. 2 charges lambda * p(k)^2 for opening branch k >= 1, so g moves whatever a "
        "lower order can explain into the lower orders; too large a lambda also leaves "
        "genuinely non-linear parts in x_Delta.",
        "Look at which parameters the second term of Eq. 2 penalises.",
    )


def check_cka_case(answer: str | None) -> bool:
    """Exercise 4: the planted case that is fully order-0 consistent but has CKA clearly < 1."""
    if _unanswered(answer):
        return False
    if answer not in CASES:
        raise ValueError(f"answer must be one of {CASES}, got {answer!r}")
    return _verdict(
        answer == "linear",
        "Linear CKA is invariant only to orthogonal maps and isotropic scaling; order-0 "
        "consistency accepts any linear map, so a non-orthogonal channel mixing M x is "
        "perfectly consistent at order 0 and still lowers CKA.",
        "A permutation is orthogonal. Which case uses a general (non-orthogonal) linear map?",
    )


def order_gain(
    make_target,
    *,
    n: int = 512,
    channels: int = 8,
    size: int = 6,
    order: int = 2,
    seed: int = 0,
    **fit_kwargs,
) -> tuple[float, float]:
    """Held-out instabilities (order 0, order ``order``) of x* = make_target(x).

    x is the planted input of :func:`planted_pair` (shape (n, channels, size, size)); g is
    fitted with :func:`kc.consistency` on 3/4 of the samples and measured on the rest.

    Args:
        make_target: a function of x returning x* of shape (n, C*, size, size).
        fit_kwargs: passed to :func:`kc.consistency` (the library's defaults otherwise).

    Returns:
        (instability with K = 0, instability with K = ``order``).
    """
    from kc.core.measure import consistency  # imports nothing from here; keeps kc.studies.toy light

    x, _ = planted_pair("permuted", n=n, channels=channels, size=size, seed=seed)
    x_star = make_target(x.clone())
    if not isinstance(x_star, Tensor):
        raise TypeError(f"make_target must return a tensor, got {type(x_star).__name__}")
    if x_star.dim() != 4 or x_star.shape[0] != n or tuple(x_star.shape[2:]) != (size, size):
        raise ValueError(
            f"make_target must return shape ({n}, C*, {size}, {size}), got {tuple(x_star.shape)}"
        )
    cut = n * 3 // 4
    fit_kwargs.setdefault("progress", False)
    insts = []
    for k in (0, order):
        res = consistency(
            x[:cut], x_star[:cut], order=k, test=(x[cut:], x_star[cut:]), seed=seed, **fit_kwargs
        )
        insts.append(float(res.instability))
    return insts[0], insts[1]


def check_order_one_relation(make_target, **kwargs) -> bool:
    """Exercise 2: a relation x -> x* that only orders >= 1 can explain.

    Passes when the higher orders remove a clear part of what a linear map leaves:
    instability(K=0) - instability(K=2) >= 0.15 and instability(K=2) <= 0.6 instability(K=0),
    both on held-out samples (:func:`order_gain`).
    """
    if _unanswered(make_target):
        return False
    if not callable(make_target):
        raise TypeError(f"answer must be a function of x, got {make_target!r}")
    inst0, inst2 = order_gain(make_target, **kwargs)
    print(f"held-out instability: order 0 {inst0:.3f}, order 2 {inst2:.3f}")
    return _verdict(
        inst0 - inst2 >= 0.15 and inst2 <= 0.6 * inst0,
        "A linear map of x leaves this part of x* unexplained and the ReLU branches recover it.",
        "Either a linear map already explains x* (no gain from the higher orders) or nothing "
        "does (noise). Try rectifying a channel mixing and mixing the result again.",
    )
