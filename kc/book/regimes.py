"""The regimes page: where the paper's claims hold, with networks that over-fit and without.

A notebook that checks a claim in the paper's over-fitting regime too (:mod:`kc.studies.regime`)
saves it beside the current regime's with the id ``<id>.<regime>`` (e.g. ``table3.every_cell``
and ``table3.every_cell.overfit``), and the networks' train/test gaps as ``<nb>/*_gaps.csv``
(columns ``regime, arch, datasets, train_accuracy, test_accuracy, gap``). This page pairs the
claims, counts them per regime, and reads each pair: holds in both, only when the networks
over-fit, only in the current regime, or in neither. Nothing on it is typed in by hand.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from kc.book.scorecard import scorecard_rows, table_cell
from kc.run import runner
from kc.studies.claims import REPRODUCED, shown_status

__all__ = [
    "CURRENT",
    "FITS",
    "RegimePair",
    "cost_table",
    "fit_sentence",
    "gap_table",
    "gap_table_from",
    "page_for",
    "reading",
    "regime_page",
    "regime_pairs",
]

#: The name of the regime the main tables use.
CURRENT = "current"


@dataclass(frozen=True)
class RegimePair:
    """One claim checked in two regimes.

    Attributes:
        notebook, item, claim: where the claim is, and the claim (without the regime's tag).
        regime: the other regime's name (e.g. ``"overfit"``).
        current, other: the shown status in the current regime and in ``regime``.
        current_evidence, other_evidence: our numbers in each.
    """

    notebook: str
    item: str
    claim: str
    regime: str
    current: str
    other: str
    current_evidence: str
    other_evidence: str


def reading(current: str, other: str, regime: str) -> str:
    """Where a claim holds, from its two shown statuses.

    Example:
        >>> reading("not reproduced", "reproduced", "overfit")
        'only in the overfit regime'
    """
    if "not testable" in current or "not testable" in other:
        return "not testable in both" if current == other else "testable in one regime only"
    holds = (current == REPRODUCED, other == REPRODUCED)
    return {
        (True, True): "in both",
        (False, True): f"only in the {regime} regime",
        (True, False): f"only in the {CURRENT} regime",
        (False, False): "in neither",
    }[holds]


def regime_pairs(
    outputs: Path, manifest: Sequence[runner.Notebook] = runner.MANIFEST
) -> list[RegimePair]:
    """Every claim with a ``<id>.<regime>`` twin in the same ``verdicts.json``, in manifest order
    (the scorecard's rows, :func:`kc.book.scorecard.scorecard_rows`, paired by id)."""
    rows = [r for r in scorecard_rows(outputs, manifest) if r.id]
    by_id = {(r.notebook, r.id): r for r in rows}
    pairs = []
    for r in rows:
        base, _, regime = r.id.rpartition(".")
        twin = by_id.get((r.notebook, base))
        if twin is None or "." not in base:
            continue
        pairs.append(
            RegimePair(
                notebook=r.notebook,
                item=twin.item,
                claim=twin.claim,
                regime=regime,
                current=shown_status(twin.status, twin.evidence),
                other=shown_status(r.status, r.evidence),
                current_evidence=twin.evidence,
                other_evidence=r.evidence,
            )
        )
    return pairs


#: The columns of :func:`gap_table`.
_GAP_COLUMNS = ["regime", "arch", "datasets", "networks", "train_accuracy", "test_accuracy", "gap",
                "lowest_train"]  # fmt: skip


def gap_table(outputs: Path, manifest: Sequence[runner.Notebook] = runner.MANIFEST) -> pd.DataFrame:
    """Mean train/test accuracy and gap per regime and architecture over every ``*_gaps.csv``.

    Returns:
        Columns ``regime, arch, datasets, networks, train_accuracy, test_accuracy, gap,
        lowest_train`` (the least training accuracy of a network in the group); empty when no
        notebook saved gaps. A network measured by two notebooks counts once.
    """
    frames = [
        pd.read_csv(path)
        for nb in manifest
        for path in sorted((Path(outputs) / nb.name).glob("*_gaps.csv"))
    ]
    if not frames:
        return pd.DataFrame(columns=_GAP_COLUMNS)
    return gap_table_from(pd.concat(frames, ignore_index=True))


def gap_table_from(nets: pd.DataFrame) -> pd.DataFrame:
    """:func:`gap_table` of the networks in ``nets`` (columns ``regime, network, arch, datasets,
    train_accuracy, test_accuracy, gap``, as :func:`kc.studies.regime.gaps` saves them)."""
    nets = nets.drop_duplicates(["regime", "network"])
    out = nets.groupby(["regime", "arch", "datasets"], sort=False).agg(
        networks=("network", "count"),
        train_accuracy=("train_accuracy", "mean"),
        test_accuracy=("test_accuracy", "mean"),
        gap=("gap", "mean"),
        lowest_train=("train_accuracy", "min"),
    )
    return out.reset_index()[_GAP_COLUMNS].sort_values("regime", kind="stable", ignore_index=True)


#: Training accuracy (%) from which a network counts as fitting its training images (issue 24:
#: the over-fitting regime trains "until training accuracy is near 100%").
FITS = 99.0


def fit_sentence(gaps: pd.DataFrame, regime: str, threshold: float = FITS) -> str:
    """Whether every network of ``regime`` in :func:`gap_table`'s ``gaps`` fits its training
    images (training accuracy >= ``threshold``): one sentence naming those that do not.

    Example:
        >>> g = pd.DataFrame({"regime": ["overfit"] * 2, "arch": ["alexnet", "vgg16"],
        ...                   "datasets": ["fashion-mnist"] * 2, "lowest_train": [83.1, 100.0]})
        >>> fit_sentence(g, "overfit")
        'In the overfit regime, not every network fits its training images: alexnet (fashion-mnist) down to 83.1% (the others reach at least 99%).'
    """
    part = gaps[gaps["regime"] == regime]
    if part.empty:
        raise ValueError(f"no networks of regime {regime!r} in the gaps; it has {sorted(set(gaps['regime']))}")
    short = part[part["lowest_train"] < threshold]
    if short.empty:
        return (f"In the {regime} regime, every network fits its training images: the lowest "
                f"training accuracy is {part['lowest_train'].min():.1f}% (at least {threshold:g}%).")  # fmt: skip
    names = ", ".join(f"{r.arch} ({r.datasets}) down to {r.lowest_train:.1f}%" for r in short.itertuples())
    others = f" (the others reach at least {threshold:g}%)" if len(short) < len(part) else ""
    return f"In the {regime} regime, not every network fits its training images: {names}{others}."


def cost_table(outputs: Path, manifest: Sequence[runner.Notebook] = runner.MANIFEST) -> pd.DataFrame:
    """What the second regime cost each notebook: its seconds (``<nb>/overfit_cost.csv``)
    beside the notebook's whole run (``<nb>/run.json``'s ``seconds``, when recorded).

    Returns:
        Columns ``notebook, regime, seconds, notebook_seconds``; empty when none saved it.
    """
    rows = []
    for nb in manifest:
        path = Path(outputs) / nb.name / "overfit_cost.csv"
        if not path.is_file():
            continue
        record = Path(outputs) / nb.name / "run.json"
        total = float("nan")
        if record.is_file():
            total = float(json.loads(record.read_text()).get("seconds", float("nan")))
        for r in pd.read_csv(path).itertuples():
            rows.append({"notebook": nb.name, "regime": r.regime, "seconds": float(r.seconds),
                         "notebook_seconds": total})  # fmt: skip
    return pd.DataFrame(rows, columns=["notebook", "regime", "seconds", "notebook_seconds"])


def decide(pairs: Sequence[RegimePair], costs: pd.DataFrame | None) -> str:
    """Issue 24's rule, computed: the other regime becomes the default when it reproduces more
    claims than the current one at no more cost (its seconds against the rest of the notebooks'
    runs); "" without pairs.

    Example:
        >>> p = RegimePair("t", "Table 3", "c", "overfit", "not reproduced", "reproduced", "", "")
        >>> decide([p], None).startswith("The overfit regime reproduces 1 claims, the current 0")
        True
    """
    if not pairs:
        return ""
    regime = pairs[0].regime
    ours = sum(p.current == REPRODUCED for p in pairs)
    theirs = sum(p.other == REPRODUCED for p in pairs)
    text = f"The {regime} regime reproduces {theirs} claims, the {CURRENT} {ours}, of {len(pairs)} checked in both."
    known = costs is not None and not costs.empty and costs["notebook_seconds"].notna().all()
    if not known:
        return text + " Their costs are not recorded, so the rule (more claims at no more cost) cannot be applied yet."
    spent = float(costs["seconds"].sum())
    rest = float((costs["notebook_seconds"] - costs["seconds"]).sum())
    cheaper = spent <= rest
    verdict = (f"by the rule of issue 24 (more claims at no more cost) the {regime} regime should "
               "become the default of these notebooks" if theirs > ours and cheaper else
               f"by the rule of issue 24 (more claims at no more cost) the {CURRENT} regime stays the default")  # fmt: skip
    return (f"{text} The {regime} regime took {spent:.0f} s in these notebooks, the rest of their "
            f"runs {rest:.0f} s: {verdict}.")


def _counts(pairs: Sequence[RegimePair], side: str) -> str:
    shown = [getattr(p, side) for p in pairs]
    order = ["reproduced", "not reproduced", "not testable: no spread", "not testable"]
    return ", ".join(f"{shown.count(k)} {k}" for k in order if shown.count(k))


def regime_page(
    pairs: Sequence[RegimePair], gaps: pd.DataFrame, costs: pd.DataFrame | None = None
) -> str:
    """The page (MyST Markdown): the networks' gaps, the counts per regime, one row per claim,
    and what the second regime cost each notebook."""
    lines = [
        "# Where the paper's claims hold",
        "",
        "The paper trains its networks from scratch on about 30 images per class, and its captions "
        "put its gains down to over-fitting. Our main tables use networks that hardly over-fit. "
        "The notebooks whose claims the paper ties to over-fitting (Tables 1, 3 and 4, Sec. 4.1, "
        "born-again) are therefore also run in the paper's regime: networks trained from "
        "scratch on a few images per class until they fit them, g fitted and the heads "
        "fine-tuned on those images (each notebook states its choices). This page puts the two "
        "regimes' verdicts side by side, claim by claim. Every verdict is computed by a notebook "
        "(its `verdicts.json`); a gain needs a mean above its standard error over at least two "
        "pairs of networks, and a gain on one pair is *not testable: no spread*.",
        "",
    ]
    if not pairs:
        lines += ["No notebook has checked a claim in a second regime yet: run Tables 3 and 4 "
                  "with `OVERFIT_PER_CLASS` set (the `small` profile sets it).", ""]  # fmt: skip
        return "\n".join(lines)
    lines += ["## Do the networks over-fit?", ""]
    if gaps.empty:
        lines += ["No notebook saved the networks' train/test gaps.", ""]
    else:
        lines += [
            "Accuracy in % on each network's own training images (eval mode) and on the test "
            "images, mean over networks:",
            "",
            "| regime | architecture | data sets | networks | train | test | gap | lowest train |",
            "|---|---|---|---|---|---|---|---|",
            *(
                f"| {r.regime} | {r.arch} | {r.datasets} | {r.networks} | {r.train_accuracy:.1f} "
                f"| {r.test_accuracy:.1f} | {r.gap:+.1f} | {r.lowest_train:.1f} |"
                for r in gaps.itertuples()
            ),
            "",
            *(fit_sentence(gaps, r) for r in dict.fromkeys(gaps["regime"]) if r != CURRENT),
            "",
        ]
    regimes = sorted({p.regime for p in pairs})
    lines += ["## The claims in both regimes", ""]
    for regime in regimes:
        part = [p for p in pairs if p.regime == regime]
        readings = [reading(p.current, p.other, regime) for p in part]
        tally = ", ".join(f"{readings.count(r)} {r}" for r in dict.fromkeys(readings))
        lines += [
            f"**{len(part)} claims checked in both regimes** ({CURRENT} vs {regime}). "
            f"{CURRENT.capitalize()} regime: {_counts(part, 'current')}. {regime.capitalize()} "
            f"regime: {_counts(part, 'other')}. Where they hold: {tally}.",
            "",
            f"| item (chapter) | claim | {CURRENT} | {regime} | holds | evidence ({CURRENT}) "
            f"| evidence ({regime}) |",
            "|---|---|---|---|---|---|---|",
            *(
                f"| {{doc}}`{table_cell(p.item)} <{p.notebook}>` | {table_cell(p.claim)} "
                f"| {p.current} | {p.other} | {r} | {table_cell(p.current_evidence)} "
                f"| {table_cell(p.other_evidence)} |"
                for p, r in zip(part, readings, strict=True)
            ),
            "",
        ]
    decision = decide(pairs, costs)
    if decision:
        lines += ["## Which regime should be the default?", "", decision, ""]
    if costs is not None and not costs.empty:
        lines += [
            "## What the second regime costs",
            "",
            "Wall seconds of each notebook's second-regime section, beside the notebook's whole "
            "run (both at the load of the machine that ran them; see each page's run record). "
            "Each run took from the cache whatever networks and fits earlier runs had stored, in "
            "either regime, so these seconds compare the regimes only roughly; "
            "`benchmarks/cache_costs.py` sums what every entry cost when it was computed.",
            "",
            "| notebook | regime | seconds | whole notebook |",
            "|---|---|---|---|",
            *(
                f"| {{doc}}`{r.notebook} <{r.notebook}>` | {r.regime} | {r.seconds:.0f} "
                f"| {'-' if pd.isna(r.notebook_seconds) else f'{r.notebook_seconds:.0f}'} |"
                for r in costs.itertuples()
            ),
            "",
        ]
    return "\n".join(lines)


def page_for(outputs: Path) -> str:
    """:func:`regime_page` for the outputs under ``outputs``."""
    return regime_page(regime_pairs(outputs), gap_table(outputs), cost_table(outputs))
