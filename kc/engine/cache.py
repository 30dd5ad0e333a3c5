"""Content-addressed on-disk cache for trained networks, features and fitted g.

Layout::

    <root>/<kind>/<key>.pt      the object, saved with ``torch.save`` and read back with
                                ``torch.load(..., weights_only=True)``
    <root>/<kind>/<key>.json    a human-readable sidecar: kind, key, config, code version
    <root>/<kind>/<key>.ckpt    (optional) a resumable training checkpoint, removed when done

``<key>`` is ``<readable prefix>-<first 20 hex digits of a sha256>`` where the hash covers the
canonical JSON of the config and a *code version* (:func:`code_version`: a hash of what the
code of the kc modules the cached object depends on computes: their statements without imports,
docstrings, comments or layout, whatever file or module path holds them; so moving, renaming,
splitting or reformatting a module keeps every key, and changing a computation changes it).
:func:`rekey` moves entries from one code version to another, for a change known to compute the
same thing (``kc cache rekey OLD NEW``).

The root is, in order of precedence:

1. ``$KC_CACHE`` if set;
2. ``data/cache`` in the nearest kc checkout at or above the working directory (a folder with
   ``pyproject.toml`` and ``kc/__init__.py``), so notebooks executed from ``notebooks/`` share
   the cache of the repository;
3. ``data/cache`` in the checkout that holds the imported ``kc`` package (editable installs);
4. ``./data/cache``.

Workers that share a cache (``kc run --all`` notebooks side by side, Slurm jobs) never compute
the same entry twice: :func:`cached` (and the networks of :mod:`kc.engine.experiments`) compute
a missing entry inside :func:`computing`, an exclusive lock per key (``<key>.lock`` beside the
entry, an OS file lock: released by the kernel when its holder dies, so a crashed worker leaves
no stale lock), and look for the entry again once they hold it.

Writes are atomic (temporary file in the same folder, ``fsync``, ``os.replace``); a file that
cannot be read back is logged, deleted and recomputed, never silently used. :func:`store` writes
the sidecar first and the object second, and :func:`load` treats an object without its sidecar
(left by an interrupted write of the old order) as absent, so a reader never uses one without
the other. :func:`verify` (``kc cache verify [--delete]``) loads every entry and reports, or
deletes, the unreadable ones.

Warnings (an unreadable file deleted, an entry without sidecar) go to the ``kc.engine.cache`` logger
and, when ``$KC_WARNINGS_FILE`` names a file, are appended to it one per line: ``kc run`` sets
it while a notebook runs and copies the lines into the run record and its own output.

Permissions: files are created with the user's umask (``0o666 & ~umask``, e.g. ``0644`` with
umask ``022``, ``0664`` with ``002``), so a cache shared by a group (Slurm jobs of one project)
works when the umask and the folder's group allow it: ``umask 002`` and a group-owned cache
folder with the setgid bit (``chmod g+s``).
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import functools
import hashlib
import importlib
import json
import logging
import math
import os
import re
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch

__all__ = [
    "CacheEntry",
    "atomic_save",
    "atomic_write_text",
    "cache_root",
    "cached",
    "canonical_json",
    "clean",
    "computing",
    "source_digest",
    "verify",
    "code_version",
    "du",
    "du_by_kind",
    "file_mode",
    "key",
    "load",
    "ls",
    "path_for",
    "rekey",
    "safe_load",
    "store",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

ENV_VAR = "KC_CACHE"
WARNINGS_ENV = "KC_WARNINGS_FILE"
_FORMAT = 1  # version of the on-disk wrapper written by `store`
_KIND_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


# --------------------------------------------------------------------------- root and keys


def _is_checkout(folder: Path) -> bool:
    return (folder / "pyproject.toml").is_file() and (folder / "kc" / "__init__.py").is_file()


def cache_root() -> Path:
    """The cache folder (see the module docstring for the order of precedence)."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    cwd = Path.cwd()
    for folder in (cwd, *cwd.parents):
        if _is_checkout(folder):
            return folder / "data" / "cache"
    package_checkout = Path(__file__).resolve().parents[2]
    if _is_checkout(package_checkout):
        return package_checkout / "data" / "cache"
    return cwd / "data" / "cache"


