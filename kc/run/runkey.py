"""The run key of a notebook: what its executed copy and outputs depend on.

``kc run`` skips a notebook whose run key equals the one stored in the record of its last
successful run (``<output_root>/<name>/run.json``) when all its outputs are present. The key
(:func:`run_key`) hashes four parts, each also stored so that a re-run can say why:

- ``notebook``: every cell's type and source (outputs and execution counts excluded), but of
  the ``parameters`` cell only the names it declares (their values are the next part);
- ``parameters``: the values the notebook computes with (canonical JSON): its declared
  defaults, replaced by the values papermill injects, except ``OUTPUT_DIR``, which says where
  the outputs go, not what they are. So the smoke defaults written in the notebook can change
  without staling a ``small`` run, and a value may move between a profile and a notebook's
  defaults without changing the key;
- ``code``: the code of the ``kc`` modules the notebook uses (:func:`modules_used`): the static
  closure of its ``kc`` imports (imports anywhere in a module, function-level ones included,
  plus the ``__init__`` of every enclosing package, plus ``kc.X`` attribute uses after
  ``import kc``), hashed without docstrings, comments and other bare strings
  (:func:`kc.engine.cache.source_digest`). A *facade* package, whose ``__init__`` only re-exports names of its submodules
  (``kc.book.plotting``), contributes only the submodules whose names are used
  (``plotting.plot_table1`` -> ``kc.book.plotting.tables``), not all of them;
- ``data``: the paper data the notebook reads (``kc.studies.paper``'s tables, when ``kc.studies.paper`` is used).

The key also stores, outside the hash, the digest of every module (``module_digests``), so that
:func:`kc.run.records.staleness` can name the modules that changed, and the versions of Python,
torch, torchvision and numpy (``versions``): a committed result stays fresh on a machine with
another numpy, and ``kc status`` shows the versions it ran with.

Example:
    >>> sorted(modules_used("from kc.studies.toy import planted_pair"))[:3]
    ['kc', 'kc.core', 'kc.core.decompose']
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

__all__ = ["NOT_KEYED", "effective_parameters", "modules_used", "notebook_digest", "run_key"]

NOT_KEYED = frozenset({"OUTPUT_DIR"})
"""Injected parameters that say where a run writes, not what it computes."""

PACKAGE_DIR = Path(__file__).resolve().parents[1]
_MAGIC = re.compile(r"^\s*[%!?]")


def _module_file(name: str) -> Path | None:
    """Source file of ``kc[.a.b]`` in this package, or ``None``."""
    parts = name.split(".")[1:]
    base = PACKAGE_DIR.joinpath(*parts)
    if base.is_dir() and (base / "__init__.py").is_file():
        return base / "__init__.py"
    file = base.with_suffix(".py")
    return file if file.is_file() else None


def _dotted(node: ast.AST) -> list[str] | None:
    """``a.b.c`` as ``["a", "b", "c"]`` (a chain of attributes on a name), else ``None``."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    return [node.id, *reversed(parts)] if isinstance(node, ast.Name) else None


def _facade_of(name: str) -> dict[str, str] | None:
    file = _module_file(name)
    if file is None or file.name != "__init__.py":
        return None
    return _facade(name, file.stat().st_mtime_ns)


