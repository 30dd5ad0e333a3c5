"""Executing the notebooks with papermill, in-process or as submitit jobs.

The manifest :data:`MANIFEST` maps every notebook to the paper item it reproduces and the files it
writes under ``<output_root>/<name>/``. :func:`run_notebook` runs one notebook:

1. the profile (``kc/profiles/<profile>.yaml`` or a path to a YAML file) is loaded;
2. only the parameters the notebook's ``parameters`` cell declares are kept;
3. ``PROFILE`` and ``OUTPUT_DIR`` (absolute, from the output root; it cannot be given
   explicitly) are added, then explicit ``parameters`` override;
4. papermill executes it with the working directory set to the repository root (the folder
   holding ``pyproject.toml`` above the notebook; the notebook's own folder for notebooks outside
   the repository), so relative paths such as ``outputs`` or ``data/cache`` mean the same thing
   as in a shell at the root;
5. the executed notebook goes to ``<output_root>/notebooks/<name>.ipynb`` and a record of the run
   (profile, parameters, wall time, status, run key, cache warnings) to
   ``<output_root>/<name>/run.json``.

Before anything runs, the profile's names are checked against the names the notebooks declare
and every value against the notebook's default and the cheap checks of :mod:`kc.params`.

Nothing good is overwritten: papermill writes into a temporary file beside the executed copy,
which is moved into place only when the notebook finished; a failed or interrupted run leaves
its partial copy as ``<name>.failed.ipynb`` beside the last good one. The kernel's own stderr goes
to ``<output_root>/<name>/kernel.log``.

A notebook whose run key (:mod:`kc.runkey`: its source, the resolved parameters, the code of the
``kc`` modules it uses, the paper data it reads) equals the key of its last successful run, and
whose outputs are all present, is skipped (``force=True`` re-runs it).

The run record holds: ``notebook``, ``source``, ``profile``, ``parameters`` (as injected),
``executed_notebook``, ``started`` and ``finished`` (UTC, ISO 8601), ``status`` (``"ok"``,
``"failed"`` or ``"interrupted"``), ``seconds``, ``run_key`` (``notebook``, ``parameters``,
``code``, ``data``, ``key``, ``modules``; see :mod:`kc.runkey`), ``warnings`` (the cache's
warnings while it ran), and ``outputs`` and ``missing_outputs`` after a success, or ``error``
and ``failed_notebook`` (the kept partial copy) after a failure. A skipped notebook keeps the
record of the run it stands for.

With ``executor="local"`` or ``"slurm"`` each notebook is one submitit job that calls
:func:`run_notebook` in-process; jobs share the on-disk cache.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

from kc import params

__all__ = [
    "EXECUTORS",
    "MANIFEST",
    "Notebook",
    "NotebookInterrupted",
    "RunResult",
    "RunSummary",
    "available_profiles",
    "check_explicit",
    "execute",
    "progress_line",
    "read_record",
    "up_to_date",
    "known_parameters",
    "load_profile",
    "make_executor",
    "manifest_entry",
    "notebook_parameters",
    "notebooks_dir",
    "parse_value",
    "project_root",
    "read_cells",
    "resolve_notebook",
    "run_all",
    "run_notebook",
]

log = logging.getLogger(__name__)

EXECUTORS = ("inprocess", "local", "slurm")
PROFILES_DIR = Path(__file__).resolve().parent / "profiles"
RUN_RECORD = "run.json"
KERNEL_LOG = "kernel.log"


@dataclass(frozen=True)
class Notebook:
    """One entry of the manifest.

    Attributes:
        name: file stem in ``notebooks/`` and folder name under the output root.
        paper_item: what of the paper it reproduces (``"Table 1"``).
        title: one line on what it shows.
        outputs: files it writes in ``<output_root>/<name>/`` (besides ``run.json``).
        part: ``"tutorial"``, ``"paper"`` or ``"beyond"`` (the book part it belongs to).
        planned: not written yet; ``run_all`` skips it while its file is missing.
    """

    name: str
    paper_item: str
    title: str
    outputs: tuple[str, ...] = ()
    part: str = "paper"
    planned: bool = False


MANIFEST: tuple[Notebook, ...] = (
    Notebook(
        "00_toy_consistency",
        "Eq. 1-4, footnote 1",
        "Course lab: knowledge consistency on planted features (five exercises with checks)",
        ("toy_cases.csv", "toy_cases.png", "toy_components.png", "toy_lambda.csv",
         "toy_cka.csv", "toy_directions.csv", "verdicts.md", "verdicts.json"),
        part="tutorial",
    ),
    Notebook(
        "fig1_orders",
        "Fig. 1",
        "Consistent components of one filter, order by order, over the images",
        ("fig1_orders.csv", "fig1_orders_channels.csv", "fig1_orders.png", "verdicts.md", "verdicts.json"),
    ),
    Notebook(
        "fig2_architecture",
        "Fig. 2",
        "The consistency network g for K = 3, drawn from the model, with parameters per branch",
        ("fig2_architecture.png", "fig2_architecture.svg", "fig2_architecture.csv",
         "fig2_sizes.csv", "verdicts.md", "verdicts.json"),
    ),
    Notebook(
        "table1_instability",
        "Table 1",
        "Instability of learning: different initializations, different training data",
        ("table1.csv", "table1_vs_paper.csv", "verdicts.md", "verdicts.json"),
    ),
    Notebook(
        "table2_order_variances",
        "Table 2",
        "Variances of the consistent components x(0), x(1), x(2) and of x(Delta)",
        ("table2.csv", "table2_vs_paper.csv", "verdicts.md", "verdicts.json"),
    ),
    Notebook(
        "table3_refinement",
        "Table 3",
        "Feature refinement: accuracy on consistent components vs. raw features",
        ("table3.csv", "table3_vs_paper.csv", "verdicts.md", "verdicts.json"),
    ),
    Notebook(
        "table4_redundant",
        "Table 4",
        "Removing redundant features learned on a mixture / superset of classes",
        ("table4.csv", "table4_vs_paper.csv", "verdicts.md", "verdicts.json"),
    ),
    Notebook(
        "sec41_diagnosis",
        "Sec. 4.1, Fig. 3",
        "Network diagnosis: blind spots and unreliable features of a weak network",
        ("sec41.csv", "sec41_vs_paper.csv", "verdicts.md", "verdicts.json"),
    ),
    Notebook(
        "fig3_diagnosis",
        "Fig. 3, Sec. 4.1",
        "Blind spots and unreliable components of a weak network, over the images",
        ("fig3_diagnosis.csv", "fig3_diagnosis_blind_spots.png", "fig3_diagnosis_unreliable.png",
         "verdicts.md", "verdicts.json"),
    ),
    Notebook(
        "fig4_compression",
        "Fig. 4 (left), Sec. 4.4",
        "Information discarded by network compression (magnitude pruning up to 93.3%)",
        ("fig4_compression.csv", "fig4_compression_runs.csv", "fig4_compression.png",
         "fig4_compression_components.png", "verdicts.md", "verdicts.json"),
    ),
    Notebook(
        "fig4_born_again",
        "Fig. 4 (right), Sec. 4.5",
        "Blind spots of born-again networks across generations",
        ("fig4_born_again.csv", "fig4_born_again_fits.csv", "fig4_born_again.png",
         "fig4_born_again_blind_spots.png", "verdicts.md", "verdicts.json"),
    ),
    Notebook(
        "fig5_cross_task",
        "Fig. 5, Sec. 4.6",
        "Consistent and inconsistent features between a fine-grained and a binary task",
        ("fig5_cross_task.csv", "fig5_cross_task_summary.csv", "fig5_cross_task_a_to_b.png",
         "fig5_cross_task_b_to_a.png", "verdicts.md", "verdicts.json"),
    ),
    Notebook(
        "baselines",
        "Beyond the paper",
        "Knowledge consistency beside linear/RBF CKA, SVCCA, PWCCA, Procrustes and ridge R^2 on "
        "the Table 1 pairs; a planted nonlinear case",
        ("baselines.csv", "baselines_agreement.csv", "baselines_planted.csv", "baselines.png",
         "verdicts.md", "verdicts.json"),
        part="beyond",
    ),
    Notebook(
        "grounding",
        "Beyond the paper",
        "Ground truth as ReSi tests it: layer monotonicity, functional difference, input-noise "
        "groups; which measure wins",
        ("grounding.csv", "grounding_winners.csv", "grounding_pairs.csv", "grounding.png",
         "verdicts.md", "verdicts.json"),
        part="beyond",
    ),
    Notebook(
        "planted",
        "Beyond the paper",
        "Planted structure: where the order decomposition recovers the linear, nonlinear and "
        "noise shares",
        ("planted.csv", "planted_identifiability.csv", "planted_noise_drop.csv", "planted.png",
         "planted_baselines.png", "verdicts.md", "verdicts.json"),
        part="beyond",
    ),
)


def manifest_entry(name: str) -> Notebook | None:
    """The manifest entry called ``name``, or ``None``."""
    return next((nb for nb in MANIFEST if nb.name == name), None)


# ---------------------------------------------------------------------------------------------
# locations


def project_root() -> Path:
    """The repository root: the folder above the ``kc`` package (installed editable)."""
    here = Path(__file__).resolve().parents[1]
    if (here / "pyproject.toml").is_file():
        return here
    return Path.cwd()


def notebooks_dir() -> Path:
    """Folder of the notebooks named in the manifest."""
    return project_root() / "notebooks"


def _manifest_listing() -> str:
    return ", ".join(nb.name for nb in MANIFEST)


def resolve_notebook(name_or_path: str | Path) -> Path:
    """Path of a notebook given its manifest name or a path to an ``.ipynb`` file.

    Raises:
        FileNotFoundError: a path that does not exist, or a manifest notebook not written yet.
        ValueError: a name that is not in the manifest (the message lists the manifest).
    """
    text = str(name_or_path)
    if text.endswith(".ipynb") or "/" in text or Path(text).is_file():
        path = Path(text).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"notebook {path} does not exist")
        return path.resolve()
    entry = manifest_entry(text)
    if entry is None:
        raise ValueError(f"unknown notebook {text!r}; the manifest has: {_manifest_listing()}")
    path = notebooks_dir() / f"{entry.name}.ipynb"
    if not path.is_file():
        state = "planned but not written yet" if entry.planned else "in the manifest"
        raise FileNotFoundError(f"notebook {entry.name!r} is {state}, but {path} does not exist")
    return path


def _working_dir(notebook: Path) -> Path:
    """The repository root above ``notebook``, else the notebook's folder."""
    for folder in notebook.resolve().parents:
        if (folder / "pyproject.toml").is_file():
            return folder
    return notebook.resolve().parent


