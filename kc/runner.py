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
   (profile, parameters, wall time, status) to ``<output_root>/<name>/run.json``.

With ``executor="local"`` or ``"slurm"`` each notebook is one submitit job that calls
:func:`run_notebook` in-process; jobs share the on-disk cache.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "EXECUTORS",
    "MANIFEST",
    "Notebook",
    "RunResult",
    "RunSummary",
    "available_profiles",
    "load_profile",
    "make_executor",
    "manifest_entry",
    "notebook_parameters",
    "notebooks_dir",
    "parse_value",
    "project_root",
    "resolve_notebook",
    "run_all",
    "run_notebook",
]

log = logging.getLogger(__name__)

EXECUTORS = ("inprocess", "local", "slurm")
PROFILES_DIR = Path(__file__).resolve().parent / "profiles"
RUN_RECORD = "run.json"


@dataclass(frozen=True)
class Notebook:
    """One entry of the manifest.

    Attributes:
        name: file stem in ``notebooks/`` and folder name under the output root.
        paper_item: what of the paper it reproduces (``"Table 1"``).
        title: one line on what it shows.
        outputs: files it writes in ``<output_root>/<name>/`` (besides ``run.json``).
        part: ``"tutorial"`` or ``"paper"`` (the book part it belongs to).
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
        "Tutorial: planted cases (permuted, linear, nonlinear, unrelated features)",
        ("toy_cases.csv", "toy_cases.png", "toy_lambda.csv", "verdicts.md"),
        part="tutorial",
    ),
    Notebook(
        "table1_instability",
        "Table 1",
        "Instability of learning: different initializations, different training data",
        ("table1.csv", "table1_vs_paper.csv", "verdicts.md"),
    ),
    Notebook(
        "table2_order_variances",
        "Table 2",
        "Variances of the consistent components x(0), x(1), x(2) and of x(Delta)",
        ("table2.csv", "table2_vs_paper.csv", "verdicts.md"),
    ),
    Notebook(
        "table3_refinement",
        "Table 3",
        "Feature refinement: accuracy on consistent components vs. raw features",
        ("table3.csv", "table3_vs_paper.csv", "verdicts.md"),
    ),
    Notebook(
        "table4_redundant",
        "Table 4",
        "Removing redundant features learned on a mixture / superset of classes",
        ("table4.csv", "table4_vs_paper.csv", "verdicts.md"),
    ),
    Notebook(
        "sec41_diagnosis",
        "Sec. 4.1, Fig. 3",
        "Network diagnosis: blind spots and unreliable features of a weak network",
        ("sec41.csv", "sec41_vs_paper.csv", "verdicts.md"),
    ),
    Notebook(
        "fig4_compression",
        "Fig. 4 (left), Sec. 4.4",
        "Information discarded by network compression",
        ("fig4_compression.csv", "fig4_compression.png", "verdicts.md"),
        planned=True,
    ),
    Notebook(
        "fig4_distillation",
        "Fig. 4 (right), Sec. 4.5",
        "Blind spots of born-again networks across generations",
        ("fig4_distillation.csv", "fig4_distillation.png", "verdicts.md"),
        planned=True,
    ),
    Notebook(
        "fig5_tasks",
        "Fig. 5, Sec. 4.6",
        "Consistent and inconsistent features between different tasks",
        ("fig5.csv", "fig5.png", "verdicts.md"),
        planned=True,
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

    The file is a flat mapping of UPPER_CASE parameter names to values. ``PROFILE`` is set to the
    profile's name (the file's stem).
    """
    path = _profile_file(profile)
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"profile {path} must be a mapping, got {type(data).__name__}")
    bad = [k for k in data if not isinstance(k, str) or not _NAME.match(k)]
    if bad:
        raise ValueError(f"profile {path} has names that are not UPPER_CASE identifiers: {bad}")
    data["PROFILE"] = path.stem
    return data


def parse_value(text: str) -> Any:
    """A command-line value read as YAML: ``"[0, 1]"`` -> ``[0, 1]``, ``"null"`` -> ``None``.

    YAML 1.1 reads ``1e-3`` as a string; such strings that Python reads as numbers become numbers.
    """
    value = yaml.safe_load(text) if text.strip() else text
    if isinstance(value, str):
        for convert in (int, float):
            try:
                return convert(value)
            except ValueError:
                pass
    return value


