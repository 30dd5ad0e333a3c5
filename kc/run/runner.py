"""Running the notebooks: one (:func:`run_notebook`, :func:`execute`) or all (:func:`run_all`).

:func:`run_notebook` runs one notebook:

1. the profile (``kc/run/profiles/<profile>.yaml`` or a path to a YAML file) is loaded;
2. only the parameters the notebook's ``parameters`` cell declares are kept;
3. ``PROFILE`` and ``OUTPUT_DIR`` (absolute, from the output root; it cannot be given
   explicitly) are added, then explicit ``parameters`` override (:mod:`kc.run.notebook_params`);
4. papermill executes it with the working directory set to the repository root (the folder
   holding ``pyproject.toml`` above the notebook; the notebook's own folder for notebooks outside
   the repository), so relative paths such as ``outputs`` or ``data/cache`` mean the same thing
   as in a shell at the root (:mod:`kc.run.execution`);
5. the executed notebook goes to ``<output_root>/notebooks/<name>.ipynb`` and a record of the run
   (profile, parameters, wall time, status, run key, cache warnings) to
   ``<output_root>/<name>/run.json`` (:mod:`kc.run.records`).

Before anything runs, the profile's names are checked against the names the notebooks declare
and every value against the notebook's default and the cheap checks of :mod:`kc.run.params`. A
notebook whose run key (:mod:`kc.run.runkey`) equals the key of its last successful run, and whose
outputs are all present, is skipped (``force=True`` re-runs it).

With ``executor="local"`` or ``"slurm"`` each notebook is one submitit job (:mod:`kc.run.jobs`) that
calls :func:`execute` in-process; jobs share the on-disk cache.

The pieces live in their own modules and are importable from here as before: the manifest
(:mod:`kc.run.manifest`), parameters and profiles (:mod:`kc.run.notebook_params`), run records, the skip
decision and the progress line (:mod:`kc.run.records`), one in-process run (:mod:`kc.run.execution`),
submitit jobs (:mod:`kc.run.jobs`).
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from kc.run import jobs as submitit_jobs
from kc.run import manifest, records, runkey
from kc.run.execution import NotebookInterrupted, RunOptions, run_in_process
from kc.run.jobs import check_jobs, make_executor
from kc.run.manifest import (
    MANIFEST,
    Notebook,
    manifest_entry,
    notebooks_dir,
    project_root,
    resolve_notebook,
)
from kc.run.notebook_params import (
    PROFILES_DIR,
    available_profiles,
    check_explicit,
    check_explicit_for,
    declared_parameters,
    known_parameters,
    load_profile,
    notebook_parameters,
    parse_value,
    read_cells,
)
from kc.run.records import (
    RUN_RECORD,
    RunResult,
    RunSummary,
    progress_line,
    read_record,
    up_to_date,
)

__all__ = [
    "EXECUTORS",
    "MANIFEST",
    "PROFILES_DIR",
    "RUN_RECORD",
    "Notebook",
    "NotebookInterrupted",
    "RunResult",
    "RunSummary",
    "available_profiles",
    "check_explicit",
    "declared_parameters",
    "execute",
    "known_parameters",
    "load_profile",
    "make_executor",
    "manifest_entry",
    "notebook_parameters",
    "notebooks_dir",
    "parse_value",
    "progress_line",
    "project_root",
    "read_cells",
    "read_record",
    "resolve_notebook",
    "run_all",
    "run_notebook",
    "up_to_date",
]

log = logging.getLogger(__name__)

EXECUTORS = ("inprocess", "local", "slurm")


def run_notebook(name_or_path: str | Path, **options: Any) -> Path:
    """Execute one notebook with a profile and return the path of the executed copy.

    Takes the arguments of :func:`execute`, which also returns whether it ran or was skipped.
    """
    return execute(name_or_path, **options).executed  # type: ignore[return-value]


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
    jobs: int = 1,
) -> RunResult:
    """Execute one notebook with a profile, unless it is unchanged since its last run.

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
        jobs: with more than 1, the cache work the notebook declares (its manifest entry's
            ``plan``) is computed first on that many single-threaded workers (local submitit
            jobs, or Slurm jobs with ``executor="slurm"``); the notebook then finds it cached.

    Returns:
        A :class:`RunResult`: ``"ok"`` or ``"skipped"`` (``note`` says why), the executed copy
        and the cache's warnings.

    Raises:
        ValueError: bad parameters (before anything runs).
        papermill.PapermillExecutionError: a cell failed (the executed copy is kept as
            ``<name>.failed.ipynb``; the last good ``<name>.ipynb`` is untouched).
        NotebookInterrupted: Ctrl-C (the partial copy is kept the same way).
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    check_jobs(jobs)
    root = Path(output_root).resolve()
    options = RunOptions(root, profile, parameters, kernel_name, log_output, strict, force)
    path = resolve_notebook(name_or_path)
    if jobs > 1:
        values = notebook_parameters(path, profile, parameters, root, strict=strict)
        ok, _ = up_to_date(root, path.stem, runkey.run_key(path, values), values)
        if force or not ok:
            prefetch([(path, values)], jobs, executor, executor_options, root)
    return _execute(path, options, executor, executor_options)


