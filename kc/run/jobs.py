"""Running notebooks as submitit jobs (``--executor local`` or ``slurm``).

Each job runs one notebook in-process (:func:`kc.run.execution.run_in_process`) in its own Python; jobs share the on-disk
cache. :func:`make_executor` builds the submitit executor, :func:`submit` submits one notebook.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from kc.run.execution import RunOptions, run_in_process
from kc.run.notebook_params import profile_file
from kc.run.records import RunResult

__all__ = ["THREAD_VARS", "check_jobs", "make_executor", "set_threads", "submit"]

#: The variables that set how many threads torch (OpenMP, MKL) computes on.
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


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


def _job(notebook: str, options: RunOptions, threads: int | None = None) -> RunResult:
    """Body of a submitit job: run one notebook in the job's process (and its kernel, which
    inherits the environment) on ``threads`` threads (``None``: the library's default)."""
    logging.basicConfig(level=logging.INFO, format="[kc] %(message)s")
    if threads is not None:
        set_threads(threads)
    return run_in_process(Path(notebook), options)


def check_jobs(jobs: Any) -> None:
    """Refuse a number of workers that is not a whole number >= 1 (``True`` included)."""
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ValueError(f"jobs must be a whole number >= 1, got {jobs!r}")


def set_threads(threads: int) -> None:
    """Compute on ``threads`` threads in this process (torch) and in the processes it starts
    (a notebook's kernel inherits :data:`THREAD_VARS`)."""
    for var in THREAD_VARS:
        os.environ[var] = str(threads)
    import torch

    torch.set_num_threads(threads)


def submit(executor: Any, notebook: Path, options: RunOptions, *, threads: int | None = None) -> Any:
    """Submit one notebook as a job of ``executor``; returns the submitit job.

    The job gets the profile as an absolute path and does not stream the notebook's output;
    with ``threads`` its kernel computes on that many threads (``kc run --all -j N``: one each).
    """
    profile = str(profile_file(options.profile).resolve())
    parameters = dict(options.parameters or {})
    job_options = replace(options, profile=profile, parameters=parameters, log_output=False)
    return executor.submit(_job, str(notebook), job_options, threads)
