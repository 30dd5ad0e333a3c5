"""The claims scorecard: one row per claim of the paper, read from the notebooks' outputs.

Each notebook writes ``<outputs>/<notebook>/verdicts.json`` (``kc.book.output.save_claims``):
``{"notebook", "profile", "parameters", "claims": [{"id", "item", "claim", "paper", "status",
"evidence", "numbers"}, ...]}``. :func:`scorecard_rows` reads them in manifest order (a notebook
without the file is one :data:`NOT_RUN` row) and :func:`scorecard_page` writes the page.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kc.run import runner
from kc.studies.claims import STATUSES, shown_status

__all__ = ["NOT_RUN", "STATUSES", "ScoreRow", "read_verdicts", "scorecard_page", "scorecard_rows"]

#: Status shown for a notebook whose ``verdicts.json`` does not exist.
NOT_RUN = "not run"


@dataclass(frozen=True)
class ScoreRow:
    """One row of the scorecard: a claim of one notebook, or a notebook that has not run.

    Attributes:
        notebook: manifest name (the chapter).
        item: the paper item (``"Table 1"``).
        claim: the claim in one line ("" for a notebook that has not run).
        paper: the paper's evidence.
        status: one of :data:`STATUSES`, or :data:`NOT_RUN`.
        evidence: our numbers with their spread, or why the claim is not testable.
        profile: the profile the notebook ran with ("" when not run).
        id: the claim's id.
        numbers: the numbers that decided the status.
        stale: what changed since the notebook's results were computed ("" when fresh).
    """

    notebook: str
    item: str
    claim: str
    paper: str
    status: str
    evidence: str
    profile: str
    id: str = ""
    numbers: dict[str, float | None] = field(default_factory=dict)
    stale: str = ""


_CLAIM_KEYS = ("id", "item", "claim", "paper", "status", "evidence")


def read_verdicts(path: Path) -> dict[str, Any]:
    """Read and check one ``verdicts.json`` (``{"notebook", "profile", "parameters", "claims"}``).

    Raises:
        ValueError: the file is not valid JSON, misses a key, or a claim has an unknown status.
    """
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(data).__name__}")
    missing = [k for k in ("notebook", "profile", "claims") if k not in data]
    if missing:
        raise ValueError(f"{path} misses {missing}; it has {sorted(data)}")
    if not isinstance(data["claims"], list):
        raise ValueError(f"{path}: 'claims' must be a list, got {type(data['claims']).__name__}")
    for i, claim in enumerate(data["claims"]):
        absent = [k for k in _CLAIM_KEYS if k not in claim]
        if absent:
            raise ValueError(f"{path}: claim {i} misses {absent}")
        if claim["status"] not in STATUSES:
            raise ValueError(
                f"{path}: claim {claim['id']!r} has status {claim['status']!r}; "
                f"expected one of {STATUSES}"
            )
    return data


def scorecard_rows(
    outputs: Path,
    manifest: Sequence[runner.Notebook] = runner.MANIFEST,
    stale: Mapping[str, str] | None = None,
) -> list[ScoreRow]:
    """The scorecard's rows: every claim of every ``<outputs>/<nb>/verdicts.json``, in manifest
    order, and one :data:`NOT_RUN` row per notebook without that file. ``stale`` maps a
    notebook whose results are stale to what changed (:func:`kc.run.results.status`)."""
    stale = stale or {}
    rows: list[ScoreRow] = []
    for nb in manifest:
        path = Path(outputs) / nb.name / "verdicts.json"
        if not path.is_file():
            rows.append(ScoreRow(nb.name, nb.paper_item, "", "", NOT_RUN, "", ""))
            continue
        data = read_verdicts(path)
        for c in data["claims"]:
            rows.append(
                ScoreRow(
                    notebook=nb.name,
                    item=str(c["item"]),
                    claim=str(c["claim"]),
                    paper=str(c["paper"]),
                    status=str(c["status"]),
                    evidence=str(c["evidence"]),
                    profile=str(data["profile"]),
                    id=str(c["id"]),
                    numbers=dict(c.get("numbers") or {}),
                    stale=stale.get(nb.name, ""),
                )
            )
    return rows


def table_cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|") or "-"


_SHOWN_STATUS = {
    "reproduced": "reproduced",
    "not reproduced": "**not reproduced**",
    "not testable": "not testable at this scale",
    NOT_RUN: "*not run*",
}


def _shown(row: ScoreRow) -> str:
    shown = shown_status(row.status, row.evidence)
    return _SHOWN_STATUS[row.status] if shown == row.status else shown


def scorecard_page(rows: Sequence[ScoreRow]) -> str:
    """The scorecard page (MyST Markdown): counts per status (claims of stale notebooks counted
    apart), then one table row per claim."""
    fresh = [r for r in rows if not r.stale]
    counts = {s: sum(r.status == s for r in fresh) for s in (*STATUSES, NOT_RUN)}
    claims = len(fresh) - counts[NOT_RUN]
    no_spread = sum(shown_status(r.status, r.evidence) != r.status for r in fresh)
    stale_rows = [r for r in rows if r.stale]
    stale_counts = {s: sum(r.status == s for r in stale_rows) for s in STATUSES}
    stale_books = sorted({r.notebook for r in stale_rows})
    stale_line = (
        f"**Stale: {len(stale_rows)} more claims** from {len(stale_books)} notebooks whose code, "
        "parameters or paper data changed after their numbers were computed, counted apart: "
        f"{stale_counts['reproduced']} reproduced, {stale_counts['not reproduced']} not "
        f"reproduced, {stale_counts['not testable']} not testable ({', '.join(stale_books)}); "
        "they are marked *stale* below."
        if stale_rows
        else ""
    )
    profiles = sorted({r.profile for r in rows if r.profile})
    lines = [
        "# Claims scorecard",
        "",
        "Every claim of the paper that a notebook checks, with the outcome the notebook computed "
        "from its own numbers (its `verdicts.json`); nothing on this page is typed in by hand. "
        "*Not testable at this scale* means the parameters cannot test the claim at all (for "
        "example one layer where the claim compares two); it is not a failed reproduction. "
        "*Not testable: no spread* marks a gain measured on one pair of networks, which cannot "
        "be told from what the seeds alone move. A "
        "notebook that has not been executed for this build shows as *not run*.",
        "",
        f"**{claims} claims**{' from fresh results' if stale_rows else ''}: "
        f"{counts['reproduced']} reproduced, "
        f"{counts['not reproduced']} not reproduced, {counts['not testable']} not testable"
        f"{f' ({no_spread} of them for want of a spread: a gain on one pair of networks)' if no_spread else ''}; "
        f"{counts[NOT_RUN]} notebooks not run. Profiles: "
        f"{', '.join(f'`{p}`' for p in profiles) or 'none'}. Run times are on "
        "{doc}`the summary of the runs <summary>`.",
        "",
        *([stale_line, ""] if stale_line else []),
        "The first column links to the chapter (the notebook) that checks the claim.",
        "",
        "| item (chapter) | claim | paper | ours | evidence (ours) | profile |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        claim = r.claim
        if r.status == NOT_RUN:
            entry = runner.manifest_entry(r.notebook)
            claim = f"({entry.title if entry else r.notebook})"
        lines.append(
            f"| {{doc}}`{table_cell(r.item)} <{r.notebook}>` | {table_cell(claim)} | {table_cell(r.paper)} "
            f"| {_shown(r)}{' (*stale*)' if r.stale else ''} "
            f"| {table_cell(r.evidence)} | {table_cell(r.profile)} |"
        )
    return "\n".join(lines) + "\n"
