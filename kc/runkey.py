"""The run key of a notebook: what its executed copy and outputs depend on.

``kc run`` skips a notebook whose run key equals the one stored in the record of its last
successful run (``<output_root>/<name>/run.json``) when all its outputs are present. The key
(:func:`run_key`) hashes four parts, each also stored so that a re-run can say why:

- ``notebook``: every cell's type and source (outputs and execution counts excluded);
- ``parameters``: the resolved parameters injected by papermill (canonical JSON);
- ``code``: the code of the ``kc`` modules the notebook uses (:func:`modules_used`): the static
  closure of its ``kc`` imports (imports anywhere in a module, function-level ones included,
  plus the ``__init__`` of every enclosing package, plus ``kc.X`` attribute uses after
  ``import kc``), hashed without docstrings and comments (:func:`kc.cache.source_digest`),
  together with the versions of Python, torch, torchvision and numpy;
- ``data``: the paper data the notebook reads (``kc.paper``'s tables, when ``kc.paper`` is used).

Example:
    >>> sorted(modules_used("from kc.toy import planted_pair"))[:2]
    ['kc', 'kc.decompose']
"""

from __future__ import annotations

import ast
import hashlib
import json
import platform
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["modules_used", "notebook_digest", "run_key"]

PACKAGE_DIR = Path(__file__).resolve().parent
_MAGIC = re.compile(r"^\s*[%!?]")


def _module_file(name: str) -> Path | None:
    """Source file of ``kc[.a.b]`` in this package, or ``None``."""
    parts = name.split(".")[1:]
    base = PACKAGE_DIR.joinpath(*parts)
    if base.is_dir() and (base / "__init__.py").is_file():
        return base / "__init__.py"
    file = base.with_suffix(".py")
    return file if file.is_file() else None


def _imports(tree: ast.AST) -> set[str]:
    """``kc`` modules imported anywhere in ``tree`` (``from kc import x`` -> ``kc.x`` if a
    module, else ``kc``); ``kc.X`` attribute uses count when ``X`` is a module."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name == "kc" or a.name.startswith("kc.")}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "kc" or node.module.startswith("kc."):
                found.add(node.module)
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    if _module_file(sub) is not None:
                        found.add(sub)
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "kc"
            and _module_file(f"kc.{node.attr}") is not None
        ):
            found.add(f"kc.{node.attr}")
    return found


@lru_cache(maxsize=256)
def _module_imports(name: str, mtime_ns: int) -> frozenset[str]:
    file = _module_file(name)
    assert file is not None
    return frozenset(_imports(ast.parse(file.read_text(encoding="utf-8"))))


def modules_used(source: str) -> set[str]:
    """The ``kc`` modules that running ``source`` (Python, IPython magics ignored) imports.

    Returns:
        Module names, the closure over static imports and enclosing packages.
    """
    text = "\n".join("" if _MAGIC.match(line) else line for line in source.splitlines())
    todo = list(_imports(ast.parse(text)))
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen or _module_file(name) is None:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # enclosing packages
        file = _module_file(name)
        assert file is not None
        todo += list(_module_imports(name, file.stat().st_mtime_ns))
    return seen


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def notebook_digest(cells: Iterable[Mapping[str, Any]]) -> str:
    """Hash of the cells' types and sources (outputs, counts and metadata excluded)."""
    return _sha(json.dumps([[c.get("cell_type"), c.get("source", "")] for c in cells]))


def _versions() -> str:
    found = [platform.python_version()]
    for package in ("torch", "torchvision", "numpy"):
        try:
            found.append(f"{package}=={metadata.version(package)}")
        except metadata.PackageNotFoundError:
            found.append(f"{package}: none")
    return ";".join(found)


def run_key(notebook: Path, parameters: Mapping[str, Any]) -> dict[str, str]:
    """The run key of ``notebook`` executed with ``parameters``.

    Returns:
        ``{"notebook", "parameters", "code", "data", "modules", "key"}``: four 16-hex-digit
        hashes, the modules hashed (comma-separated) and ``key``, the hash of the four.
    """
    from kc.cache import canonical_json, source_digest
    from kc.notebook_params import read_cells

    cells = read_cells(notebook)
    code = "\n".join(c["source"] for c in cells if c["cell_type"] == "code")
    modules = sorted(modules_used(code))
    files = [f for f in (_module_file(m) for m in modules) if f is not None]
    data = ""
    if "kc.paper" in modules:
        from kc.paper import paper_tables_path

        try:
            data = hashlib.sha256(paper_tables_path().read_bytes()).hexdigest()[:16]
        except FileNotFoundError:
            data = "missing"
    parts = {
        "notebook": notebook_digest(cells),
        "parameters": _sha(canonical_json(dict(parameters))),
        "code": _sha(source_digest(files) + _versions()),
        "data": data,
    }
    parts["key"] = _sha(json.dumps(parts, sort_keys=True))
    parts["modules"] = ",".join(modules)
    return parts
