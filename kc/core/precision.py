"""The arithmetic of g's training step: fp32, or bf16 autocast where the hardware has it.

Only the forward pass of a training step (Eq. 2's loss) runs under
``torch.autocast(dtype=torch.bfloat16)``; the optimiser's weights, the stopping rule's
held-out loss, the variances of Sec. 4.2 and every evaluation stay in fp32.

Whether bf16 is *fast* depends on the machine: on a CPU it needs the ``avx512_bf16`` or
``amx_bf16`` instructions (read from ``/proc/cpuinfo``), on a GPU
``torch.cuda.is_bf16_supported()``. Elsewhere PyTorch emulates bf16: the numbers are the same
kind, the speed is lost, and :func:`check_precision` warns.

Example:
    >>> check_precision("fp32", "cpu")
    'fp32'
    >>> with autocast("fp32", "cpu"):
    ...     (torch.ones(2, 2) @ torch.ones(2, 2)).dtype
    torch.float32
"""

from __future__ import annotations

import functools
import warnings
from contextlib import AbstractContextManager
from pathlib import Path

import torch

__all__ = ["PRECISIONS", "autocast", "bf16_native", "check_precision", "cpu_bf16_flags"]

#: The arithmetic a fit of g may use for its training steps.
PRECISIONS = ("fp32", "bf16")

_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.cache
def cpu_bf16_flags(cpuinfo: str = "/proc/cpuinfo") -> tuple[str, ...]:
    """The CPU's bf16 instruction sets named in ``cpuinfo`` (empty when none or unreadable)."""
    try:
        flags = set(Path(cpuinfo).read_text().split())
    except OSError:
        return ()
    return tuple(f for f in _CPU_FLAGS if f in flags)


def bf16_native(device: str | torch.device = "cpu") -> bool:
    """Whether ``device`` computes bf16 in hardware (else PyTorch emulates it, slowly)."""
    device = torch.device(device)
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        return bool(cpu_bf16_flags())
    return False


def check_precision(precision: str, device: str | torch.device = "cpu") -> str:
    """Validate ``precision`` (one of :data:`PRECISIONS`); warn when bf16 would be emulated.

    Raises:
        ValueError: an unknown precision.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "bf16" and not bf16_native(device):
        warnings.warn(
            f"bf16 requested on {torch.device(device)}, which has no bf16 instructions "
            f"(looked for {', '.join(_CPU_FLAGS)} in /proc/cpuinfo, or a CUDA device with "
            "bf16): PyTorch emulates it, so the fit gets the numbers of bf16 without its speed",
            RuntimeWarning,
            stacklevel=2,
        )
    return precision


def autocast(precision: str, device: str | torch.device = "cpu") -> AbstractContextManager[None]:
    """The context a training step's forward pass runs in: bf16 autocast, or nothing."""
    device = torch.device(device)
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