def planned_tasks(notebook: Path, values: Mapping[str, Any]) -> list[Any]:
    """The cache work ``notebook`` declares (its manifest entry's ``plan``) for its parameter
    ``values`` (the injected ones; the defaults of its parameters cell fill the rest)."""
    import importlib

    from kc.run.notebook_params import read_cells

    entry = manifest_entry(notebook.stem)
    if entry is None or not entry.plan:
        return []
    module, function = entry.plan.split(":")
    effective = runkey.effective_parameters(read_cells(notebook), values)
    return list(getattr(importlib.import_module(module), function)(effective))


def prefetch(
    notebooks: Sequence[tuple[Path, Mapping[str, Any]]],
    jobs_at_once: int,
    executor: str,
    executor_options: Mapping[str, Any] | None,
    root: Path,
) -> Any:
    """Compute the declared cache work of ``notebooks`` (``(path, parameter values)``) on
    ``jobs_at_once`` single-threaded workers; returns the :class:`kc.run.schedule.TaskSummary`."""
    from kc.run.schedule import run_tasks

    tasks = [t for path, values in notebooks for t in planned_tasks(path, values)]
    if not tasks:
        return None
    kind = "slurm" if executor == "slurm" else "local"
    job_executor = make_executor(kind, root / "submitit", **(executor_options or {}))
    summary = run_tasks(tasks, jobs=jobs_at_once, executor=job_executor)
    if summary.failed:
        log.warning("%d declared entries failed; their notebooks compute them again: %s",
                    len(summary.failed), "; ".join(summary.failed.values())[:500])  # fmt: skip
    return summary


def _execute(
    notebook: Path,
    options: RunOptions,
    executor: str,
    executor_options: Mapping[str, Any] | None,
) -> RunResult:
    """Run ``notebook`` in this process, or as one submitit job and wait for it."""
    if executor == "inprocess":
        return run_in_process(notebook, options)
    root = options.root
    notebook_parameters(  # fail here, not in the job
        notebook, options.profile, options.parameters, root, strict=options.strict
    )
    job_executor = make_executor(executor, root / "submitit", **(executor_options or {}))
    job = submitit_jobs.submit(job_executor, notebook, options)
    log.info("submitted %s as %s job %s", notebook.stem, executor, job.job_id)
    return job.result()  # type: ignore[no-any-return]


