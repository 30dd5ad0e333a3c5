"""The paper's claims as data: what was claimed, what we measured, and the outcome.

A :class:`Claim` is computed from a notebook's numbers, never typed in by hand. Its
``status`` is one of :data:`STATUSES`:

* ``"reproduced"`` / ``"not reproduced"``: the parameters allow the check and our numbers
  pass / fail it;
* ``"not testable"``: the parameters cannot test the claim at all (e.g. "the deeper layer is
  less stable" with one layer, or "the gain exceeds the seed spread" with one seed pair). This
  is never counted as a failed reproduction. A gain measured on a single pair of networks is
  "not testable: no spread" (:func:`gain_check`, :func:`no_spread`): one pair cannot tell a
  gain from what the seeds alone move.

Build claims with :func:`check` (from a boolean computed on the data) or :func:`untestable`
(with the reason the parameters cannot test it). Writing them to disk is
:func:`kc.book.output.save_claims`'s job.

Example:
    >>> c = check("t1.depth", "Table 1", "conv5 is less stable than conv4", 0.12 > 0.09,
    ...           evidence="0.12 vs 0.09", paper="0.107 vs 0.086",
    ...           numbers={"conv4": 0.09, "conv5": 0.12})
    >>> c.status
    'reproduced'
    >>> untestable("t1.archs", "Table 1", "deeper networks are less stable",
    ...            "needs two architectures, got 1 (alexnet)").status
    'not testable'
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "STATUSES",
    "Claim",
    "check",
    "from_checks",
    "gain_check",
    "no_spread",
    "shown_status",
    "spread_check",
    "standard_error",
    "untestable",
    "claims_markdown",
    "count_statuses",
]

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
NOT_TESTABLE = "not testable"
#: The possible outcomes of a claim, in display order.
STATUSES = (REPRODUCED, NOT_REPRODUCED, NOT_TESTABLE)
#: How the evidence of a claim "not testable: no spread" begins.
NO_SPREAD = "no spread: "


@dataclass(frozen=True)
class Claim:
    """One of the paper's claims checked on our numbers.

    Attributes:
        id: stable identifier, ``"<item>.<what>"``, e.g. ``"table1.alexnet_depth"``.
        item: the paper item the claim belongs to, e.g. ``"Table 1"`` or ``"Sec. 4.1"``.
        claim: the claim in one line.
        paper: the paper's evidence in one line ("" when the paper gives no number for it).
        status: one of :data:`STATUSES`.
        evidence: our numbers (with their spread where there is one), or why the claim is not
            testable with these parameters.
        numbers: the numbers that decided the status, by name (finite or NaN floats).
    """

    id: str
    item: str
    claim: str
    paper: str
    status: str
    evidence: str
    numbers: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("id", "item", "claim"):
            if not str(getattr(self, name)).strip():
                raise ValueError(f"Claim.{name} must not be empty, got {getattr(self, name)!r}")
        if self.status not in STATUSES:
            raise ValueError(f"Claim.status must be one of {STATUSES}, got {self.status!r}")
        numbers = {}
        for key, value in dict(self.numbers).items():
            try:
                numbers[str(key)] = float(value)
            except (TypeError, ValueError):
                raise ValueError(
                    f"Claim.numbers[{key!r}] must be a number, got {value!r}"
                ) from None
        object.__setattr__(self, "numbers", numbers)

    @property
    def tested(self) -> bool:
        """Whether the parameters allowed the check (status is not "not testable")."""
        return self.status != NOT_TESTABLE

    @property
    def shown_status(self) -> str:
        """The status as the pages show it: ``"not testable: no spread"`` apart."""
        return shown_status(self.status, self.evidence)

    def line(self) -> str:
        """One Markdown list item: ``**status**: claim (our evidence; paper: ...)``."""
        paper = f"; paper: {self.paper}" if self.paper else ""
        shown = "NOT reproduced" if self.status == NOT_REPRODUCED else self.status
        if self.status == NOT_TESTABLE:
            shown = self.shown_status if self.shown_status != NOT_TESTABLE else (
                "not testable with these parameters")  # fmt: skip
        return f"**{shown}**: {self.item}, {self.claim} ({self.evidence}{paper})"


def check(
    id: str,
    item: str,
    claim: str,
    holds: bool | np.bool_,
    *,
    evidence: str,
    paper: str = "",
    numbers: Mapping[str, float] | None = None,
) -> Claim:
    """A tested claim: ``"reproduced"`` if ``holds`` else ``"not reproduced"``.

    Args:
        id, item, claim, paper, evidence, numbers: as in :class:`Claim`.
        holds: whether our numbers support the claim; a boolean computed from the data.

    Raises:
        TypeError: ``holds`` is not a boolean (e.g. a number or a string typed in by hand).
    """
    if not isinstance(holds, bool | np.bool_):
        raise TypeError(f"holds must be a bool computed from the data, got {holds!r}")
    status = REPRODUCED if bool(holds) else NOT_REPRODUCED
    return Claim(id, item, claim, paper, status, evidence, dict(numbers or {}))


def untestable(
    id: str,
    item: str,
    claim: str,
    reason: str,
    *,
    paper: str = "",
    numbers: Mapping[str, float] | None = None,
) -> Claim:
    """A claim the parameters cannot test; ``reason`` says what it needs and what it got."""
    if not reason.strip():
        raise ValueError("reason must say why the parameters cannot test the claim")
    return Claim(id, item, claim, paper, NOT_TESTABLE, reason, dict(numbers or {}))


def shown_status(status: str, evidence: str) -> str:
    """``status``, or ``"not testable: no spread"`` for a claim :func:`no_spread` made."""
    return "not testable: no spread" if status == NOT_TESTABLE and evidence.startswith(
        NO_SPREAD) else status  # fmt: skip


#: What a claim on one pair lacks (:func:`no_spread`'s default ``needs``).
NEEDS_PAIRS = "telling a gain from seed noise needs two or more pairs"


def no_spread(
    id: str, item: str, claim: str, what: str, *, paper: str = "",
    numbers: Mapping[str, float] | None = None, needs: str = NEEDS_PAIRS,
) -> Claim:  # fmt: skip
    """A claim resting on one pair of networks: "not testable: no spread" (``what``: our one
    number, e.g. ``"one pair, gain +1.10"``; ``needs``: what would make it testable, e.g.
    ``"telling an ordering from seed noise needs two or more pairs"``).

    Example:
        >>> no_spread("t.x", "Table 1", "x", "one pair", needs="a trend needs two teachers").evidence
        'no spread: one pair; a trend needs two teachers'
    """
    if not needs.strip():
        raise ValueError("needs must say what would make the claim testable")
    reason = f"{NO_SPREAD}{what}; {needs}"
    return untestable(id, item, claim, reason, paper=paper, numbers=numbers)


def spread_check(
    id: str,
    item: str,
    claim: str,
    *,
    mean: float,
    se: float,
    n: int,
    improved: int | None = None,
    paper: str = "",
    unit: str = "points",
    context: str = "",
    quantity: str = "gain",
) -> Claim:
    """Does a mean gain over ``n`` pairs hold beyond its standard error ``se``?

    Reproduced when ``mean > 0`` and ``mean > se``; with ``n < 2`` (no spread to compare
    with) the claim is "not testable: no spread" (:func:`no_spread`). ``improved``: pairs
    with a positive gain; ``context`` (e.g. ``"82.40 vs 81.30"``) starts the evidence;
    ``quantity`` names the number in it (``"gain"``, or e.g. ``"difference"`` for a
    comparison that nothing was done to improve).
    """
    lead = f"{context}, " if context else ""
    if n < 2:
        return no_spread(id, item, claim, f"{lead}one pair, {quantity} {mean:+.2f} {unit}",
                         paper=paper, numbers={"gain": mean, "n_pairs": n},
                         needs=NEEDS_PAIRS.replace("a gain", f"a {quantity}"))  # fmt: skip
    if not (math.isfinite(mean) and math.isfinite(se) and se >= 0):
        raise ValueError(f"need a finite mean and standard error >= 0, got {mean} and {se}")
    holds = bool(mean > 0 and mean > se)
    ratio = f"{mean / se:+.1f} SE" if se > 0 else "no variation over pairs"
    positive = "improved" if quantity == "gain" else "positive"
    pairs = f", {positive} in {improved}/{n} pairs" if improved is not None else ""
    evidence = (f"{lead}{quantity} {mean:+.2f} ± {se:.2f} {unit} (mean ± standard error over {n} "
                f"pairs, {ratio}){pairs}")  # fmt: skip
    numbers = {"gain": mean, "se": se, "n_pairs": float(n)}
    if improved is not None:
        numbers["pairs_improved"] = float(improved)
    return check(id, item, claim, holds, evidence=evidence, paper=paper, numbers=numbers)


def standard_error(values: Sequence[float]) -> float:
    """Standard error of the mean of ``values`` (sample std / sqrt(n)); NaN for fewer than two.

    Example:
        >>> standard_error([1.0, 3.0]), standard_error([2.0])
        (1.0, nan)
    """
    v = np.asarray([float(x) for x in values], dtype=float)
    return float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else math.nan


def gain_check(
    id: str,
    item: str,
    claim: str,
    gains: Sequence[float],
    *,
    paper: str = "",
    unit: str = "points",
    context: str = "",
    quantity: str = "gain",
) -> Claim:
    """:func:`spread_check` on ``gains``, one per pair of networks (or per seed): their mean
    and its standard error (sample std / sqrt(n)).

    Example:
        >>> gain_check("t.g", "Table 3", "x0 helps", [0.5, 0.7, 0.3]).status
        'reproduced'
        >>> gain_check("t.g", "Table 3", "x0 helps", [1.5, -1.3, 0.1]).status
        'not reproduced'
        >>> gain_check("t.g", "Table 3", "x0 helps", [1.1]).shown_status
        'not testable: no spread'
    """
    values = np.asarray([float(g) for g in gains], dtype=float)
    if values.size == 0 or not np.isfinite(values).all():
        raise ValueError(f"gains must be one or more finite numbers, got {list(gains)}")
    se = standard_error(values)
    return spread_check(id, item, claim, mean=float(values.mean()), se=se, n=int(values.size),
                        improved=int((values > 0).sum()), paper=paper, unit=unit,
                        context=context, quantity=quantity)  # fmt: skip


def count_statuses(claims: Iterable[Claim]) -> dict[str, int]:
    """``{status: count}`` over :data:`STATUSES` (zeros included)."""
    counts = dict.fromkeys(STATUSES, 0)
    for c in claims:
        counts[c.status] += 1
    return counts


def claims_markdown(claims: Iterable[Claim]) -> str:
    """The claims as a Markdown list followed by a one-line count of the statuses."""
    items = list(claims)
    if not items:
        raise ValueError("no claims to show")
    ids = [c.id for c in items]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise ValueError(f"claim ids must be unique, repeated: {repeated}")
    counts = count_statuses(items)
    summary = ", ".join(f"{n} {s}" for s, n in counts.items())
    return "\n".join(f"- {c.line()}" for c in items) + f"\n\n{summary}\n"


def from_checks(
    ours: Mapping[str, Mapping[str, Any]], paper: Mapping[str, Mapping[str, Any]], item: str
) -> list[Claim]:
    """Claims from checks on our numbers beside the same checks on the paper's numbers.

    A check is ``{"claim", "holds" (bool, or None when the data cannot decide it), "evidence",
    "numbers"}`` and optionally ``"setting"`` (appended to the claim in brackets), keyed by the
    claim id.

    Every check is named by its id in both; a check our parameters cannot make (``holds`` is
    None, or missing from ``ours``) is "not testable", never "not reproduced". A check neither
    side can make (e.g. "the deeper layer is less stable" for a network the paper reports one
    layer of, and so do we) is no claim of the paper's and is left out.
    """
    claims = []
    for cid in dict.fromkeys([*paper, *ours]):
        theirs, mine = paper.get(cid), ours.get(cid)
        paper_made = theirs is not None and theirs["holds"] is not None
        we_can = mine is not None and mine["holds"] is not None
        if not (paper_made or we_can):
            continue
        paper_text = theirs["evidence"] if paper_made else ""
        where = (mine or theirs or {}).get("setting")
        text = (mine or theirs)["claim"] + (f" ({where})" if where else "")
        if not we_can:
            reason = "the parameters do not include the networks or layers it compares"
            reason = mine["evidence"] if mine is not None else reason
            claims.append(untestable(cid, item, text, reason, paper=paper_text))
        else:
            claims.append(
                check(cid, item, text, mine["holds"], evidence=mine["evidence"],
                      paper=paper_text, numbers=mine["numbers"])
            )  # fmt: skip
    return claims
