"""Running notebooks as submitit jobs (``--executor local`` or ``slurm``).

Each job calls :func:`kc.runner.execute` in-process in its own Python; jobs share the on-disk
cache. :func:`make_executor` builds the submitit executor, :func:`submit` submits one notebook.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kc.notebook_params import profile_file
from kc.records import RunResult

__all__ = ["make_executor", "submit"]


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
    from kc.runner import execute  # the job runs kc.runner.execute in its own process

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


def submit(
    executor: Any,
    notebook: Path,
    profile: str | Path,
    parameters: Mapping[str, Any] | None,
    root: Path,
    kernel_name: str,
    strict: bool,
    force: bool = False,
) -> Any:
    """Submit one notebook as a job of ``executor``; returns the submitit job."""
    profile_arg = str(profile_file(profile).resolve())
    return executor.submit(
        _job, str(notebook), profile_arg, dict(parameters or {}), str(root), kernel_name, strict,
        force,
    )  # fmt: skip