def _side_by_side(
    todo: list[tuple[str, Path]],
    fresh: Mapping[str, bool],
    jobs_at_once: int,
    expected: Mapping[str, float | None],
    job_executor: Any,
    options: RunOptions,
    finish: Callable[[str, float, Callable[[], Any]], None],
) -> None:
    """Run ``todo`` as local jobs, ``jobs_at_once`` at a time on one thread each, in order."""
    waiting = [(n, p) for n, p in todo if not fresh[n]]
    for name, path in todo:
        if fresh[name]:  # skipped in this process: nothing to wait for
            finish(name, time.time(), lambda path=path: run_in_process(path, options))
    running: dict[str, tuple[float, Any]] = {}
    begin, total, done = time.time(), len(waiting), 0
    while waiting or running:
        while waiting and len(running) < jobs_at_once:
            name, path = waiting.pop(0)
            running[name] = (time.time(), submitit_jobs.submit(job_executor, path, options, threads=1))
            rest = [expected.get(n) for n in [*running, *(n for n, _ in waiting)]]
            known = sum(x for x in rest if x is not None) / jobs_at_once
            log.info("%s", progress_line(done + len(running), total, name, time.time() - begin,
                                         known, rest.count(None)) + f" ({len(running)} running)")  # fmt: skip
        finished = [n for n, (_, job) in running.items() if job.done()]
        for name in finished:
            start, job = running.pop(name)
            finish(name, start, job.result)
            done += 1
            log.info("%s finished (%d of %d)", name, done, total)
        if not finished:
            time.sleep(0.5)


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
    jobs: int = 1,
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
        jobs: with ``"inprocess"`` or ``"local"``, how many workers: the cache work the
            notebooks to run declare (manifest ``plan``) is computed first on that many
            single-threaded local jobs (:func:`prefetch`), then the notebooks run side by side,
            as many at a time, one thread each, started in manifest order as others finish.
            Notebooks that need the same cache entry wait for each other (one computes it,
            :func:`kc.engine.cache.computing`); up-to-date notebooks are skipped at once.

    Returns:
        A :class:`RunSummary`; planned notebooks whose file is missing are ``"skipped"``.

    Raises:
        ValueError: bad parameters for any notebook (nothing has run).
        NotebookInterrupted: Ctrl-C.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    check_jobs(jobs)
    profile_name = load_profile(profile)["PROFILE"]  # fails early on a bad profile
    items = list(notebooks) if notebooks is not None else [nb.name for nb in manifest.MANIFEST]
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
    check_explicit_for(parameters, [path for _, path in todo])
    fresh: dict[str, bool] = {}
    plan: list[str] = []
    values_of: dict[str, dict[str, Any]] = {}
    for name, path in todo:  # every notebook's parameters checked before anything runs
        values = values_of[name] = notebook_parameters(path, profile, parameters, root, strict=False)
        ok, why = up_to_date(root, name, runkey.run_key(path, values), values)
        fresh[name] = ok and not force
        if not fresh[name]:
            plan.append(records.plan_line(root, name, "--force" if ok else why))
    log.info(
        "%s",
        f"{len(plan)} of {len(todo)} notebooks to run in {root}"
        + ("" if plan else " (every other one is unchanged since its last run)")
        + "".join(f"\n  {line}" for line in plan),
    )

    def finish(name: str, start: float, outcome: Callable[[], Any]) -> None:
        try:
            result = outcome()
            if isinstance(result, RunResult):
                results[name] = result
                if result.status == "skipped":
                    log.info("%s: skipped: %s", name, result.note)
            else:
                results[name] = RunResult(
                    name, "ok", records.recorded_seconds(root, name, start), Path(result)
                )
        except Exception as error:  # noqa: BLE001 - report it and go on with the others
            log.error("%s failed: %s", name, records.error_text(error).splitlines()[0])
            log.debug("%s", traceback.format_exc())
            record = read_record(root, name)
            copy = record.get("failed_notebook")
            results[name] = RunResult(
                name,
                "failed",
                records.recorded_seconds(root, name, start),
                error=records.error_text(error),
                note=f"executed copy: {copy}" if copy else "",
                warnings=list(record.get("warnings") or []),
            )

    options = RunOptions(root, profile, parameters, kernel_name, log_output, False, force)
    if jobs > 1:  # the declared cache work first, on `jobs` workers
        prefetch([(p, values_of[n]) for n, p in todo if not fresh[n]], jobs, executor,
                 executor_options, root)  # fmt: skip
    if executor == "slurm":  # all jobs at once, then wait for each
        job_executor = make_executor("slurm", root / "submitit", **(executor_options or {}))
        submitted = [
            (name, time.time(), submitit_jobs.submit(job_executor, path, options)) for name, path in todo
        ]
        for name, start, job in submitted:
            log.info("waiting for %s (slurm job %s)", name, job.job_id)
            finish(name, start, job.result)
    elif jobs > 1:  # side by side, one thread each
        expected = records.estimate(root, todo, fresh, profile_name)
        job_executor = make_executor("local", root / "submitit", **(executor_options or {}))
        _side_by_side(todo, fresh, jobs, expected, job_executor, options, finish)
    else:  # one after the other
        expected = records.estimate(root, todo, fresh, profile_name)
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
                lambda path=path: _execute(path, options, executor, executor_options),
            )
    return RunSummary([results[Path(str(item)).stem] for item in items])