@lru_cache(maxsize=64)
def _facade(name: str, mtime_ns: int) -> dict[str, str] | None:
    """``{re-exported name: submodule}`` when package ``name``'s ``__init__`` holds nothing
    but its docstring, ``from __future__``, ``__all__`` and ``from <name>.<sub> import ...``;
    ``None`` for any other package (its code runs on import, so all of it counts)."""
    file = _module_file(name)
    assert file is not None
    names: dict[str, str] = {}
    for node in ast.parse(file.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if not node.module.startswith(name + ".") or _module_file(node.module) is None:
                return None
            names.update({a.asname or a.name: node.module for a in node.names})
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the docstring
        elif isinstance(node, ast.Assign) and [ast.unparse(t) for t in node.targets] == [
            "__all__"
        ]:
            continue
        else:
            return None
    return names


def _imports(tree: ast.AST) -> set[str]:
    """``kc`` modules imported anywhere in ``tree`` (``from kc import x`` -> ``kc.x`` if a
    module, else ``kc``); ``kc.X`` attribute uses count when ``X`` is a module; a name of a
    facade package (``from kc.book.plotting import f``, ``plotting.f``) counts as its submodule."""
    found: set[str] = set()
    aliases: dict[str, str] = {"kc": "kc"}  # local name -> kc module
    nodes = list(ast.walk(tree))
    for node in nodes:
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name == "kc" or a.name.startswith("kc."):
                    found.add(a.name)
                    if a.asname:
                        aliases[a.asname] = a.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "kc" or node.module.startswith("kc."):
                found.add(node.module)
                facade = _facade_of(node.module) or {}
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    if _module_file(sub) is not None:
                        found.add(sub)
                        aliases[alias.asname or alias.name] = sub
                    elif alias.name == "*":
                        found |= set(facade.values())
                    elif alias.name in facade:
                        found.add(facade[alias.name])
    for node in nodes:
        parts = _dotted(node) if isinstance(node, ast.Attribute) else None
        if not parts or parts[0] not in aliases:
            continue
        module = aliases[parts[0]]
        for attr in parts[1:]:
            facade = _facade_of(module)
            if _module_file(f"{module}.{attr}") is not None:
                module = f"{module}.{attr}"
                found.add(module)
            elif facade is not None and attr in facade:
                found.add(facade[attr])
                break
            else:
                break
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
        deps = _module_imports(name, file.stat().st_mtime_ns)
        if _facade_of(name) is not None:  # its submodules count only when their names are used
            deps = frozenset(d for d in deps if not d.startswith(name + "."))
        todo += list(deps)
    return seen


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def notebook_digest(
    cells: Iterable[Mapping[str, Any]], injected: Iterable[str] | None = None
) -> str:
    """Hash of the cells' types and sources (outputs, counts and metadata excluded).

    With ``injected`` (the names papermill sets), the first cell tagged ``parameters``
    counts only by the names it declares and the defaults of the names not injected.

    Example:
        >>> cell = {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": "A = 1"}
        >>> other = dict(cell, source="A = 2")
        >>> notebook_digest([cell], ["A"]) == notebook_digest([other], ["A"])
        True
        >>> notebook_digest([cell]) == notebook_digest([other])
        False
    """
    names = None if injected is None else set(injected)
    parts: list[list[Any]] = []
    for cell in cells:
        source: Any = cell.get("source", "")
        tags = (cell.get("metadata") or {}).get("tags", [])
        if names is not None and cell.get("cell_type") == "code" and "parameters" in tags:
            declared = _assignments(str(source))
            source = {k: (None if k in names else v) for k, v in sorted(declared.items())}
            names = None  # papermill injects after the first such cell only
        parts.append([cell.get("cell_type"), source])
    return _sha(json.dumps(parts))


def _assignments(source: str) -> dict[str, str]:
    """``{name: right-hand side}`` of the top-level assignments in ``source`` (the whole
    source under ``""`` when it does not parse)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {"": source}
    found: dict[str, str] = {}
    for node in tree.body:
        value = getattr(node, "value", None)
        targets = node.targets if isinstance(node, ast.Assign) else []
        if isinstance(node, ast.AnnAssign) and value is not None:
            targets = [node.target]
        if not targets and not isinstance(node, ast.Expr):
            found[f"<statement {len(found)}>"] = ast.unparse(node)
        for target in targets:
            found[ast.unparse(target)] = ast.unparse(value) if value is not None else ""
    return found


def _versions() -> str:
    found = [platform.python_version()]
    for package in ("torch", "torchvision", "numpy"):
        try:
            found.append(f"{package}=={metadata.version(package)}")
        except metadata.PackageNotFoundError:
            found.append(f"{package}: none")
    return ";".join(found)


def run_key(notebook: Path, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """The run key of ``notebook`` executed with ``parameters``.

    Returns:
        ``{"notebook", "parameters", "code", "data", "modules", "module_digests", "versions",
        "effective", "key"}``: four 16-hex-digit hashes, the modules hashed (comma-separated),
        each module's own digest, the library versions, the values hashed as ``parameters`` and
        ``key``, the hash of the four (the other entries are not part of it).
    """
    from kc.engine.cache import canonical_json, source_digest
    from kc.run.notebook_params import read_cells

    cells = read_cells(notebook)
    code = "\n".join(c["source"] for c in cells if c["cell_type"] == "code")
    modules = sorted(modules_used(code))
    files = [f for f in (_module_file(m) for m in modules) if f is not None]
    data = ""
    if "kc.studies.paper" in modules:
        from kc.studies.paper import paper_tables_path

        try:
            data = hashlib.sha256(paper_tables_path().read_bytes()).hexdigest()[:16]
        except FileNotFoundError:
            data = "missing"
    values = {k: v for k, v in effective_parameters(cells, parameters).items() if k not in NOT_KEYED}
    parts: dict[str, Any] = {
        "notebook": notebook_digest(cells, set(values) | set(parameters)),
        "parameters": _sha(canonical_json(values)),
        "code": source_digest(files),
        "data": data,
    }
    parts["key"] = _sha(json.dumps(parts, sort_keys=True))
    parts["modules"] = ",".join(modules)
    parts["module_digests"] = {
        m: source_digest([f]) for m, f in ((m, _module_file(m)) for m in modules) if f is not None
    }
    parts["versions"] = _versions()
    parts["effective"] = values
    return parts


def effective_parameters(
    cells: Iterable[Mapping[str, Any]], injected: Mapping[str, Any]
) -> dict[str, Any]:
    """The values a notebook runs with: the defaults of its first ``parameters`` cell (a
    literal as its value, any other expression as ``"<expr ...>"``), replaced by ``injected``.

    Example:
        >>> cell = {"cell_type": "code", "metadata": {"tags": ["parameters"]},
        ...         "source": "A = 1\\nB = [0, 1]\\nC = len(B)"}
        >>> effective_parameters([cell], {"A": 3})
        {'A': 3, 'B': [0, 1], 'C': '<expr len(B)>'}
    """
    values: dict[str, Any] = {}
    for cell in cells:
        tags = (cell.get("metadata") or {}).get("tags", [])
        if cell.get("cell_type") == "code" and "parameters" in tags:
            for name, text in _assignments(str(cell.get("source", ""))).items():
                try:
                    values[name] = ast.literal_eval(text)
                except (ValueError, SyntaxError):
                    values[name] = f"<expr {text}>"
            break
    values.update(injected)
    return values