# ---------------------------------------------------------------------------------------------
# profiles and parameters

_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


def available_profiles() -> list[str]:
    """Names of the profiles shipped in ``kc/profiles``."""
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def _profile_file(profile: str | Path) -> Path:
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
    """The parameters of a profile: a name in ``kc/profiles`` or a path to a YAML file.

    The file is a flat mapping of UPPER_CASE parameter names to values, read with
    :func:`kc.params.read_yaml` (``no`` stays a string). ``PROFILE`` is set to the profile's name
    (the file's stem). Names are checked against the notebooks by :func:`notebook_parameters`.
    """
    path = _profile_file(profile)
    data = params.read_yaml(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"profile {path} must be a mapping, got {type(data).__name__}")
    bad = [k for k in data if not isinstance(k, str) or not _NAME.match(k)]
    if bad:
        raise ValueError(f"profile {path} has names that are not UPPER_CASE identifiers: {bad}")
    data["PROFILE"] = path.stem
    return data


def parse_value(text: str) -> Any:
    """A command-line value read as YAML: ``"[0, 1]"`` -> ``[0, 1]``, ``"null"`` -> ``None``.

    Read with :func:`kc.params.read_yaml`: ``no`` and ``off`` stay strings, ``1e-3`` is a number;
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
    import ast

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
    """The parameters that :func:`run_notebook` injects into ``notebook``.

    Args:
        notebook: path to the notebook.
        profile: profile name or YAML path.
        parameters: explicit values, applied last.
        output_root: root of the outputs; injected as absolute ``OUTPUT_DIR``.
        strict: raise if an explicit parameter is not declared by the notebook (``run_all``
            passes ``False``, since one ``-p`` applies to several notebooks).

    Raises:
        ValueError: a profile name no notebook declares (with the closest known name); a value
            of the wrong type or out of range (:mod:`kc.params`); with ``strict``, an explicit
            parameter the notebook does not declare.
    """
    declared = declared_parameters(notebook)
    if not declared:
        log.warning(
            "%s has no cell tagged 'parameters'; only PROFILE and OUTPUT_DIR are set", notebook.name
        )
    loaded = load_profile(profile)
    params.check_names(
        [k for k in loaded if k != "PROFILE"],
        known_parameters([notebook]),
        f"profile {_profile_file(profile)}",
    )
    values = {k: v for k, v in loaded.items() if k in declared}
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
    paths = [notebooks_dir() / f"{nb.name}.ipynb" for nb in MANIFEST]
    for path in [*paths, *notebooks]:
        if Path(path).is_file():
            known |= set(declared_parameters(Path(path)))
    return known


def _nullable() -> set[str]:
    """Names some shipped profile sets to ``null`` (so ``None`` is a valid value for them)."""
    found: set[str] = set()
    for name in available_profiles():
        found |= {k for k, v in load_profile(name).items() if v is None}
    return found


# ---------------------------------------------------------------------------------------------
# running


class NotebookInterrupted(KeyboardInterrupt):
    """Ctrl-C while a notebook ran; says where its partial copy was kept."""

    def __init__(self, name: str, failed_copy: Path | None) -> None:
        super().__init__(name)
        self.name = name
        self.failed_copy = failed_copy


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _write_record(folder: Path, record: dict[str, Any]) -> None:
    from kc.cache import atomic_write_text

    atomic_write_text(json.dumps(record, indent=2, default=str) + "\n", folder / RUN_RECORD)


def read_record(root: str | Path, name: str) -> dict[str, Any]:
    """The run record ``<root>/<name>/run.json``, or ``{}`` when missing or unreadable."""
    try:
        record = json.loads((Path(root) / name / RUN_RECORD).read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _expected_outputs(root: Path, name: str, record: Mapping[str, Any]) -> list[str]:
    entry = manifest_entry(name)
    listed = set(entry.outputs) if entry is not None else set()
    return sorted(listed | set(record.get("outputs", [])))


def up_to_date(root: Path, name: str, key: Mapping[str, str]) -> tuple[bool, str]:
    """Whether the last run of ``name`` under ``root`` can stand for a run with ``key``.

    Returns:
        ``(True, "unchanged since <time>")``, or ``(False, why it must run)``.
    """
    record = read_record(root, name)
    if not record:
        return False, "no earlier run"
    if record.get("status") != "ok":
        return False, f"the last run {record.get('status', 'did not finish')}"
    old = record.get("run_key") or {}
    changed = [
        part for part in ("notebook", "parameters", "code", "data") if old.get(part) != key[part]
    ]
    if changed:
        return False, f"changed since the last run: {', '.join(changed)}"
    if not (root / "notebooks" / f"{name}.ipynb").is_file():
        return False, "the executed notebook is missing"
    missing = [f for f in _expected_outputs(root, name, record) if not (root / name / f).exists()]
    if missing:
        return False, f"outputs missing: {', '.join(missing)}"
    return True, f"unchanged since {record.get('finished') or record.get('started')}"


def _quiet_kernel_manager(log_file: Path) -> type:
    """A kernel manager whose kernel writes its stderr to ``log_file``: on Ctrl-C the dying
    kernel's tracebacks (ZMQError ...) stay out of the terminal."""
    from jupyter_client.manager import AsyncKernelManager

    class _KernelManager(AsyncKernelManager):  # type: ignore[misc]
        async def start_kernel(self, **kw: Any) -> None:
            with open(log_file, "ab") as stderr:  # Popen duplicates the descriptor
                kw.setdefault("stderr", stderr)
                await super().start_kernel(**kw)

    return _KernelManager