def _jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    if isinstance(obj, (tuple, set, frozenset)):
        return sorted(obj) if isinstance(obj, (set, frozenset)) else list(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise ValueError(
        f"cache config values must be JSON-like (str, int, float, bool, None, lists, "
        f"mappings, tuples, dataclasses), got {type(obj).__name__}: {obj!r}"
    )


def canonical_json(config: Mapping[str, Any]) -> str:
    """JSON of ``config`` with sorted keys and no whitespace; tuples become lists.

    Raises:
        ValueError: for values that have no faithful JSON form (tensors, NaN, arbitrary objects).
    """

    def check_floats(obj: Any) -> None:
        if isinstance(obj, float) and not math.isfinite(obj):
            raise ValueError(f"cache config values must be finite, got {obj!r}")
        if isinstance(obj, Mapping):
            for k, v in obj.items():
                if not isinstance(k, str):
                    raise ValueError(f"cache config keys must be strings, got {k!r}")
                check_floats(v)
        elif isinstance(obj, (list, tuple)):
            for v in obj:
                check_floats(v)

    check_floats(config)
    return json.dumps(config, sort_keys=True, separators=(",", ":"), default=_jsonable)


def _source_files(module_name: str) -> list[Path]:
    module = importlib.import_module(module_name)
    file = getattr(module, "__file__", None)
    if file is None:
        raise ValueError(f"module {module_name!r} has no source file to hash")
    path = Path(file)
    if path.name == "__init__.py":  # a package: every Python file below it
        return sorted(path.parent.rglob("*.py"))
    return [path]


class _Computation(ast.NodeTransformer):
    """Keeps what a module computes: drops imports (anywhere), statements that are only a
    string (docstrings) and assignments to ``__all__``; a block left empty becomes ``pass``."""

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        return None

    visit_ImportFrom = visit_Import  # type: ignore[assignment]

    def generic_visit(self, node: ast.AST) -> ast.AST:
        super().generic_visit(node)
        for name in ("body", "orelse", "finalbody"):
            stmts = getattr(node, name, None)
            if not isinstance(stmts, list) or (stmts and not isinstance(stmts[0], ast.stmt)):
                continue
            kept = [s for s in stmts if not _bare_string(s) and not _assigns_all(s)]
            if not kept and name == "body" and not isinstance(node, ast.Module):
                kept = [ast.Pass()]
            setattr(node, name, kept)
        return node


def _assigns_all(stmt: ast.stmt) -> bool:
    targets = stmt.targets if isinstance(stmt, ast.Assign) else []
    if isinstance(stmt, ast.AnnAssign | ast.AugAssign):
        targets = [stmt.target]
    return any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets)


@functools.lru_cache(maxsize=512)
def _statements_of(source: str) -> tuple[str, ...]:
    """The AST dumps of the top-level statements of ``source`` that compute (parsed once)."""
    tree = _Computation().visit(ast.parse(source))
    return tuple(ast.dump(s, annotate_fields=False) for s in tree.body)


class _StripBareStrings(ast.NodeTransformer):
    """Removes every statement that is only a string (docstrings, attribute docstrings)."""

    def generic_visit(self, node: ast.AST) -> ast.AST:
        super().generic_visit(node)
        for name in ("body", "orelse", "finalbody"):
            stmts = getattr(node, name, None)
            if not isinstance(stmts, list) or not stmts or not isinstance(stmts[0], ast.stmt):
                continue
            kept = [s for s in stmts if not _bare_string(s)]
            if len(kept) != len(stmts):
                setattr(node, name, kept or [ast.Pass()])
        return node


def _bare_string(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    )


@functools.lru_cache(maxsize=512)
def _source_digest_of(source: str) -> str:
    """The AST dump of ``source`` without any bare string statement (parsed once)."""
    return ast.dump(_StripBareStrings().visit(ast.parse(source)), annotate_fields=False)


