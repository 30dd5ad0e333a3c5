"""The parameters a notebook is run with: its profile, its declared defaults, explicit values.

A profile (``kc/run/profiles/<name>.yaml`` or a path to a YAML file) is a mapping of UPPER_CASE
names, plus an optional ``NOTEBOOKS`` section of values for one notebook only (``NOTEBOOKS:
{table3_refinement: {NETWORKS: ...}}``; :func:`profile_values`), for a name two notebooks
declare with different meanings; :func:`notebook_parameters` keeps the names the notebook's ``parameters`` cell declares
(:func:`declared_parameters`), adds ``PROFILE`` and ``OUTPUT_DIR`` (absolute, from the output
root; it cannot be given explicitly), applies explicit values last and checks every value against
the notebook's default and the cheap checks of :mod:`kc.run.params`. Names a profile or ``-p`` gives
that no notebook declares are refused with the closest known name.
"""

from __future__ import annotations

import ast
import json
import logging
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from kc.run import manifest, params

__all__ = [
    "PROFILES_DIR",
    "available_profiles",
    "check_explicit",
    "check_explicit_for",
    "declared_parameters",
    "known_parameters",
    "load_profile",
    "notebook_parameters",
    "parse_value",
    "profile_file",
    "profile_values",
    "read_cells",
]

log = logging.getLogger("kc.run.runner")  # one logger for running notebooks (kc.run.runner and its parts)

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"
_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


def available_profiles() -> list[str]:
    """Names of the profiles shipped in ``kc/run/profiles``."""
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def profile_file(profile: str | Path) -> Path:
    """The YAML file of a profile name in ``kc/run/profiles`` or of a path."""
    text = str(profile)
    if text.endswith((".yaml", ".yml")) or "/" in text:
        path = Path(text).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"profile file {path} does not exist")
        return path
    path = PROFILES_DIR / f"{text}.yaml"
    if not path.is_file():
        raise ValueError(
            f"unknown profile {text!r}; available: {available_profiles()} (or give a YAML path)"
        )
    return path


def load_profile(profile: str | Path) -> dict[str, Any]:
    """The parameters of a profile: a name in ``kc/run/profiles`` or a path to a YAML file.

    The file is a flat mapping of UPPER_CASE parameter names to values, read with
    :func:`kc.run.params.read_yaml` (``no`` stays a string). ``PROFILE`` is set to the profile's name
    (the file's stem). Names are checked against the notebooks by :func:`notebook_parameters`.
    """
    path = profile_file(profile)
    data = params.read_yaml(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"profile {path} must be a mapping, got {type(data).__name__}")
    bad = [k for k in data if not isinstance(k, str) or not _NAME.match(k)]
    sections = data.get(SECTIONS, {})
    if not isinstance(sections, dict):
        raise ValueError(f"profile {path}: {SECTIONS} must map notebook names to values")
    names = {nb.name for nb in manifest.MANIFEST}
    for notebook, values in sections.items():
        if notebook not in names:
            raise ValueError(
                f"profile {path}: {SECTIONS} names {notebook!r}, not a notebook of the manifest"
                f"{params.closest(str(notebook), names)}"
            )
        if not isinstance(values, dict):
            raise ValueError(f"profile {path}: {SECTIONS}.{notebook} must be a mapping")
        bad += [f"{notebook}.{k}" for k in values if not isinstance(k, str) or not _NAME.match(k)]
    if bad:
        raise ValueError(f"profile {path} has names that are not UPPER_CASE identifiers: {bad}")
    data["PROFILE"] = path.stem
    return data


SECTIONS = "NOTEBOOKS"
"""The key of a profile's per-notebook values."""


def profile_values(loaded: Mapping[str, Any], notebook: str) -> dict[str, Any]:
    """A loaded profile as one notebook sees it: the shared values, then its own section.

    Example:
        >>> profile_values({"SEEDS": [0], "NOTEBOOKS": {"t3": {"NETWORKS": [1]}}}, "t3")
        {'SEEDS': [0], 'NETWORKS': [1]}
    """
    values = {k: v for k, v in loaded.items() if k != SECTIONS}
    values.update((loaded.get(SECTIONS) or {}).get(notebook) or {})
    return values


def parse_value(text: str) -> Any:
    """A command-line value read as YAML: ``"[0, 1]"`` -> ``[0, 1]``, ``"null"`` -> ``None``.

    Read with :func:`kc.run.params.read_yaml`: ``no`` and ``off`` stay strings, ``1e-3`` is a number;
    other strings that Python reads as numbers become numbers.
    """
    value = params.read_yaml(text) if text.strip() else text
    if isinstance(value, str):
        for convert in (int, float):
            try:
                return convert(value)
            except ValueError:
                pass
    return value


def read_cells(notebook: Path) -> list[dict[str, Any]]:
    """The cells of a notebook file (JSON, nbformat 4), each source joined into one string."""
    cells = json.loads(Path(notebook).read_text(encoding="utf-8")).get("cells", [])
    for cell in cells:
        source = cell.get("source", "")
        cell["source"] = "".join(source) if isinstance(source, list) else source
        cell.setdefault("metadata", {})
    return list(cells)


def declared_parameters(notebook: Path) -> dict[str, Any]:
    """The parameters declared by the notebook's ``parameters`` cell, with their defaults."""
    path = Path(notebook).resolve()
    return dict(_declared(str(path), path.stat().st_mtime_ns))