@contextlib.contextmanager
def _collect_warnings(folder: Path) -> Iterator[Path]:
    """Point ``$KC_WARNINGS_FILE`` (read by :mod:`kc.cache`, inherited by the kernel) to a fresh
    file in ``folder`` for the duration."""
    from kc.cache import WARNINGS_ENV

    path = folder / ".warnings"
    path.unlink(missing_ok=True)
    before = os.environ.get(WARNINGS_ENV)
    os.environ[WARNINGS_ENV] = str(path)
    try:
        yield path
    finally:
        if before is None:
            os.environ.pop(WARNINGS_ENV, None)
        else:
            os.environ[WARNINGS_ENV] = before


def _read_lines(path: Path) -> list[str]:
    try:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
    except OSError:
        return []
    path.unlink(missing_ok=True)
    return lines


def _execute(
    notebook: Path,
    *,
    profile: str | Path,
    parameters: Mapping[str, Any] | None,
    root: Path,
    kernel_name: str,
    log_output: bool,
    strict: bool,
    force: bool,
) -> RunResult:
    """Run one notebook in this process (or skip it); see :func:`run_notebook`."""
    import papermill

    from kc import runkey
    from kc.cache import file_mode

    name = notebook.stem
    values = notebook_parameters(notebook, profile, parameters, root, strict=strict)
    key = runkey.run_key(notebook, values)
    folder, out = root / "notebooks", root / name
    executed, failed = folder / f"{name}.ipynb", folder / f"{name}.failed.ipynb"
    fresh, why = up_to_date(root, name, key)
    if fresh and not force:
        log.debug("%s: skipped: %s", name, why)
        return RunResult(name, "skipped", 0.0, executed, note=why)
    folder.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "notebook": name,
        "source": str(notebook),
        "profile": values.get("PROFILE"),
        "parameters": values,
        "executed_notebook": str(executed),
        "started": _now(),
        "run_key": key,
    }
    why = "--force" if fresh else why
    log.info("running %s (profile %s; %s)", name, record["profile"], why)
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".running.ipynb")
    os.close(fd)
    tmp = Path(tmp_name)
    kernel_log = out / KERNEL_LOG
    kernel_log.unlink(missing_ok=True)
    start = time.perf_counter()
    with _collect_warnings(out) as warnings_file:
        try:
            papermill.execute_notebook(
                str(notebook),
                str(tmp),
                parameters=values,
                kernel_name=kernel_name,
                language="python",
                log_output=log_output,
                progress_bar=False,
                cwd=str(_working_dir(notebook)),
                kernel_manager_class=_quiet_kernel_manager(kernel_log),
            )
        except BaseException as error:
            kept: Path | None = None
            if tmp.is_file() and tmp.stat().st_size > 0:
                os.chmod(tmp, file_mode())
                os.replace(tmp, failed)
                kept = failed
            tmp.unlink(missing_ok=True)
            interrupted = isinstance(error, KeyboardInterrupt)
            record.update(
                status="interrupted" if interrupted else "failed",
                finished=_now(),
                seconds=round(time.perf_counter() - start, 3),
                error=f"{type(error).__name__}: {str(error).strip()[-2000:]}",
                failed_notebook=str(kept) if kept else None,
                warnings=_read_lines(warnings_file),
            )
            _write_record(out, record)
            if interrupted:
                raise NotebookInterrupted(name, kept) from None
            if kept is not None:
                log.error("%s failed; its executed copy (with the traceback) is %s", name, kept)
            raise
    os.chmod(tmp, file_mode())
    os.replace(tmp, executed)
    failed.unlink(missing_ok=True)  # a failed copy from an earlier run is stale now
    warnings = _read_lines(warnings_file)
    for line in warnings:
        log.warning("%s: %s", name, line)
    written = sorted(
        p.name for p in out.iterdir() if p.is_file() and p.name not in (RUN_RECORD, KERNEL_LOG)
    )
    record.update(
        status="ok",
        finished=_now(),
        seconds=round(time.perf_counter() - start, 3),
        outputs=written,
        warnings=warnings,
    )
    entry = manifest_entry(name)
    if entry is not None:
        missing = [f for f in entry.outputs if not (out / f).exists()]
        record["missing_outputs"] = missing
        if missing:
            log.warning("%s did not write %s", name, missing)
    _write_record(out, record)
    log.info("finished %s in %.1f s -> %s", name, record["seconds"], executed)
    return RunResult(name, "ok", record["seconds"], executed, warnings=warnings)