def code_version(modules: Iterable[str]) -> str:
    """A short hash of what the code of ``modules`` computes (e.g. ``["kc.engine.zoo"]``).

    A package contributes all its ``.py`` files. The hash covers the multiset of their top-level
    statements, each as an AST without imports, docstrings or ``__all__`` (:class:`_Computation`),
    and nothing else: no file name, no module path, no order of definitions. So a module moved,
    renamed, split or reformatted keeps the version; an edited function, constant or class
    changes it.

    Example:
        >>> code_version(["kc.core.losses"]) == code_version(["kc.core.losses", "kc.core.losses"])
        True

    Returns:
        16 hex digits.
    """
    files = {path.resolve() for name in set(modules) for path in _source_files(name)}
    statements = sorted(s for f in files for s in _statements_of(f.read_text(encoding="utf-8")))
    return hashlib.sha256("\n".join(statements).encode()).hexdigest()[:16]


def source_digest(files: Iterable[str | os.PathLike[str]]) -> str:
    """A hash of the code of Python ``files`` (comments, layout and every statement that is
    only a string, docstrings of attributes included, ignored). Unlike :func:`code_version`
    (the cache's keys, kept stable), it is free to ignore more: it keys notebook runs.

    Example:
        >>> source_digest([]) == source_digest([])
        True

    Returns:
        16 hex digits; the files' order does not matter.
    """
    digest = hashlib.sha256()
    for path in sorted({Path(f).resolve() for f in files}):
        digest.update(f"{path.parent.name}/{path.name}\n".encode())
        digest.update(_source_digest_of(path.read_text(encoding="utf-8")).encode())
    return digest.hexdigest()[:16]


def _slug(text: str, max_len: int = 60) -> str:
    slug = re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-.").lower()
    return slug[:max_len].rstrip("-.")


def _check_kind(kind: str) -> None:
    if not _KIND_RE.match(kind):
        raise ValueError(
            f"cache kind must be lower-case letters, digits, '_', '.', '-', got {kind!r}"
        )


def key(
    kind: str, config: Mapping[str, Any], *, version: str = "", label: str | None = None
) -> str:
    """The cache key of ``config``: ``<slug of label or kind>-<sha256 prefix>``.

    Args:
        kind: folder of the entry, e.g. ``"net"``, ``"features"``, ``"g"``.
        config: everything the cached object depends on (JSON-like values).
        version: code version, usually :func:`code_version` of the modules involved.
        label: readable prefix (e.g. ``"vgg16/fashion-mnist/all/seed0"``); defaults to ``kind``.

    Example:
        >>> key("net", {"a": 1}) == key("net", {"a": 1})
        True
        >>> key("net", {"a": 1}) != key("net", {"a": 1}, version="other")
        True
    """
    _check_kind(kind)
    payload = json.dumps({"kind": kind, "version": version, "config": canonical_json(config)})
    digest = hashlib.sha256(payload.encode()).hexdigest()[:20]
    prefix = _slug(label) if label else kind
    return f"{prefix or kind}-{digest}"


def path_for(
    kind: str, config: Mapping[str, Any], *, version: str = "", label: str | None = None
) -> Path:
    """``<root>/<kind>/<key>.pt`` (the folder is not created)."""
    return cache_root() / kind / f"{key(kind, config, version=version, label=label)}.pt"


# --------------------------------------------------------------------------- atomic I/O


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not supported on every platform / file system
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _warn(message: str) -> None:
    """Log a cache warning and append it to ``$KC_WARNINGS_FILE`` when that is set."""
    log.warning("%s", message)
    target = os.environ.get(WARNINGS_ENV)
    if target:
        with contextlib.suppress(OSError), open(target, "a", encoding="utf-8") as f:
            f.write(message.replace("\n", " ") + "\n")