@lru_cache(maxsize=64)
def _declared(notebook_path: str, mtime_ns: int) -> dict[str, Any]:
    """Top-level ``NAME = value`` assignments of the cell tagged ``parameters``; the value is
    the literal (``None`` when the right-hand side is not a literal)."""
    found: dict[str, Any] = {}
    for cell in read_cells(Path(notebook_path)):
        if cell["cell_type"] != "code" or "parameters" not in cell["metadata"].get("tags", []):
            continue
        for node in ast.parse(cell["source"]).body:
            targets = node.targets if isinstance(node, ast.Assign) else []
            if isinstance(node, ast.AnnAssign) and node.value is not None:
                targets = [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    try:
                        found[target.id] = ast.literal_eval(node.value)  # type: ignore[union-attr,arg-type]
                    except ValueError:
                        found[target.id] = None
        break  # papermill uses the first cell tagged `parameters`
    return found


def notebook_parameters(
    notebook: Path,
    profile: str | Path = "small",
    parameters: Mapping[str, Any] | None = None,
    output_root: str | Path = "outputs",
    strict: bool = True,
) -> dict[str, Any]:
    """The parameters that :func:`kc.run.runner.run_notebook` injects into ``notebook``.

    Args:
        notebook: path to the notebook.
        profile: profile name or YAML path.
        parameters: explicit values, applied last.
        output_root: root of the outputs; injected as absolute ``OUTPUT_DIR``.
        strict: raise if an explicit parameter is not declared by the notebook (``run_all``
            passes ``False``, since one ``-p`` applies to several notebooks).

    Raises:
        ValueError: a profile name no notebook declares (with the closest known name); a value
            of the wrong type or out of range (:mod:`kc.run.params`); with ``strict``, an explicit
            parameter the notebook does not declare.
    """
    declared = declared_parameters(notebook)
    if not declared:
        log.warning(
            "%s has no cell tagged 'parameters'; only PROFILE and OUTPUT_DIR are set", notebook.name
        )
    loaded = load_profile(profile)
    params.check_names(
        [k for k in loaded if k not in ("PROFILE", SECTIONS)],
        known_parameters([notebook]),
        f"profile {profile_file(profile)}",
    )
    own = (loaded.get(SECTIONS) or {}).get(Path(notebook).stem) or {}
    if own and declared:
        params.check_names(
            list(own), declared, f"profile {profile_file(profile)}, {SECTIONS}.{Path(notebook).stem},"
        )
    values = {k: v for k, v in profile_values(loaded, Path(notebook).stem).items() if k in declared}
    values["PROFILE"] = loaded["PROFILE"]
    values["OUTPUT_DIR"] = str(Path(output_root).resolve())
    explicit = dict(parameters or {})
    _refuse_output_dir(explicit)
    unknown = sorted(k for k in explicit if k not in declared and k not in values)
    if unknown and strict:
        raise ValueError(
            f"{notebook.name} does not declare {unknown}; it declares {sorted(declared)}"
        )
    values.update({k: v for k, v in explicit.items() if k not in unknown})
    nullable = _nullable()
    for name in list(values):
        if name in declared and name not in ("PROFILE", "OUTPUT_DIR"):
            values[name] = params.check_type(
                name, values[name], declared[name], nullable=name in nullable
            )
    params.check_values(values)
    return values


def known_parameters(notebooks: Iterable[Path] = ()) -> set[str]:
    """Every name declared by a written notebook of the manifest or one of ``notebooks``."""
    known = {"PROFILE", "OUTPUT_DIR"}
    paths = [manifest.notebooks_dir() / f"{nb.name}.ipynb" for nb in manifest.MANIFEST]
    for path in [*paths, *notebooks]:
        if Path(path).is_file():
            known |= set(declared_parameters(Path(path)))
    return known


def _nullable() -> set[str]:
    """Names some shipped profile sets to ``null`` (so ``None`` is a valid value for them)."""
    found: set[str] = set()
    for name in available_profiles():
        loaded = load_profile(name)
        found |= {k for k, v in loaded.items() if v is None}
        for section in (loaded.get(SECTIONS) or {}).values():
            found |= {k for k, v in section.items() if v is None}
    return found


def _refuse_output_dir(parameters: Mapping[str, Any]) -> None:
    """OUTPUT_DIR comes from the output root only: the executed notebook and the run record go
    under the root, so an explicit OUTPUT_DIR would split one run over two folders (and overwrite
    another run's executed notebook)."""
    if "OUTPUT_DIR" in parameters:
        raise ValueError(
            "OUTPUT_DIR is set from the output root; pass output_root (kc run --output-root "
            f"{parameters['OUTPUT_DIR']}) instead of the parameter"
        )


def check_explicit_for(parameters: Mapping[str, Any] | None, paths: Iterable[Path]) -> None:
    """:func:`check_explicit` against the names the notebooks at ``paths`` declare."""
    declared: set[str] = set()
    for path in paths:
        declared |= set(declared_parameters(path))
    check_explicit(parameters, declared)


def check_explicit(parameters: Mapping[str, Any] | None, declared: Iterable[str]) -> None:
    """Refuse explicit parameters (``-p``) that none of the notebooks declares, and
    ``OUTPUT_DIR``.

    Raises:
        ValueError: ``no notebook declares ['EPOCH'] (did you mean EPOCHS?); declared ...``.
    """
    _refuse_output_dir(parameters or {})
    explicit = set(parameters or {}) - {"PROFILE"}
    known = set(declared)
    unknown = sorted(explicit - known)
    if unknown:
        hints = "".join(params.closest(name, known) for name in unknown)
        raise ValueError(
            f"no notebook declares {unknown}{hints}; declared parameters: {sorted(known)}"
        )
