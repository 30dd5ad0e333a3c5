"""Building the book: table of contents, result pages, claims scorecard, API reference.

The notebook list has one source, :data:`kc.run.runner.MANIFEST`; ``_toc.yml`` is generated from it
(``kc book --toc``). :func:`prepare_book` fills the generated folder ``book/results/``:

* one page per manifest notebook: the executed notebook from ``<outputs>/notebooks/`` made
  fit to publish by :mod:`kc.book.page` (a header with the profile, the parameters and the ``kc run`` command that
  reproduces it; the notebook's default ``parameters`` cell hidden, the injected one collapsed;
  captioned figures; no path of the build machine), or a placeholder when it has not run;
* ``scorecard``: one row per claim of the paper, from every ``<outputs>/<nb>/verdicts.json``
  (:mod:`kc.book.scorecard`);
* ``summary``: profile, status and wall time of every run, from ``<outputs>/<nb>/run.json``;
* ``api``: the API reference, one ``automodule`` per module of ``kc``.

Only files whose content changed are written (their times are what Sphinx's incremental build
compares). :func:`build_book` then runs ``jupyter-book build``, incrementally; it never executes
a notebook. :func:`book_command` (``kc book``) skips the build altogether when nothing it reads
changed since the last successful one (a stamp in ``_build/``); ``kc book --force`` rebuilds
every page.

Example:
    >>> toc()["parts"][0]["chapters"]
    [{'file': 'book/theory'}]
    >>> [c["file"] for c in toc()["parts"][1]["chapters"]]
    ['book/results/00_toy_consistency']
"""

from __future__ import annotations

import datetime
import json
import logging
import pkgutil
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kc.book import regimes
from kc.book.build import (
    SiteBuild,
    build_book,
    inputs_digest,
    package_digest,
    read_json,
    read_stamp,
    update_site,
    write_if_changed,
)
from kc.book.page import publish_notebook, repository_settings, rerun_command
from kc.book.scorecard import (
    NOT_RUN,
    STATUSES,
    ScoreRow,
    read_verdicts,
    scorecard_page,
    scorecard_rows,
    table_cell,
)
from kc.run import runner

__all__ = [
    "NOT_RUN",
    "Prepared",
    "RESULTS",
    "STATUSES",
    "ScoreRow",
    "SiteBuild",
    "api_page",
    "book_command",
    "build_book",
    "inputs_digest",
    "make_book",
    "package_digest",
    "prepare_book",
    "publish_notebook",
    "read_stamp",
    "read_verdicts",
    "repository_settings",
    "rerun_command",
    "scorecard_page",
    "scorecard_rows",
    "summary_page",
    "toc",
    "toc_result_pages",
    "toc_text",
    "update_results",
    "update_site",
    "write_if_changed",
    "write_toc",
]

log = logging.getLogger("kc")

RESULTS = Path("book") / "results"
"""Folder (relative to the repository root) the generated pages go to (gitignored)."""

TOC_FILE = "_toc.yml"
SCORECARD, REGIMES, SUMMARY, API = "scorecard", "regimes", "summary", "api"


_RESULT = (RESULTS.as_posix() + "/{}").format
_PART_CAPTIONS = {
    "tutorial": "Course lab",
    "paper": "Reproducing the paper",
    "beyond": "Beyond the paper",
}
# Hand-written pages, in toc order. book/theory.md is the theory chapter.
_METHOD_PAGES = ("book/theory",)
_GUIDE_PAGES = ("book/reproduce", "book/paper_scale")


# ---------------------------------------------------------------------------------------------
# table of contents


def toc(manifest: Sequence[runner.Notebook] = runner.MANIFEST) -> dict[str, Any]:
    """The table of contents generated from ``manifest``.

    Parts: the method (theory), the course lab (``part == "tutorial"`` notebooks), the paper
    (scorecard, run summary and the ``part == "paper"`` notebooks, planned ones included: they
    show as placeholders), beyond the paper (``part == "beyond"``: the baselines and ground
    truth), and using ``kc`` (guides and the API reference).

    Raises:
        ValueError: a notebook's ``part`` is not one of ``"tutorial"``, ``"paper"``, ``"beyond"``.
    """
    bad = sorted({nb.part for nb in manifest} - set(_PART_CAPTIONS))
    if bad:
        raise ValueError(f"manifest parts must be in {sorted(_PART_CAPTIONS)}, got {bad}")

    def chapters(files: Iterable[str]) -> list[dict[str, str]]:
        return [{"file": f} for f in files]

    tutorial = [_RESULT(nb.name) for nb in manifest if nb.part == "tutorial"]
    paper = [_RESULT(nb.name) for nb in manifest if nb.part == "paper"]
    beyond = [_RESULT(nb.name) for nb in manifest if nb.part == "beyond"]
    return {
        "format": "jb-book",
        "root": "book/intro",
        "parts": [
            {"caption": "The method", "chapters": chapters(_METHOD_PAGES)},
            {"caption": _PART_CAPTIONS["tutorial"], "chapters": chapters(tutorial)},
            {
                "caption": _PART_CAPTIONS["paper"],
                "chapters": chapters([_RESULT(SCORECARD), _RESULT(REGIMES), _RESULT(SUMMARY), *paper]),
            },
            *(
                [{"caption": _PART_CAPTIONS["beyond"], "chapters": chapters(beyond)}]
                if beyond
                else []
            ),
            {"caption": "Using kc", "chapters": chapters([*_GUIDE_PAGES, _RESULT(API)])},
        ],
    }