def file_mode() -> int:
    """Permissions of new files: ``0o666`` less the process's umask."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _atomic_write(path: Path, write: Callable[[Any], None], mode: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        os.chmod(fd, file_mode())  # mkstemp makes 0600; respect the umask like open() does
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save(obj)`` to ``path`` atomically: a reader sees the old file or the new one.

    The object is written to a temporary file in the same folder, flushed to disk and moved
    over ``path`` with ``os.replace``; on any exception the temporary file is removed.
    """
    _atomic_write(Path(path), lambda f: torch.save(obj, f), "wb")


def atomic_write_text(text: str, path: str | os.PathLike[str]) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically, like :func:`atomic_save`."""
    _atomic_write(Path(path), lambda f: f.write(text.encode("utf-8")), "wb")


def safe_load(path: str | os.PathLike[str], *, map_location: str = "cpu") -> Any | None:
    """``torch.load(path, weights_only=True)``, or ``None`` if it is missing or unreadable.

    A file that exists but cannot be loaded (truncated, corrupt, unsafe pickle) is logged as a
    warning and deleted, so that the caller recomputes it.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # any failure means "do not trust this file"
        _warn(f"kc.engine.cache: deleting unreadable cache file {path} ({type(err).__name__}: {err})")
        path.unlink(missing_ok=True)
        return None


# --------------------------------------------------------------------------- entries


def load(
    kind: str, config: Mapping[str, Any], *, version: str = "", label: str | None = None
) -> Any | None:
    """The cached object of ``(kind, config, version)``, or ``None`` on a miss."""
    path = path_for(kind, config, version=version, label=label)
    if path.exists() and not path.with_suffix(".json").exists():
        _warn(f"kc.engine.cache: deleting {path}: it has no sidecar (an interrupted write)")
        path.unlink(missing_ok=True)
        return None
    wrapped = safe_load(path)
    if wrapped is None:
        return None
    if not _is_entry(wrapped):
        _warn(f"kc.engine.cache: deleting {path}: not a kc cache entry of format {_FORMAT}")
        path.unlink(missing_ok=True)
        return None
    return wrapped["value"]


def _is_entry(wrapped: Any) -> bool:
    return isinstance(wrapped, dict) and wrapped.get("kc_cache") == _FORMAT and "value" in wrapped


def store(
    kind: str,
    config: Mapping[str, Any],
    obj: Any,
    *,
    version: str = "",
    label: str | None = None,
) -> Path:
    """Save ``obj`` under ``(kind, config, version)`` with its JSON sidecar; returns the path.

    The sidecar is written first: an interrupted store leaves at most a sidecar without object,
    which every reader ignores (entries are the ``.pt`` files).
    """
    path = path_for(kind, config, version=version, label=label)
    sidecar = {
        "kind": kind,
        "key": path.stem,
        "label": label,
        "version": version,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": json.loads(canonical_json(config)),
    }
    atomic_write_text(
        json.dumps(sidecar, indent=2, sort_keys=True) + "\n", path.with_suffix(".json")
    )
    atomic_save({"kc_cache": _FORMAT, "value": obj}, path)
    return path


@contextlib.contextmanager
def computing(
    kind: str,
    config: Mapping[str, Any],
    *,
    version: str = "",
    label: str | None = None,
    poll: float = 30.0,
) -> Iterator[Path]:
    """Hold the lock of the entry ``(kind, config, version)`` while computing it.

    Waits as long as another worker (process, job) holds it, saying so every ``poll`` seconds.
    The lock is an OS lock on ``<key>.lock``: the kernel releases it when its holder exits or
    dies. Look the entry up again once inside: the other worker may have stored it.

    Yields:
        The entry's path.
    """
    from filelock import FileLock, Timeout

    path = path_for(kind, config, version=version, label=label)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path.with_suffix(".lock")), mode=file_mode())
    waited = 0.0
    while True:
        try:
            lock.acquire(timeout=poll)
            break
        except Timeout:
            waited += poll
            log.info("waiting for another worker computing %s/%s (%.0f s)", kind, path.stem, waited)
    try:
        yield path
    finally:
        lock.release()