def declared_parameters(notebook: Path) -> dict[str, Any]:
    """The parameters declared by the notebook's ``parameters`` cell, with their defaults."""
    import nbformat
    import papermill

    nb = nbformat.read(str(notebook), as_version=4)
    if nb.metadata.get("kernelspec", {}).get("name"):
        info = papermill.inspect_notebook(str(notebook))
    else:  # papermill needs a kernel to pick the language; these are Python notebooks
        nb.metadata["kernelspec"] = {
            "name": "python3",
            "display_name": "Python 3",
            "language": "python",
        }
        with tempfile.TemporaryDirectory() as folder:
            copy = Path(folder) / notebook.name
            nbformat.write(nb, str(copy))
            info = papermill.inspect_notebook(str(copy))
    return {name: spec.get("default") for name, spec in info.items()}


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
        ValueError: with ``strict``, an explicit parameter the notebook does not declare.
    """
    declared = declared_parameters(notebook)
    if not declared:
        log.warning(
            "%s has no cell tagged 'parameters'; only PROFILE and OUTPUT_DIR are set", notebook.name
        )
    loaded = load_profile(profile)
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
    return values


# ---------------------------------------------------------------------------------------------
# running


def _write_record(folder: Path, record: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RUN_RECORD).write_text(json.dumps(record, indent=2, default=str) + "\n")


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

    Raises:
        papermill.PapermillExecutionError: a cell failed (the executed copy is still written).
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    notebook = resolve_notebook(name_or_path)
    root = Path(output_root).resolve()
    if executor != "inprocess":
        job_executor = make_executor(executor, root / "submitit", **(executor_options or {}))
        job = _submit(job_executor, notebook, profile, parameters, root, kernel_name, strict)
        log.info("submitted %s as %s job %s", notebook.stem, executor, job.job_id)
        return Path(job.result())

    import papermill

    name = notebook.stem
    values = notebook_parameters(notebook, profile, parameters, root, strict=strict)
    executed = root / "notebooks" / f"{name}.ipynb"
    executed.parent.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "notebook": name,
        "source": str(notebook),
        "profile": values.get("PROFILE"),
        "parameters": values,
        "executed_notebook": str(executed),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    log.info("running %s (profile %s)", name, record["profile"])
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(notebook),
            str(executed),
            parameters=values,
            kernel_name=kernel_name,
            language="python",
            log_output=log_output,
            progress_bar=False,
            cwd=str(_working_dir(notebook)),
        )
    except BaseException as error:
        record.update(
            status="failed",
            seconds=round(time.perf_counter() - start, 3),
            error=f"{type(error).__name__}: {str(error).strip()[-2000:]}",
        )
        _write_record(root / name, record)
        raise
    record.update(status="ok", seconds=round(time.perf_counter() - start, 3))
    entry = manifest_entry(name)
    if entry is not None:
        missing = [f for f in entry.outputs if not (root / name / f).exists()]
        record["missing_outputs"] = missing
        if missing:
            log.warning("%s did not write %s", name, missing)
    _write_record(root / name, record)
    log.info("finished %s in %.1f s -> %s", name, record["seconds"], executed)
    return executed


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
) -> str:
    """Body of a submitit job: run one notebook in the job's process."""
    logging.basicConfig(level=logging.INFO, format="[kc] %(message)s")
    path = run_notebook(
        notebook,
        profile=profile,
        parameters=parameters,
        output_root=output_root,
        kernel_name=kernel_name,
        strict=strict,
    )
    return str(path)


def _submit(
    executor: Any,
    notebook: Path,
    profile: str | Path,
    parameters: Mapping[str, Any] | None,
    root: Path,
    kernel_name: str,
    strict: bool,
) -> Any:
    profile_arg = str(_profile_file(profile).resolve())
    return executor.submit(
        _job, str(notebook), profile_arg, dict(parameters or {}), str(root), kernel_name, strict
    )


@dataclass
class RunResult:
    """Outcome of one notebook in :func:`run_all`."""

    name: str
    status: str  # "ok", "failed" or "skipped"
    seconds: float = 0.0
    executed: Path | None = None
    error: str = ""


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
            note = f"  {r.error.splitlines()[0][:100]}" if r.error else ""
            lines.append(f"{r.name:<{width}}  {r.status:<7}  {r.seconds:7.1f}{note}")
        if self.failures:
            lines.append(f"FAILED: {', '.join(self.failures)}")
        else:
            lines.append(f"all {sum(r.status == 'ok' for r in self.results)} notebooks ran")
        return "\n".join(lines)


def _error_text(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return f"{type(error).__name__}: {text}" if not text.startswith(type(error).__name__) else text


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
) -> RunSummary:
    """Run the manifest's notebooks in order, continuing past failures.

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

    Returns:
        A :class:`RunSummary`; planned notebooks whose file is missing are ``"skipped"``.
    """
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

    def finish(name: str, start: float, outcome: Callable[[], Any]) -> None:
        try:
            executed = Path(outcome())
            results[name] = RunResult(name, "ok", _seconds(root, name, start), executed)
        except Exception as error:  # noqa: BLE001 - report it and go on with the others
            log.error("%s failed: %s", name, _error_text(error).splitlines()[0])
            log.debug("%s", traceback.format_exc())
            results[name] = RunResult(
                name, "failed", _seconds(root, name, start), error=_error_text(error)
            )

    if executor == "slurm":  # all jobs at once, then wait for each
        job_executor = make_executor("slurm", root / "submitit", **(executor_options or {}))
        jobs = [
            (
                name,
                time.time(),
                _submit(job_executor, path, profile, parameters, root, kernel_name, False),
            )
            for name, path in todo
        ]
        for name, start, job in jobs:
            log.info("waiting for %s (slurm job %s)", name, job.job_id)
            finish(name, start, job.result)
    else:  # one after the other
        for name, path in todo:
            finish(
                name,
                time.time(),
                lambda path=path: run_notebook(
                    path,
                    profile=profile,
                    parameters=parameters,
                    output_root=root,
                    kernel_name=kernel_name,
                    log_output=log_output,
                    executor=executor,
                    executor_options=executor_options,
                    strict=False,
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
    _refuse_output_dir(parameters or {})
    explicit = set(parameters or {}) - {"PROFILE"}
    if not explicit:
        return
    declared: set[str] = set()
    for path in paths:
        declared |= set(declared_parameters(path))
    unknown = sorted(explicit - declared)
    if unknown:
        raise ValueError(f"no notebook declares {unknown}; declared parameters: {sorted(declared)}")