def run_notebook(
    name_or_path: str | Path,
    *,
    profile: str | Path = "small",
    parameters: Mapping[str, Any] | None = None,
    output_root: str | Path = "outputs",
    kernel_name: str = "python3",
    log_output: bool = False,
    executor: str = "inprocess",
    executor_options: Mapping[str, Any] | None = None,
    strict: bool = True,
    force: bool = False,
) -> Path:
    """Execute one notebook with a profile and return the path of the executed copy.

    Args:
        name_or_path: a manifest name (``"table1_instability"``) or a path to an ``.ipynb``.
        profile: ``"smoke"``, ``"small"``, ``"paper"`` or a path to a profile YAML file.
        parameters: explicit values, applied after the profile.
        output_root: root of the outputs (``<root>/notebooks/<name>.ipynb``, ``<root>/<name>/``).
        kernel_name: the Jupyter kernel; ``"python3"`` is the interpreter running ``kc``.
        log_output: stream the notebook's output to the log while it runs.
        executor: ``"inprocess"`` (default), or ``"local"`` / ``"slurm"`` for a submitit job.
        executor_options: submitit settings, see :func:`make_executor`.
        strict: refuse explicit parameters the notebook does not declare.
        force: run even when the last successful run has the same run key and all outputs.

    Raises:
        ValueError: bad parameters (before anything runs).
        papermill.PapermillExecutionError: a cell failed (the executed copy is kept as
            ``<name>.failed.ipynb``; the last good ``<name>.ipynb`` is untouched).
        NotebookInterrupted: Ctrl-C (the partial copy is kept the same way).
    """
    return execute(
        name_or_path,
        profile=profile,
        parameters=parameters,
        output_root=output_root,
        kernel_name=kernel_name,
        log_output=log_output,
        executor=executor,
        executor_options=executor_options,
        strict=strict,
        force=force,
    ).executed  # type: ignore[return-value]


