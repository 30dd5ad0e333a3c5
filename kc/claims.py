"""The paper's claims as data: one :class:`Claim` per checked statement.

A notebook computes its claims from its own numbers and writes them with
:func:`kc.output.save_claims`; the book's scorecard reads them back. ``status`` is always
computed from the data, never typed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["STATUSES", "Claim"]

#: Allowed values of :attr:`Claim.status`.
STATUSES = ("reproduced", "not reproduced", "not testable")


@dataclass(frozen=True)
class Claim:
    """One claim of the paper checked on our numbers.

    Attributes:
        id: stable identifier, ``"<notebook>.<claim>"``, e.g. ``"table1.alexnet_depth"``.
        item: the paper's item, e.g. ``"Table 1"`` or ``"Fig. 4 (left)"``.
        claim: the claim in one line.
        paper: the paper's evidence for it, one line.
        status: one of :data:`STATUSES`.
        evidence: our numbers that decided the status, with their spread.
        numbers: the same numbers by name (floats), for the scorecard.

    Example:
        >>> Claim("x.y", "Fig. 4", "a < b", "plot", "reproduced", "a 1 < b 2", {"a": 1.0}).status
        'reproduced'
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
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        for name in ("id", "item", "claim"):
            if not getattr(self, name).strip():
                raise ValueError(f"{name} must not be empty")
