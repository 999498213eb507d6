"""Run one engine command in a subprocess and measure wall and CPU seconds.

CPU = user + system time of the subprocess and every descendant it waited for
(``getrusage(RUSAGE_CHILDREN)`` delta; the orchestrator runs one engine at a time, so the
delta belongs to that engine). OpenFE's ProcessPoolExecutor workers are joined, so
they are included.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Timed:
    wall_s: float
    cpu_s: float
    returncode: int
    timed_out: bool


def _cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_timed(cmd: list[str], *, cwd: Path, log: Path, timeout_s: float, env: dict[str, str] | None = None) -> Timed:
    full_env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", PYTHONUNBUFFERED="1", **(env or {}))
    cpu0, t0 = _cpu_children(), time.perf_counter()
    timed_out = False
    with log.open("a") as fh:
        fh.write(f"$ {' '.join(cmd)}\n")
        fh.flush()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, env=full_env, start_new_session=True)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(proc.pid, signal.SIGKILL)  # the engine's own process group only
            proc.wait()
    return Timed(time.perf_counter() - t0, _cpu_children() - cpu0, proc.returncode, timed_out)


def add(a: Timed, b: Timed) -> Timed:
    return Timed(a.wall_s + b.wall_s, a.cpu_s + b.cpu_s, b.returncode, a.timed_out or b.timed_out)