def execute(
    name_or_path: str | Path,
    *,
    profile: str | Path = "small",
    parameters: Mapping[str, Any] | None = None,
    output_root: str | Path = "outputs",
    kernel_name: str = "python3",
    log_output: bool = False,
    executor: str = "inprocess",
    executor_options: Mapping[str, Any] | None = None,
    strict: bool = True,
    force: bool = False,
) -> RunResult:
    """Like :func:`run_notebook`, but returns the :class:`RunResult` (``"ok"`` or
    ``"skipped"``, with the cache warnings)."""
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    notebook = resolve_notebook(name_or_path)
    root = Path(output_root).resolve()
    if executor != "inprocess":
        notebook_parameters(notebook, profile, parameters, root, strict=strict)  # fail here
        job_executor = make_executor(executor, root / "submitit", **(executor_options or {}))
        job = _submit(job_executor, notebook, profile, parameters, root, kernel_name, strict, force)
        log.info("submitted %s as %s job %s", notebook.stem, executor, job.job_id)
        return job.result()  # type: ignore[no-any-return]
    return _execute(
        notebook,
        profile=profile,
        parameters=parameters,
        root=root,
        kernel_name=kernel_name,
        log_output=log_output,
        strict=strict,
        force=force,
    )


def make_executor(
    kind: str,
    folder: str | Path,
    *,
    timeout_min: int = 24 * 60,
    gpus_per_node: int | None = None,
    cpus_per_task: int | None = None,
    mem_gb: float | None = None,
    partition: str | None = None,
    slurm_additional_parameters: Mapping[str, Any] | None = None,
) -> Any:
    """A submitit ``AutoExecutor`` for ``"local"`` or ``"slurm"`` jobs logging into ``folder``.

    ``partition`` and ``slurm_additional_parameters`` only apply to Slurm.
    """
    if kind not in ("local", "slurm"):
        raise ValueError(f"submitit executor must be 'local' or 'slurm', got {kind!r}")
    import submitit

    executor = submitit.AutoExecutor(folder=Path(folder), cluster=kind)
    options: dict[str, Any] = {"timeout_min": timeout_min, "name": "kc"}
    if gpus_per_node is not None:
        options["gpus_per_node"] = gpus_per_node
    if cpus_per_task is not None:
        options["cpus_per_task"] = cpus_per_task
    if mem_gb is not None:
        options["mem_gb"] = mem_gb
    if kind == "slurm":
        if partition:
            options["slurm_partition"] = partition
        if slurm_additional_parameters:
            options["slurm_additional_parameters"] = dict(slurm_additional_parameters)
    executor.update_parameters(**options)
    return executor


