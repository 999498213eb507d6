"""Resource limits and the outcome of one sandboxed run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

Violation = Literal["policy", "timeout", "memory", "cpu", "error", "output", "crash"]


@dataclass(frozen=True)
class SandboxLimits:
    """Per-run limits; `memory_bytes` is address space on top of the warm worker's own."""

    cpu_seconds: float = 20
    wall_seconds: float = 30
    memory_bytes: int = 4 * 2**30
    file_bytes: int = 64 * 2**20
    threads: int = 1  # POLARS_MAX_THREADS of the worker


@dataclass(frozen=True)
class SandboxResult:
    """What one piece of feature code produced: values (n_rows, n_fits) or a one-line reason."""

    ok: bool
    reason: str | None
    values: npt.NDArray[np.float64] | None
    duration_s: float
    violation: Violation | None

    @classmethod
    def failure(cls, violation: Violation, reason: str, duration_s: float = 0.0) -> SandboxResult:
        return cls(ok=False, reason=reason, values=None, duration_s=duration_s, violation=violation)
