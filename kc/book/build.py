"""Building the book's site with jupyter-book, incrementally, and skipping a build that would
change nothing.

:func:`build_book` runs ``jupyter-book build`` without ``--all``: Sphinx keeps its environment
(``_build/.doctrees``) and the site (``_build/html``) and reads and writes again only the pages
whose files are newer than its last reading of them (and the pages that depend on those). So
the pages are written with :func:`write_if_changed`, which leaves an unchanged file, and its
time, alone. :func:`update_site` goes one step further: it keeps a stamp of everything the
build reads (:func:`inputs_digest`) in ``_build/.kc-book-stamp.json`` after each successful
build and does not start Sphinx at all when nothing changed.

What the incremental build does not see: a page that did not change is not written again, so
a reference from it into a changed page (a ``{doc}`` link's title, a figure number) is
refreshed only by a full build, ``kc book --force`` (which the first build and any build after a
failed one are anyway).
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import json
import logging
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from kc.book.page import repository_settings
from kc.run import runner

__all__ = [
    "STAMP_FILE",
    "SiteBuild",
    "build_book",
    "inputs_digest",
    "package_digest",
    "read_json",
    "read_stamp",
    "update_site",
    "write_if_changed",
]

log = logging.getLogger("kc")


def write_if_changed(path: Path, data: str | bytes) -> bool:
    """Write ``data`` to ``path`` unless the file already holds exactly these bytes.

    An unchanged file keeps its modification time, which is what Sphinx's incremental build
    compares: only pages whose files changed are read and written again.

    Returns:
        True when the file was written.
    """
    raw = data.encode() if isinstance(data, str) else data
    if path.is_file() and path.stat().st_size == len(raw) and path.read_bytes() == raw:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(raw)
    tmp.replace(path)
    return True


def package_digest() -> str:
    """SHA-256 of every ``.py`` file of the ``kc`` package (paths and bytes, docstrings
    included: the API reference shows them). Keys the API page and the theory figure."""
    import kc

    base = Path(kc.__file__).resolve().parent
    digest = hashlib.sha256()
    for file in sorted(base.rglob("*.py")):
        if "__pycache__" in file.parts:
            continue
        digest.update(file.relative_to(base).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


def read_json(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; ``{}`` when it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


# jupyter-book started from this interpreter. jsonschema (which jupyter-book imports to check
# _config.yml) imports rfc3987_syntax when it is installed (Jupyter's format extras bring it), and
# that compiles some forty grammars at import: seconds per build. Neither jupyter-book's config
# schema nor notebook validation checks URI formats, so the import is refused.
_JUPYTER_BOOK_MAIN = (
    "import sys; sys.modules['rfc3987_syntax'] = None; "
    "from jupyter_book.cli.main import main; sys.argv[0] = 'jupyter-book'; sys.exit(main())"
)


def _jupyter_book() -> list[str]:
    """The command that starts jupyter-book: this interpreter with the package when it has it,
    else a ``jupyter-book`` executable on the ``PATH``."""
    import importlib.util

    if importlib.util.find_spec("jupyter_book") is not None:
        return [sys.executable, "-c", _JUPYTER_BOOK_MAIN]
    found = shutil.which("jupyter-book")
    if found is None:
        raise FileNotFoundError("jupyter-book is not installed; pip install -e '.[book]'")
    return [found]


def _config_with_repository(root: Path, repo: Mapping[str, str]) -> Path:
    """``_config.yml`` with the repository filled in and its buttons on, in a temporary file."""
    config = yaml.safe_load((root / "_config.yml").read_text())
    config = copy.deepcopy(config)
    config.setdefault("repository", {}).update(url=repo["url"], branch=repo["branch"])
    config.setdefault("html", {}).update(use_repository_button=True, use_issues_button=True)
    folder = Path(tempfile.mkdtemp(prefix="kc-book-"))
    path = folder / "_config.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def build_book(
    root: Path | None = None, strict: bool = True, fresh: bool = False
) -> tuple[int, Path]:
    """Run ``jupyter-book build`` on the repository; return its exit code and the index page.

    The build is incremental: Sphinx keeps ``_build/.doctrees`` and ``_build/html`` and reads
    and writes again only the pages whose files changed since (keep unchanged files' times:
    ``kc.book.pages.update_results`` does). ``fresh`` passes ``--all``: every page is read again from a
    new environment. With a repository known (:func:`repository_settings`, e.g. on GitHub
    Actions) the build uses ``_config.yml`` with ``repository.url`` set and the repository
    buttons on.
    """
    root = Path(root) if root is not None else runner.project_root()
    command = [*_jupyter_book(), "build", str(root), "--keep-going"]
    repo = repository_settings()
    if repo:
        command += ["--config", str(_config_with_repository(root, repo))]
    if strict:
        command += ["-W", "-n"]
    if fresh:
        command.append("--all")
    log.info("jupyter-book %s", " ".join(command[command.index("build") :]))
    code = subprocess.call(command, cwd=root)
    return code, root / "_build" / "html" / "index.html"


# ---------------------------------------------------------------------------------------------
# the stamp: skip Sphinx when nothing it reads changed

#: In ``_build/``: the :func:`inputs_digest` of the last successful build and its time.
STAMP_FILE = ".kc-book-stamp.json"

# What Sphinx reads besides book/ (its pages, extension, static files) and the kc sources.
_ROOT_INPUTS = ("_config.yml", "_toc.yml")


def inputs_digest(root: Path, strict: bool = True) -> str:
    """SHA-256 of everything a build of ``root`` depends on.

    That is every file under ``book/`` (hand-written pages, generated results, the extension
    and static files), ``_config.yml`` and ``_toc.yml``, the ``kc`` sources (the API reference
    is autodoc of them: :func:`package_digest`), the repository settings, ``strict`` and the
    versions of jupyter-book and Sphinx.
    """
    from importlib import metadata

    digest = hashlib.sha256()
    files = [root / name for name in _ROOT_INPUTS]
    files += [f for f in (root / "book").rglob("*") if f.is_file() and "__pycache__" not in f.parts]
    for file in sorted(files):
        digest.update(file.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(file.read_bytes()).digest() if file.is_file() else b"-")
    versions = {}
    for package in ("jupyter-book", "sphinx"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    extra = {
        "kc": package_digest(),
        "repository": repository_settings(),
        "strict": strict,
        "versions": versions,
    }
    digest.update(json.dumps(extra, sort_keys=True).encode())
    return digest.hexdigest()


def read_stamp(root: Path) -> dict[str, Any]:
    """The stamp of the last successful build of ``root`` (``{}`` when there is none)."""
    return read_json(root / "_build" / STAMP_FILE)


@dataclass(frozen=True)
class SiteBuild:
    """The outcome of :func:`update_site`.

    Attributes:
        code: the build's exit code (0 when the build was skipped).
        built: whether jupyter-book ran (False: nothing changed since the last good build).
        fresh: whether it ran from a fresh environment (``--all``).
        since: when the build the site comes from started (ISO time; ``""`` when it failed).
        index: the site's ``index.html``.
    """

    code: int
    built: bool
    fresh: bool
    since: str
    index: Path


def update_site(root: Path, *, strict: bool = True, force: bool = False) -> SiteBuild:
    """Build the site of ``root`` (``book/results/`` prepared), doing no more than needed.

    When everything the build reads is as it was at the last successful build
    (:func:`inputs_digest` against the stamp ``_build/.kc-book-stamp.json``) and the site
    exists, Sphinx is not run. Otherwise the build is incremental (Sphinx reads and writes
    again only the changed pages and those that depend on them); it starts from a fresh
    environment (``--all``) with ``force``, when there is no stamp of a successful build (the
    first build, or the last one failed: its warnings are then reported again), or when a
    strict build follows a lenient one.
    """
    stamp_path = root / "_build" / STAMP_FILE
    stamp = read_stamp(root)
    digest = inputs_digest(root, strict)
    index = root / "_build" / "html" / "index.html"
    if not force and stamp.get("inputs") == digest and index.is_file():
        return SiteBuild(0, False, False, str(stamp.get("built", "")), index)
    # warnings of pages Sphinx does not read again are not repeated: after a failed build or a
    # lenient one (no -W -n), a strict build reads every page
    fresh = force or not stamp or (strict and not stamp.get("strict"))
    started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    stamp_path.unlink(missing_ok=True)
    code, index = build_book(root, strict=strict, fresh=fresh)
    if code == 0:
        stamp_path.write_text(json.dumps({"inputs": digest, "built": started, "strict": strict}))
    return SiteBuild(code, True, fresh, started if code == 0 else "", index)