def _job(
    notebook: str,
    profile: str,
    parameters: dict[str, Any] | None,
    output_root: str,
    kernel_name: str,
    strict: bool,
    force: bool = False,
) -> RunResult:
    """Body of a submitit job: run one notebook in the job's process."""
    logging.basicConfig(level=logging.INFO, format="[kc] %(message)s")
    return execute(
        notebook,
        profile=profile,
        parameters=parameters,
        output_root=output_root,
        kernel_name=kernel_name,
        strict=strict,
        force=force,
    )


def _submit(
    executor: Any,
    notebook: Path,
    profile: str | Path,
    parameters: Mapping[str, Any] | None,
    root: Path,
    kernel_name: str,
    strict: bool,
    force: bool = False,
) -> Any:
    profile_arg = str(_profile_file(profile).resolve())
    return executor.submit(
        _job, str(notebook), profile_arg, dict(parameters or {}), str(root), kernel_name, strict,
        force,
    )  # fmt: skip


@dataclass
class RunResult:
    """Outcome of one notebook.

    Attributes:
        status: ``"ok"``, ``"failed"`` or ``"skipped"`` (unchanged since its last run, or a
            planned notebook not written yet; ``note`` says which).
        warnings: the cache's warnings while it ran (also in its ``run.json``).
    """

    name: str
    status: str
    seconds: float = 0.0
    executed: Path | None = None
    error: str = ""
    note: str = ""
    warnings: list[str] = field(default_factory=list)