def cached(
    kind: str,
    config: Mapping[str, Any],
    compute: Callable[[], T],
    *,
    version: str = "",
    label: str | None = None,
) -> T:
    """Return the cached result of ``compute()`` for ``config``, computing and storing on a miss.

    ``compute`` must return something ``torch.load(weights_only=True)`` can read back: tensors,
    numbers, strings, ``None`` and lists/tuples/dicts of those. On a miss it runs under the
    entry's lock (:func:`computing`), so workers sharing the cache compute it once.

    Example:
        >>> import os, tempfile
        >>> saved = dict(os.environ)
        >>> os.environ["KC_CACHE"] = tempfile.mkdtemp()
        >>> cached("demo", {"n": 3}, lambda: torch.arange(3))
        tensor([0, 1, 2])
        >>> cached("demo", {"n": 3}, lambda: None)  # hit: compute is not called
        tensor([0, 1, 2])
        >>> os.environ.clear(); os.environ.update(saved)
    """
    value = load(kind, config, version=version, label=label)
    if value is None:
        with computing(kind, config, version=version, label=label):
            value = load(kind, config, version=version, label=label)
            if value is None:
                value = compute()
                store(kind, config, value, version=version, label=label)
    return value


@dataclass(frozen=True)
class CacheEntry:
    """One cached object as listed by :func:`ls`."""

    kind: str
    key: str
    path: Path
    bytes: int
    created: str | None
    label: str | None
    config: dict[str, Any] | None
    status: str = "ok"
    """``"ok"``, ``"no sidecar"`` or ``"unreadable"`` (by :func:`ls`'s cheap check: the file is
    not a complete zip archive); :func:`verify` loads the object itself."""


