"""Executing one notebook in this process with papermill.

:func:`run_in_process` resolves the notebook's parameters (:mod:`kc.run.notebook_params`), skips it
when its run key (:mod:`kc.run.runkey`) matches its last successful run (:mod:`kc.run.records`), and
otherwise runs it with papermill in the repository root (:func:`kc.run.manifest.working_dir`).

Nothing good is overwritten: papermill writes into a temporary file beside the executed copy,
which is moved into place only when the notebook finished; a failed or interrupted run leaves its
partial copy as ``<name>.failed.ipynb`` beside the last good one. The kernel's own stderr goes to
``<output_root>/<name>/kernel.log``; the cache's warnings (``$KC_WARNINGS_FILE``) go into the run
record.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kc.engine import phases
from kc.run import records, results
from kc.run.manifest import manifest_entry, working_dir
from kc.run.notebook_params import notebook_parameters
from kc.run.records import KERNEL_LOG, RUN_RECORD

__all__ = ["NotebookInterrupted", "RunOptions", "run_in_process"]

log = logging.getLogger("kc.run.runner")  # one logger for running notebooks (kc.run.runner and its parts)


class NotebookInterrupted(KeyboardInterrupt):
    """Ctrl-C while a notebook ran; says where its partial copy was kept."""

    def __init__(self, name: str, failed_copy: Path | None) -> None:
        super().__init__(name)
        self.name = name
        self.failed_copy = failed_copy


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


class _DeadKernelTasks(logging.Filter):
    """Drops asyncio's "Task exception was never retrieved" reports of a ``DeadKernelError``.

    On Ctrl-C the kernel is shut down while nbclient's cell task still waits on it; that task
    then ends with ``DeadKernelError`` and asyncio prints its traceback when the task is
    collected, after ``kc`` has already said that the run was interrupted."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return type(error).__name__ != "DeadKernelError"


def _quiet_dead_kernel_tasks() -> None:
    """Install :class:`_DeadKernelTasks` on the ``asyncio`` logger (once)."""
    logger = logging.getLogger("asyncio")
    if not any(isinstance(f, _DeadKernelTasks) for f in logger.filters):
        logger.addFilter(_DeadKernelTasks())


@contextlib.contextmanager
def _collect_warnings(folder: Path) -> Iterator[Path]:
    """Point ``$KC_WARNINGS_FILE`` (read by :mod:`kc.engine.cache`, inherited by the kernel) to a fresh
    file in ``folder`` for the duration."""
    from kc.engine.cache import WARNINGS_ENV

    path = folder / ".warnings"
    path.unlink(missing_ok=True)
    with phases.environ({WARNINGS_ENV: str(path)}):
        yield path


def _read_lines(path: Path) -> list[str]:
    try:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
    except OSError:
        return []
    path.unlink(missing_ok=True)
    return lines


@dataclass(frozen=True)
class RunOptions:
    """How to run a notebook (the arguments of :func:`kc.run.runner.execute`).

    Attributes:
        root: absolute root of the outputs.
        profile: profile name or YAML path.
        parameters: explicit values, applied after the profile.
        kernel_name: the Jupyter kernel.
        log_output: stream the notebook's output to the log while it runs.
        strict: refuse explicit parameters the notebook does not declare.
        force: run even when the notebook is up to date.
    """

    root: Path
    profile: str | Path = "small"
    parameters: Mapping[str, Any] | None = None
    kernel_name: str = "python3"
    log_output: bool = False
    strict: bool = True
    force: bool = False


def _publishable(executed: Path, root: Path) -> None:
    """Rewrite an executed copy in place: each figure kept once (in its file) and no absolute
    path of the output root or the repository (:mod:`kc.run.results`)."""
    nb = json.loads(results.portable_text(executed.read_text(encoding="utf-8"), root))
    results.pack_figures(nb, root)
    executed.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def _portable_outputs(out: Path, root: Path) -> None:
    """The notebook's text outputs (``verdicts.json`` records OUTPUT_DIR) without absolute
    paths of the output root or the repository, as its executed copy."""
    for path in sorted(out.iterdir()):
        if path.suffix not in (".json", ".md", ".csv") or path.name == RUN_RECORD:
            continue
        text = path.read_text(encoding="utf-8")
        portable = results.portable_text(text, root)
        if portable != text:
            path.write_text(portable, encoding="utf-8")


def run_in_process(notebook: Path, options: RunOptions) -> records.RunResult:
    """Run one notebook in this process, or skip it when it is up to date.

    Skipped when :func:`kc.run.records.up_to_date` says so and not ``options.force``.

    Returns:
        A :class:`~kc.run.records.RunResult`, ``"ok"`` or ``"skipped"``.

    Raises:
        papermill.PapermillExecutionError: a cell failed (the partial copy is kept).
        NotebookInterrupted: Ctrl-C (the partial copy is kept the same way).
    """
    import papermill

    from kc.engine.cache import file_mode
    from kc.run import runkey

    root, name = options.root, notebook.stem
    values = notebook_parameters(
        notebook, options.profile, options.parameters, root, strict=options.strict
    )
    key = runkey.run_key(notebook, values)
    folder, out = root / "notebooks", root / name
    executed, failed = folder / f"{name}.ipynb", folder / f"{name}.failed.ipynb"
    fresh, why = records.up_to_date(root, name, key, values)
    if fresh and not options.force:
        log.debug("%s: skipped: %s", name, why)
        return records.RunResult(name, "skipped", 0.0, executed, note=why)
    folder.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "notebook": name,
        "source": results.portable_text(str(notebook), root),
        "profile": values.get("PROFILE"),
        "parameters": {k: results.portable_text(v, root) if k == "OUTPUT_DIR" else v
                       for k, v in values.items()},
        "executed_notebook": f"notebooks/{name}.ipynb",
        "started": records.now(),
        "load_at_start": round(os.getloadavg()[0], 2),
        **results.provenance(),
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
    with _collect_warnings(out) as warnings_file, phases.notebook(name):
        try:
            papermill.execute_notebook(
                str(notebook),
                str(tmp),
                parameters=values,
                kernel_name=options.kernel_name,
                language="python",
                log_output=options.log_output,
                progress_bar=False,
                cwd=str(working_dir(notebook)),
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
                finished=records.now(),
                seconds=round(time.perf_counter() - start, 3),
                load=round(os.getloadavg()[0], 2),
                error=f"{type(error).__name__}: {str(error).strip()[-2000:]}",
                failed_notebook=f"notebooks/{kept.name}" if kept else None,
                warnings=_read_lines(warnings_file),
            )
            records.write_record(out, record)
            if interrupted:
                _quiet_dead_kernel_tasks()
                raise NotebookInterrupted(name, kept) from None
            if kept is not None:
                log.error("%s failed; its executed copy (with the traceback) is %s", name, kept)
            raise
    _publishable(tmp, root)
    _portable_outputs(out, root)
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
        finished=records.now(),
        seconds=round(time.perf_counter() - start, 3),
        load=round(os.getloadavg()[0], 2),
        outputs=written,
        warnings=warnings,
    )
    entry = manifest_entry(name)
    if entry is not None:
        missing = [f for f in entry.outputs if not (out / f).exists()]
        record["missing_outputs"] = missing
        if missing:
            log.warning("%s did not write %s", name, missing)
    records.write_record(out, record)
    log.info("finished %s in %.1f s -> %s", name, record["seconds"], executed)
    return records.RunResult(name, "ok", record["seconds"], executed, warnings=warnings)