@dataclass
class RunSummary:
    """Outcomes of :func:`run_all`; ``returncode`` is 1 when a notebook failed."""

    results: list[RunResult] = field(default_factory=list)

    @property
    def failures(self) -> list[str]:
        return [r.name for r in self.results if r.status == "failed"]

    @property
    def returncode(self) -> int:
        return 1 if self.failures else 0

    def __str__(self) -> str:
        width = max([len(r.name) for r in self.results] + [8])
        lines = [f"{'notebook':<{width}}  status   seconds"]
        for r in self.results:
            text = r.error.splitlines()[0][:100] if r.error else r.note
            note = f"  {text}" if text else ""
            lines.append(f"{r.name:<{width}}  {r.status:<7}  {r.seconds:7.1f}{note}")
            if r.error and r.note:
                lines.append(f"{'':<{width}}  {r.note}")
        for r in self.results:
            lines += [f"warning ({r.name}): {w}" for w in r.warnings]
        ran = sum(r.status == "ok" for r in self.results)
        skipped = sum(r.status == "skipped" for r in self.results)
        if self.failures:
            lines.append(f"FAILED: {', '.join(self.failures)}")
        else:
            lines.append(f"{ran} notebooks ran, {skipped} skipped")
        return "\n".join(lines)


def _error_text(error: BaseException) -> str:
    ename, evalue = getattr(error, "ename", None), getattr(error, "evalue", None)
    if ename:  # papermill's PapermillExecutionError: the cell's exception, not the banner
        return f"{ename}: {evalue} (in cell [{getattr(error, 'exec_count', '?')}])"
    text = str(error).strip() or type(error).__name__
    return f"{type(error).__name__}: {text}" if not text.startswith(type(error).__name__) else text


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return (
        f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"
        if minutes >= 60
        else f"{minutes}:{secs:02d}"
    )


def progress_line(
    index: int, total: int, name: str, elapsed: float, remaining: float, unknown: int
) -> str:
    """``notebook 2/6 table1_instability; elapsed 1:05; about 12:30 left`` (``unknown``: how
    many of the notebooks still to run have no earlier run to estimate from).

    Example:
        >>> progress_line(2, 6, "table1", 65, 750, 1)
        'notebook 2/6 table1; elapsed 1:05; about 12:30 left (+1 never run)'
    """
    left = f"about {_clock(remaining)} left" if remaining or not unknown else "time left unknown"
    more = f" (+{unknown} never run)" if unknown and remaining else ""
    return f"notebook {index}/{total} {name}; elapsed {_clock(elapsed)}; {left}{more}"


def _estimate(
    root: Path, todo: Sequence[tuple[str, Path]], plans: Mapping[str, bool]
) -> dict[str, float | None]:
    """Expected seconds per notebook: 0 if it will be skipped, else the wall time of its last
    run that finished (``None`` if there is none)."""
    expected: dict[str, float | None] = {}
    for name, _ in todo:
        record = read_record(root, name)
        if plans.get(name):
            expected[name] = 0.0
        elif record.get("status") == "ok" and isinstance(record.get("seconds"), (int, float)):
            expected[name] = float(record["seconds"])
        else:
            expected[name] = None
    return expected