def _kind_dirs(kind: str | None) -> list[Path]:
    root = cache_root()
    if kind is not None:
        _check_kind(kind)
        return [root / kind] if (root / kind).is_dir() else []
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def ls(kind: str | None = None) -> list[CacheEntry]:
    """All cached objects (``*.pt``), with the config read from their sidecars."""
    entries = []
    for folder in _kind_dirs(kind):
        for path in sorted(folder.glob("*.pt")):
            meta: dict[str, Any] = {}
            sidecar = path.with_suffix(".json")
            status = "ok" if _complete_zip(path) else "unreadable"
            if not sidecar.exists():
                status = "no sidecar" if status == "ok" else status
            else:
                try:
                    meta = json.loads(sidecar.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    status = "bad sidecar" if status == "ok" else status
            entries.append(
                CacheEntry(
                    kind=folder.name,
                    key=path.stem,
                    path=path,
                    bytes=path.stat().st_size,
                    created=meta.get("created"),
                    label=meta.get("label"),
                    config=meta.get("config"),
                    status=status,
                )
            )
    return entries


def _complete_zip(path: Path) -> bool:
    """A cheap readability check: ``torch.save`` writes a zip archive whose directory is at
    the end, so a truncated file fails to open."""
    try:
        with zipfile.ZipFile(path) as archive:
            return bool(archive.namelist())
    except (OSError, zipfile.BadZipFile, ValueError):
        return False


def verify(kind: str | None = None, *, delete: bool = False) -> list[tuple[CacheEntry, str]]:
    """Load every entry (or every entry of ``kind``) and return the bad ones with the reason.

    An entry is bad when its object cannot be loaded with ``torch.load(weights_only=True)``,
    is not a kc cache entry, or has no readable sidecar. With ``delete`` the bad objects and
    their sidecars are removed (they are recomputed when next asked for).

    Returns:
        ``[(entry, reason), ...]`` for the bad entries.
    """
    bad: list[tuple[CacheEntry, str]] = []
    for entry in ls(kind):
        reason = ""
        if entry.status in ("no sidecar", "bad sidecar"):
            reason = entry.status
        try:
            wrapped = torch.load(entry.path, map_location="cpu", weights_only=True)
            if not _is_entry(wrapped):
                reason = f"not a kc cache entry of format {_FORMAT}"
        except Exception as err:  # any failure means "do not trust this file"
            reason = f"unreadable ({type(err).__name__}: {str(err).splitlines()[0][:200]})"
        if reason:
            bad.append((entry, reason))
            if delete:
                entry.path.unlink(missing_ok=True)
                entry.path.with_suffix(".json").unlink(missing_ok=True)
    return bad


def du_by_kind() -> dict[str, int]:
    """Bytes on disk per kind (all files: objects, sidecars, checkpoints, temporaries)."""
    return {
        folder.name: sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        for folder in _kind_dirs(None)
    }


def du(kind: str | None = None) -> int:
    """Bytes on disk of the whole cache, or of one kind."""
    sizes = du_by_kind()
    return sizes.get(kind, 0) if kind is not None else sum(sizes.values())


def clean(kind: str | None = None) -> int:
    """Delete the cache (or one kind of it); returns the number of bytes freed."""
    freed = 0
    for folder in _kind_dirs(kind):
        freed += sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        shutil.rmtree(folder)
    return freed


def _substitute(obj: Any, mapping: Mapping[str, str]) -> Any:
    """``obj`` with every string that is a key of ``mapping`` replaced by its value."""
    if isinstance(obj, str):
        return mapping.get(obj, obj)
    if isinstance(obj, list):
        return [_substitute(v, mapping) for v in obj]
    if isinstance(obj, dict):
        return {k: _substitute(v, mapping) for k, v in obj.items()}
    return obj


def _strings(obj: Any) -> set[str]:
    if isinstance(obj, str):
        return {obj}
    if isinstance(obj, list):
        return set().union(*(_strings(v) for v in obj)) if obj else set()
    if isinstance(obj, dict):
        return set().union(*(_strings(v) for v in obj.values())) if obj else set()
    return set()


def rekey(
    versions: Mapping[str, str],
    kind: str | None = None,
    *,
    dry_run: bool = False,
    keep: bool = False,
) -> list[tuple[Path, Path]]:
    """Store the entries of each old code version of ``versions`` (``{old: new}``) under the
    new one.

    For a change of code known to compute the same thing that :func:`code_version` cannot see
    as such (e.g. a change of the versioning itself): the entries are kept instead of
    recomputed. A config that names another entry by its key (features name their network, a
    fit of g its features) is rewritten to the other entry's new key, so entries are moved
    inputs first. An entry whose key does not follow from its sidecar is left alone, and so is
    one whose new key is already taken. With ``keep`` the old entry stays too (the new one is a
    hard link to it, a copy where links fail), so that code of both versions finds it.

    Returns:
        ``(old path, new path)`` of every entry moved (or that would be, with ``dry_run``).
    """
    pending: dict[str, tuple[CacheEntry, dict[str, Any]]] = {}
    for entry in ls(kind):
        if entry.status != "ok" or entry.config is None:
            continue
        meta = json.loads(entry.path.with_suffix(".json").read_text(encoding="utf-8"))
        old = meta.get("version")
        if old not in versions:
            continue
        if key(entry.kind, entry.config, version=old, label=meta.get("label")) != entry.key:
            _warn(f"kc cache rekey: {entry.path} does not match its sidecar; left alone")
            continue
        pending[entry.key] = (entry, meta)
    renamed: dict[str, str] = {}
    moved: list[tuple[Path, Path]] = []
    while pending:
        ready = [k for k, (e, _) in pending.items() if not (_strings(e.config) & set(pending))]
        for old_key in ready or list(pending):  # a cycle cannot be ordered: take them all
            entry, meta = pending.pop(old_key)
            config = _substitute(entry.config, renamed)
            label = meta.get("label")
            new = path_for(entry.kind, config, version=versions[meta["version"]], label=label)
            renamed[old_key] = new.stem
            if new.exists():
                continue
            moved.append((entry.path, new))
            if dry_run:
                continue
            meta.update(version=versions[meta["version"]], key=new.stem, config=config)
            atomic_write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n",
                              new.with_suffix(".json"))  # fmt: skip
            if not keep:
                os.replace(entry.path, new)
                entry.path.with_suffix(".json").unlink()
                continue
            try:
                os.link(entry.path, new)
            except OSError:
                shutil.copy2(entry.path, new)
    return moved