_TOC_HEADER = """\
# GENERATED by `kc book --toc` from kc.run.runner.MANIFEST: do not edit by hand.
# To add a notebook, add it to the manifest and run `kc book --toc` (tests/test_book.py checks
# that this file agrees with the manifest). Pages under book/results/ are generated by
# `kc book`: the executed notebooks (or placeholders), the scorecard, the run summary, the API.
"""


def toc_text(manifest: Sequence[runner.Notebook] = runner.MANIFEST) -> str:
    """``_toc.yml`` as text: a header comment and :func:`toc` as YAML."""
    return _TOC_HEADER + yaml.safe_dump(toc(manifest), sort_keys=False)


def write_toc(root: Path | None = None) -> Path:
    """Write ``<root>/_toc.yml`` from the manifest and return its path."""
    root = Path(root) if root is not None else runner.project_root()
    path = root / TOC_FILE
    path.write_text(toc_text())
    return path


def toc_result_pages(root: Path) -> list[str]:
    """Names of the pages under ``book/results/`` that ``<root>/_toc.yml`` lists, in order."""
    data = yaml.safe_load((root / TOC_FILE).read_text())
    prefix = RESULTS.as_posix() + "/"
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            file = node.get("file")
            if isinstance(file, str) and file.startswith(prefix):
                found.append(Path(file[len(prefix) :]).with_suffix("").as_posix())
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(data)
    return found


# ---------------------------------------------------------------------------------------------
# summary of the runs


def summary_page(pages: Sequence[str], outputs: Path) -> str:
    """The run summary: profile, status and wall time of each notebook (from ``run.json``)."""
    lines = [
        "# Summary of the runs",
        "",
        "Each notebook was executed with papermill by `kc run` before the book was built; the",
        "table gives the profile it ran with and its wall time (from `outputs/<notebook>/run.json`).",
        "Wall times depend on the shared cache (`data/cache`, or `KC_CACHE`): a notebook that finds",
        "its networks and fits of g there (made by an earlier notebook or run) only loads them.",
        "Each notebook's own timing table says how much of its time went into training.",
        f"The outcome of every claim is on {{doc}}`the claims scorecard <{SCORECARD}>`.",
        "",
        "| notebook | paper item | profile | status | wall time |",
        "|---|---|---|---|---|",
    ]
    for name in pages:
        entry = runner.manifest_entry(name)
        if entry is None:
            continue
        record = _run_record(outputs, name)
        seconds = record.get("seconds")
        wall = f"{seconds:.0f} s" if isinstance(seconds, int | float) else "-"
        lines.append(
            f"| {{doc}}`{name} <{name}>` | {entry.paper_item} | {record.get('profile', '-')} "
            f"| {record.get('status', NOT_RUN)} | {wall} |"
        )
    return "\n".join(lines) + "\n"


def _run_record(outputs: Path, name: str) -> dict[str, Any]:
    path = outputs / name / runner.RUN_RECORD
    return json.loads(path.read_text()) if path.is_file() else {}


# ---------------------------------------------------------------------------------------------
# placeholders

_PLACEHOLDER = """# {title}

```{{note}}
This page is a placeholder: `notebooks/{name}.ipynb` ({paper_item}) {state}.
Run `kc run {name}` (or `make notebooks`) and then `kc book` (or `make book`).
```
"""


def _placeholder(name: str, record: Mapping[str, Any] | None = None) -> str:
    """The page of a notebook without an executed copy; ``record``: its run record, if any
    (a failed or interrupted last run is named, with where its partial copy is kept)."""
    entry = runner.manifest_entry(name)
    planned = entry is not None and entry.planned
    exists = (runner.notebooks_dir() / f"{name}.ipynb").is_file()
    status = (record or {}).get("status")
    if planned and not exists:
        state = "is planned and not written yet"
    elif status in ("failed", "interrupted"):
        error = str(record.get("error") or "").split(":", 1)[0]  # the exception's name only
        state = (
            f"did not finish its last run: {status} on {record.get('finished', '?')} under the "
            f"`{record.get('profile', '?')}` profile after {float(record.get('seconds') or 0):.0f} s"
            + (f" ({error})" if error else "")
            + f"; the partial executed copy is `notebooks/{name}.failed.ipynb` in the outputs"
        )
    else:
        state = "has not been executed for this build"
    return _PLACEHOLDER.format(
        name=name,
        title=entry.title if entry else name,
        paper_item=entry.paper_item if entry else "not in the manifest",
        state=state,
    )