def run_all(
    profile: str | Path = "small",
    *,
    parameters: Mapping[str, Any] | None = None,
    output_root: str | Path = "outputs",
    executor: str = "inprocess",
    executor_options: Mapping[str, Any] | None = None,
    notebooks: Sequence[str | Path] | None = None,
    kernel_name: str = "python3",
    log_output: bool = False,
    force: bool = False,
) -> RunSummary:
    """Run the manifest's notebooks in order, continuing past failures.

    Every notebook's parameters are resolved and checked before the first one runs. Each
    notebook unchanged since its last successful run (see :func:`up_to_date`) is skipped unless
    ``force``. Before each notebook a progress line gives its position, the elapsed time and
    an estimate of the time left (from the run records of earlier runs).

    Args:
        profile: profile name or YAML path.
        parameters: explicit values for every notebook that declares them; each must be
            declared by at least one of the notebooks.
        output_root: root of the outputs.
        executor: ``"inprocess"`` and ``"local"`` run one notebook after the other (later
            notebooks reuse the cache the earlier ones filled); ``"slurm"`` submits all jobs at
            once and waits for them.
        executor_options: submitit settings, see :func:`make_executor`.
        notebooks: names or paths to run instead of the manifest.
        kernel_name, log_output: as in :func:`run_notebook`.
        force: re-run notebooks that are unchanged since their last run.

    Returns:
        A :class:`RunSummary`; planned notebooks whose file is missing are ``"skipped"``.

    Raises:
        ValueError: bad parameters for any notebook (nothing has run).
        NotebookInterrupted: Ctrl-C.
    """
    from kc import runkey

    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    load_profile(profile)  # fail early on a bad profile
    items = list(notebooks) if notebooks is not None else [nb.name for nb in MANIFEST]
    root = Path(output_root).resolve()
    results: dict[str, RunResult] = {}
    todo: list[tuple[str, Path]] = []
    for item in items:
        name, entry = Path(str(item)).stem, manifest_entry(str(item))
        try:
            todo.append((name, resolve_notebook(item)))
        except FileNotFoundError as error:
            status = "skipped" if entry is not None and entry.planned else "failed"
            results[name] = RunResult(name, status, error=str(error))
    _check_explicit(parameters, [path for _, path in todo])
    fresh: dict[str, bool] = {}
    for name, path in todo:  # every notebook's parameters checked before anything runs
        values = notebook_parameters(path, profile, parameters, root, strict=False)
        fresh[name] = not force and up_to_date(root, name, runkey.run_key(path, values))[0]

    def finish(name: str, start: float, outcome: Callable[[], Any]) -> None:
        try:
            result = outcome()
            if isinstance(result, RunResult):
                results[name] = result
                if result.status == "skipped":
                    log.info("%s: skipped: %s", name, result.note)
            else:
                results[name] = RunResult(name, "ok", _seconds(root, name, start), Path(result))
        except Exception as error:  # noqa: BLE001 - report it and go on with the others
            log.error("%s failed: %s", name, _error_text(error).splitlines()[0])
            log.debug("%s", traceback.format_exc())
            record = read_record(root, name)
            copy = record.get("failed_notebook")
            results[name] = RunResult(
                name,
                "failed",
                _seconds(root, name, start),
                error=_error_text(error),
                note=f"executed copy: {copy}" if copy else "",
                warnings=list(record.get("warnings") or []),
            )

    if executor == "slurm":  # all jobs at once, then wait for each
        job_executor = make_executor("slurm", root / "submitit", **(executor_options or {}))
        jobs = [
            (
                name,
                time.time(),
                _submit(job_executor, path, profile, parameters, root, kernel_name, False, force),
            )
            for name, path in todo
        ]
        for name, start, job in jobs:
            log.info("waiting for %s (slurm job %s)", name, job.job_id)
            finish(name, start, job.result)
    else:  # one after the other
        expected = _estimate(root, todo, fresh)
        begin = time.time()
        for index, (name, path) in enumerate(todo, 1):
            rest = [expected[n] for n, _ in todo[index - 1 :]]
            known = sum(x for x in rest if x is not None)
            log.info(
                "%s",
                progress_line(index, len(todo), name, time.time() - begin, known, rest.count(None)),
            )
            finish(
                name,
                time.time(),
                lambda path=path: execute(
                    path,
                    profile=profile,
                    parameters=parameters,
                    output_root=root,
                    kernel_name=kernel_name,
                    log_output=log_output,
                    executor=executor,
                    executor_options=executor_options,
                    strict=False,
                    force=force,
                ),
            )
    return RunSummary([results[Path(str(item)).stem] for item in items])


def _seconds(root: Path, name: str, start: float) -> float:
    """Wall time of a notebook: from the run record it wrote, else since ``start``."""
    record = root / name / RUN_RECORD
    try:
        if record.stat().st_mtime >= start:
            return float(json.loads(record.read_text())["seconds"])
    except (OSError, ValueError, KeyError):
        pass
    return time.time() - start


def _refuse_output_dir(parameters: Mapping[str, Any]) -> None:
    """OUTPUT_DIR comes from the output root only: the executed notebook and the run record go
    under the root, so an explicit OUTPUT_DIR would split one run over two folders (and overwrite
    another run's executed notebook)."""
    if "OUTPUT_DIR" in parameters:
        raise ValueError(
            "OUTPUT_DIR is set from the output root; pass output_root (kc run --output-root "
            f"{parameters['OUTPUT_DIR']}) instead of the parameter"
        )


def _check_explicit(parameters: Mapping[str, Any] | None, paths: Iterable[Path]) -> None:
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
