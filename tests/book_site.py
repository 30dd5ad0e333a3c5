"""One small book site per test session, shared by tests/test_book.py and tests/test_browser.py.

The site is the repository's book (``_config.yml``, ``_toc.yml``, ``book/``) built in a temporary
folder from smoke outputs: the tutorial notebook as the session's smoke tree executed it
(tests/smoke_tree.py) and, so that the scorecard shows claim
rows whatever the notebooks write, a ``verdicts.json`` for ``table1_instability`` marked as a
test fixture. Every other notebook shows as a placeholder / "not run".
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from kc.book import pages as book
from tests.smoke_tree import SmokeTree

ROOT = Path(__file__).resolve().parents[1]
FIXTURE_NOTEBOOK = "table1_instability"
FIXTURE_VERDICTS = {
    "notebook": FIXTURE_NOTEBOOK,
    "profile": "smoke",
    "parameters": {"SEEDS": [0, 1]},
    "claims": [
        {
            "id": "table1.fixture_depth",
            "item": "Table 1",
            "claim": "TEST FIXTURE: a deeper layer | is less stable",
            "paper": "0.086 < 0.107",
            "status": "reproduced",
            "evidence": "0.09 +- 0.01 < 0.12 +- 0.02",
            "numbers": {"conv4": 0.09, "conv5": 0.12},
        },
        {
            "id": "table1.fixture_archs",
            "item": "Table 1",
            "claim": "TEST FIXTURE: deeper networks are less stable",
            "paper": "",
            "status": "not testable",
            "evidence": "needs two architectures, got 1",
            "numbers": {},
        },
    ],
}


@dataclass(frozen=True)
class Site:
    """A built book: its source root, the outputs it was made from, the build's exit code."""

    root: Path
    outputs: Path
    code: int
    made: dict[str, str]

    @property
    def html(self) -> Path:
        return self.root / "_build" / "html"


_SITE: Site | None = None


def book_skeleton(folder: Path) -> Path:
    """A copy of the book's sources (config, toc, hand-written pages, extension) in ``folder``."""
    root = folder / "repo"
    (root / "book").mkdir(parents=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, root / name)
    for page in (ROOT / "book").glob("*.md"):
        shutil.copy(page, root / "book" / page.name)
    for folder in ("_ext", "_static", "_extra"):
        shutil.copytree(ROOT / "book" / folder, root / "book" / folder)
    theory = root / "book" / "theory.md"
    if not theory.exists():  # the theory chapter is written elsewhere; its toc slot is fixed
        theory.write_text("# Theory\n\nThe theory chapter is not in this checkout yet.\n")
    return root


def built_site(tree: SmokeTree, folder: Path) -> Site:
    """Build the session's site in ``folder`` once per process, from the smoke ``tree`` (the
    book and browser tests are one xdist group, so one worker builds it)."""
    global _SITE
    if _SITE is not None:
        return _SITE
    toy = "00_toy_consistency"
    executed = tree.executed(toy)
    outputs = folder / "outputs"
    (outputs / "notebooks").mkdir(parents=True)
    shutil.copy(executed, outputs / "notebooks" / f"{toy}.ipynb")
    shutil.copytree(tree.output(toy), outputs / toy)
    (outputs / FIXTURE_NOTEBOOK).mkdir()
    (outputs / FIXTURE_NOTEBOOK / "verdicts.json").write_text(json.dumps(FIXTURE_VERDICTS))
    root = book_skeleton(folder)
    prepared, result = book.make_book(root, outputs)  # as `kc book` does, stamp included
    _SITE = Site(root, outputs, result.code, prepared.made)
    return _SITE
