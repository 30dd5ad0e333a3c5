"""The paper's claims as data (minimal version; the studies helper's kc/claims.py replaces it).

A :class:`Claim` is computed from a notebook's numbers, never typed in by hand; its ``status``
is one of :data:`STATUSES`. ``"not testable"`` means the parameters cannot test the claim (for
example one seed where a spread is needed); it is never counted as a failed reproduction.

Example:
    >>> Claim("fig5_cross_task.direction", "Fig. 5", "A explains B better", "", "reproduced",
    ...       "0.2 vs 0.4", {"a_to_b": 0.2}).status
    'reproduced'
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["STATUSES", "Claim"]

#: The possible outcomes of a claim.
STATUSES = ("reproduced", "not reproduced", "not testable")


@dataclass(frozen=True)
class Claim:
    """One of the paper's claims checked on our numbers.

    Attributes:
        id: stable identifier ``"<notebook>.<what>"``.
        item: the paper item, e.g. ``"Fig. 1"``.
        claim: the claim in one line.
        paper: the paper's evidence in one line ("" when it gives no number).
        status: one of :data:`STATUSES`.
        evidence: our numbers with their spread, or why the claim is not testable.
        numbers: the numbers that decided the status, by name.
    """

    id: str
    item: str
    claim: str
    paper: str
    status: str
    evidence: str
    numbers: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"Claim.status must be one of {STATUSES}, got {self.status!r}")
        object.__setattr__(self, "numbers", {str(k): float(v) for k, v in self.numbers.items()})
