"""Published results: the folder of a profile's committed outputs, and whether each is fresh.

The ``small`` profile's results are part of the repository, in :func:`results_dir`
(``book/published/small/``), laid out as every output root of ``kc run``:

- ``notebooks/<name>.ipynb``: the executed notebook, with each figure kept once (the file in
  ``<name>/``; :func:`pack_figures` replaces the embedded copy by a reference, and
  :func:`unpack_figures` embeds it again for the book) and no path of the machine it ran on
  (:func:`portable_text`);
- ``<name>/``: its CSV tables, PNG figures, ``verdicts.json`` / ``verdicts.md`` and ``run.json``,
  the run record (commit, date, machine, wall time; :mod:`kc.run.records`).

:func:`status` compares every notebook's record with the run key the code has now: ``fresh``,
``stale`` (naming what changed) or ``missing``. ``make book`` executes only what is not fresh,
so a fresh clone builds the whole book from these files.

Example:
    >>> results_dir("small").relative_to(project_root()).as_posix()
    'book/published/small'
"""

from __future__ import annotations

import base64
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kc.run.manifest import MANIFEST, project_root, resolve_notebook

__all__ = [
    "COMMITTED_PROFILES",
    "NotebookStatus",
    "figure_reference",
    "pack_figures",
    "portable_text",
    "provenance",
    "results_dir",
    "status",
    "status_table",
    "unpack_figures",
]

COMMITTED_PROFILES = ("small",)
"""Profiles whose results are committed (the other profiles' folders are ignored by git)."""

FIGURE_KEY = "kc_figure"  # as kc.book.output.FIGURE_KEY (kc.book.output is a notebook-side module)


def results_dir(profile: str = "small") -> Path:
    """The results folder of a shipped ``profile``: ``<repository>/book/published/<profile>``."""
    if not profile or Path(profile).name != profile or profile.endswith((".yaml", ".yml")):
        raise ValueError(f"profile must be a profile name such as 'small', got {profile!r}")
    return project_root() / "book" / "published" / profile


def default_output_root(profile: str | Path) -> Path:
    """Where ``kc run`` / ``kc book`` write and read by default: the profile's results folder
    for a shipped profile's name, ``outputs`` for a profile file."""
    name = str(profile)
    if name.endswith((".yaml", ".yml")) or Path(name).name != name:
        return Path("outputs")
    return results_dir(name)


# -- figures kept once -----------------------------------------------------------------


def figure_reference(path: str) -> str:
    """The Markdown that stands for a packed figure in an executed notebook."""
    return f"![{Path(path).stem}](../{path})\n"


def pack_figures(nb: dict[str, Any], root: Path) -> int:
    """Replace each figure shown by :func:`kc.book.output.save_figure` by a reference to its file.

    An output whose metadata names a file ``<root>/<folder>/<name>.png`` holding exactly the
    embedded bytes loses its ``image/png`` and gets a Markdown image link relative to
    ``<root>/notebooks/`` instead. Outputs of other figures are left as they are.

    Returns:
        How many figures were packed.
    """
    count = 0
    for output in _outputs(nb):
        meta, data = output.get("metadata") or {}, output.get("data") or {}
        name, encoded = meta.get(FIGURE_KEY), data.get("image/png")
        if not name or not encoded:
            continue
        file = root / name
        if not file.is_file() or _decode(encoded) != file.read_bytes():
            continue
        del data["image/png"]
        data["text/markdown"] = figure_reference(name)
        count += 1
    return count


def unpack_figures(nb: dict[str, Any], root: Path) -> int:
    """Embed again every figure that :func:`pack_figures` replaced (for the book's pages).

    Returns:
        How many figures were embedded; a reference whose file is missing stays a link.
    """
    count = 0
    for output in _outputs(nb):
        meta, data = output.get("metadata") or {}, output.get("data") or {}
        name = meta.get(FIGURE_KEY)
        if not name or "image/png" in data:
            continue
        file = root / name
        if not file.is_file():
            continue
        data.pop("text/markdown", None)
        data["image/png"] = base64.b64encode(file.read_bytes()).decode("ascii")
        count += 1
    return count