# ---------------------------------------------------------------------------------------------
# API reference

_API_SKIP = {"kc.__main__"}


def _modules() -> list[str]:
    """Every module of the ``kc`` package (sub-packages included), sorted."""
    import kc

    names = ["kc"]
    for info in pkgutil.walk_packages(kc.__path__, "kc."):
        if info.name in _API_SKIP or any(p.startswith("_") for p in info.name.split(".")[1:]):
            continue
        names.append(info.name)
    return sorted(names)


def _first_line(obj: Any) -> str:
    """The docstring's first paragraph as MyST: reST roles and ````literals```` become code."""
    doc = (getattr(obj, "__doc__", None) or "").strip().split("\n\n")[0]
    doc = re.sub(r":[\w:]+:`~?([^`]+)`", r"`\1`", doc)
    return table_cell(re.sub(r"``([^`]+)``", r"`\1`", doc)) if doc else ""


def api_page() -> str:
    """The API reference (MyST): a table of ``kc.__all__``, then ``automodule`` per module."""
    import kc

    lines = [
        "# API reference",
        "",
        "Generated from the docstrings by `kc book` (Sphinx autodoc). The names below are",
        "importable from `kc` directly (`kc.consistency`, `kc.ConsistencyNet`, ...); the",
        "sections that follow document every module.",
        "",
        "| name | what |",
        "|---|---|",
    ]
    for public in kc.__all__:
        obj = getattr(kc, public)
        target = f"{obj.__module__}.{obj.__qualname__}"
        lines.append(f"| {{py:obj}}`kc.{public} <{target}>` | {_first_line(obj)} |")
    for module in _modules():
        if module == "kc":
            continue
        lines += [
            "",
            f"## `{module}`",
            "",
            f"```{{eval-rst}}\n.. automodule:: {module}\n   :members:\n```",
        ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# preparing and building


@dataclass(frozen=True)
class Prepared:
    """What :func:`update_results` did to ``book/results/``.

    Attributes:
        made: ``{page: "notebook" | "placeholder" | "scorecard" | "summary" | "api"}``.
        written: files (relative to ``book/results/``) whose content changed and were written.
        removed: stale files deleted (no longer asked for by ``_toc.yml``).
    """

    made: dict[str, str]
    written: list[str]
    removed: list[str]


#: In ``book/results/``: the :func:`package_digest` the API page and the theory figure were
#: made with (not a page: Sphinx builds only what ``_toc.yml`` lists).
STATE_FILE = ".kc-book.json"


def update_results(root: Path | None = None, output_root: str | Path = "outputs") -> Prepared:
    """Bring ``book/results/`` up to date with the pages ``_toc.yml`` asks for.

    For each page ``book/results/<name>``: the executed notebook
    ``<output_root>/notebooks/<name>.ipynb`` made fit to publish (:func:`publish_notebook`),
    else a placeholder; ``scorecard``, ``summary`` and ``api`` are generated, and the theory
    chapter's figure is drawn. A file is written only when its content changed
    (:func:`write_if_changed`), and files no page asks for are deleted, so stale pages never
    survive. The API page and the figure (seconds: they import all of ``kc``, torch and
    matplotlib) are made again only when the ``kc`` package changed (:func:`package_digest`).
    """
    root = Path(root) if root is not None else runner.project_root()
    outputs = Path(output_root)
    if not outputs.is_absolute():
        outputs = Path.cwd() / outputs
    results = root / RESULTS
    results.mkdir(parents=True, exist_ok=True)
    state_path = results / STATE_FILE
    state = read_json(state_path)
    code = package_digest()
    pages = toc_result_pages(root)

    def api() -> str:
        path = results / f"{API}.md"
        if state.get(API) == code and path.is_file():
            return path.read_text()
        return api_page()

    from kc.run.results import status

    notebooks = [page for page in pages if runner.manifest_entry(page) is not None]
    stale = {
        s.name: s.why
        for s in status(outputs, profile=None, notebooks=notebooks)
        if s.state == "stale"
    }
    generated = {
        SCORECARD: lambda: scorecard_page(scorecard_rows(outputs, stale=stale)),
        REGIMES: lambda: regimes.page_for(outputs),
        SUMMARY: lambda: summary_page(pages, outputs),
        API: api,
    }
    made: dict[str, str] = {}
    wanted: dict[str, str | bytes] = {}
    for name in pages:
        executed = outputs / "notebooks" / f"{name}.ipynb"
        if name in generated:
            wanted[f"{name}.md"] = generated[name]()
            made[name] = name
        elif executed.is_file():
            nb = publish_notebook(
                executed, name, _run_record(outputs, name), outputs, root, stale.get(name, "")
            )
            wanted[f"{name}.ipynb"] = json.dumps(nb, indent=1) + "\n"
            made[name] = "notebook"
        else:
            wanted[f"{name}.md"] = _placeholder(name, _run_record(outputs, name))
            made[name] = "placeholder"
    figure = results / THEORY_FIGURE
    if state.get("theory_figure") != code or not figure.is_file():
        wanted[THEORY_FIGURE] = _theory_figure()
    written = [file for file, data in wanted.items() if write_if_changed(results / file, data)]
    keep = {*wanted, THEORY_FIGURE, STATE_FILE}
    removed = []
    for path in sorted(results.rglob("*"), reverse=True):  # files before their folders
        rel = path.relative_to(results).as_posix()
        if path.is_dir():
            if not any(path.iterdir()):
                path.rmdir()
        elif rel not in keep:
            path.unlink()
            removed.append(rel)
    write_if_changed(state_path, json.dumps({API: code, "theory_figure": code}, indent=1))
    return Prepared(made, written, removed)


def prepare_book(root: Path | None = None, output_root: str | Path = "outputs") -> dict[str, str]:
    """Fill ``book/results/`` with the pages ``_toc.yml`` asks for (:func:`update_results`).

    Returns:
        ``{page: "notebook" | "placeholder" | "scorecard" | "summary" | "api"}``.
    """
    return update_results(root, output_root).made


#: The drawing of g (Fig. 2) that book/theory.md shows, generated with the book.
THEORY_FIGURE = "theory_architecture.png"


def _theory_figure() -> bytes:
    """Draw g with K = 3 (the paper's Fig. 2) from the model itself; the PNG's bytes.

    The theory chapter must not depend on a notebook having run; the drawing needs no
    training (about a second), so it is made with the book whenever ``kc`` changed.
    """
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from kc.book.diagram import draw_architecture
    from kc.core.model import ConsistencyNet

    fig = draw_architecture(ConsistencyNet(512, 512, order=3))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def make_book(
    root: Path,
    output_root: str | Path = "outputs",
    *,
    strict: bool = True,
    force: bool = False,
) -> tuple[Prepared, SiteBuild]:
    """Bring ``book/results/`` up to date (:func:`update_results`), then the site
    (:func:`kc.book.build.update_site`: skipped when nothing changed, else incremental)."""
    prepared = update_results(root, output_root)
    return prepared, update_site(root, strict=strict, force=force)


def book_command(
    output_root: str | Path = "outputs",
    *,
    only_toc: bool = False,
    no_build: bool = False,
    strict: bool = True,
    force: bool = False,
) -> int:
    """What ``kc book`` does (:func:`make_book` on the repository); returns the exit code.

    Prints the result pages made from notebooks and the placeholders, the files of
    ``book/results/`` that changed, then either ``book: unchanged since <time>`` or the build's
    wall time.
    """
    root = runner.project_root()
    if only_toc:
        print(f"wrote {write_toc(root)}")
        return 0
    if (root / TOC_FILE).read_text() != toc_text():
        print(
            f"{root / TOC_FILE} does not match kc.run.runner.MANIFEST; run `kc book --toc`",
            file=sys.stderr,
        )
        return 2
    prepared = update_results(root, output_root)
    _report(prepared)
    if no_build:
        return 0
    started = datetime.datetime.now()
    result = update_site(root, strict=strict, force=force)
    if not result.built:
        print(f"book: unchanged since {result.since}: {result.index}")
    elif result.code == 0:
        seconds = (datetime.datetime.now() - started).total_seconds()
        how = "from scratch" if result.fresh else "incrementally"
        print(f"book built {how} in {seconds:.0f} s: {result.index}")
    else:
        print(
            f"jupyter-book build failed (exit {result.code}); see the messages above",
            file=sys.stderr,
        )
    return result.code


def _report(prepared: Prepared) -> None:
    """Print the pages made from notebooks, the placeholders and what changed on disk."""
    for kind in ("notebook", "placeholder"):
        names = [n for n, k in prepared.made.items() if k == kind]
        if names:
            print(f"{kind}s: {', '.join(names)}")
    changed = [*prepared.written, *(f"{f} (removed)" for f in prepared.removed)]
    print(f"changed in {RESULTS.as_posix()}: {', '.join(changed) if changed else 'nothing'}")