def _outputs(nb: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [
        output
        for cell in nb.get("cells", [])
        if cell.get("cell_type") == "code"
        for output in cell.get("outputs", [])
        if output.get("output_type") in ("display_data", "execute_result")
    ]


def _decode(encoded: str | list[str]) -> bytes:
    text = "".join(encoded) if isinstance(encoded, list) else encoded
    return base64.b64decode(text)


# -- no machine paths in committed files ------------------------------------------------


def portable_text(text: str, root: Path, project: Path | None = None) -> str:
    """``text`` with the absolute output ``root`` and the repository written relative to the
    repository (``book/published/small``, ``.``), so a committed file reads the same on every
    clone. Paths outside the repository are left alone.

    Example:
        >>> portable_text("/r/book/published/small/t1", Path("/r/book/published/small"), Path("/r"))
        'book/published/small/t1'
        >>> portable_text("/elsewhere/out", Path("/elsewhere/out"), Path("/r"))
        '/elsewhere/out'
    """
    project = Path(project) if project is not None else project_root()
    pairs = [(f"{project}/", "")]
    try:
        pairs.append((str(root), Path(root).relative_to(project).as_posix()))
    except ValueError:
        pass
    for private, shown in sorted(pairs, key=lambda kv: -len(kv[0])):
        text = text.replace(private, shown)
    return text


def provenance() -> dict[str, Any]:
    """What produced a run: the commit of the repository (``None`` outside git), whether
    ``kc/``, ``notebooks/`` or the paper data had uncommitted changes, the machine's cores
    and the threads a kernel may use (``OMP_NUM_THREADS``, else the cores)."""
    cores = os.cpu_count() or 1
    found: dict[str, Any] = {
        "commit": None,
        "dirty": None,
        "cores": cores,
        "threads": int(os.environ.get("OMP_NUM_THREADS") or cores),
    }
    try:
        root = project_root()
        run = {"cwd": root, "capture_output": True, "text": True, "timeout": 20, "check": True}
        found["commit"] = subprocess.run(["git", "rev-parse", "HEAD"], **run).stdout.strip()
        changes = subprocess.run(
            ["git", "status", "--porcelain", "--", "kc", "notebooks", "data/paper"], **run
        ).stdout
        found["dirty"] = bool(changes.strip())
    except (OSError, subprocess.SubprocessError, FileNotFoundError, RuntimeError):
        pass
    return found


# -- fresh, stale or missing -------------------------------------------------------------


@dataclass(frozen=True)
class NotebookStatus:
    """Whether a notebook's results in a folder stand for the code and parameters of now.

    Attributes:
        state: ``"fresh"``, ``"stale"`` or ``"missing"``.
        why: what changed (stale) or what is missing; ``""`` when fresh.
        seconds: the recorded wall time of the run the results come from (``None``: no record).
        record: the run record (``{}`` when missing).
    """

    name: str
    state: str
    why: str = ""
    seconds: float | None = None
    record: Mapping[str, Any] | None = None


def status(
    root: str | Path | None = None,
    profile: str | Path | None = "small",
    notebooks: Sequence[str] | None = None,
    parameters: Mapping[str, Any] | None = None,
) -> list[NotebookStatus]:
    """The state of every manifest notebook's results under ``root``.

    Args:
        root: the output root (default: the profile's results folder).
        profile: the profile the results should stand for; ``None``: each run record's own.
        notebooks: names to check instead of the manifest.
        parameters: explicit values, as ``kc run -p``.

    Returns:
        One :class:`NotebookStatus` per notebook, in manifest order.
    """
    from kc.run import records, runkey
    from kc.run.notebook_params import notebook_parameters

    if root is None and profile is None:
        raise ValueError("status needs a root or a profile")
    base = Path(root) if root is not None else default_output_root(profile or "small")
    base = base.resolve()
    names = list(notebooks) if notebooks is not None else [nb.name for nb in MANIFEST]
    found: list[NotebookStatus] = []
    for name in names:
        record = records.read_record(base, name)
        seconds = record.get("seconds") if record.get("status") == "ok" else None
        try:
            path = resolve_notebook(name)
        except FileNotFoundError:
            found.append(NotebookStatus(name, "missing", "no notebook file", None, record))
            continue
        if record.get("status") != "ok":
            why = "no run" if not record else f"the last run {record.get('status')}"
            found.append(NotebookStatus(name, "missing", why, None, record))
            continue
        try:
            values = notebook_parameters(
                path, profile or record.get("profile") or "small", parameters, base, strict=False
            )
        except (ValueError, FileNotFoundError) as error:
            found.append(NotebookStatus(name, "stale", f"cannot be checked: {error}", seconds, record))
            continue
        fresh, why = records.up_to_date(base, name, runkey.run_key(path, values), values)
        if fresh:
            found.append(NotebookStatus(name, "fresh", "", seconds, record))
        elif why.startswith("changed since the last run: "):
            what = why.removeprefix("changed since the last run: ")
            found.append(NotebookStatus(name, "stale", what, seconds, record))
        else:
            found.append(NotebookStatus(name, "missing", why, seconds, record))
    return found


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def status_table(rows: Sequence[NotebookStatus]) -> str:
    """``kc status``'s text: one line per notebook (state, recorded wall time, when, why),
    then the counts."""
    width = max([len(r.name) for r in rows] + [8])
    lines = [f"{'notebook':<{width}}  {'state':<7}  {'took':>7}  {'finished':<20}  what changed"]
    for r in rows:
        when = str((r.record or {}).get("finished") or "-")[:19]
        lines.append(f"{r.name:<{width}}  {r.state:<7}  {_duration(r.seconds):>7}  {when:<20}  {r.why}")
    counts = {s: sum(r.state == s for r in rows) for s in ("fresh", "stale", "missing")}
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items()))
    return "\n".join(lines)

