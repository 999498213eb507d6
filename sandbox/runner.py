"""Parent side: `Sandbox` keeps one warm worker process and talks Arrow IPC to it."""

from __future__ import annotations

import hashlib
import logging
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from sandbox.limits import SandboxLimits, SandboxResult, Violation
from sandbox.policy import check_code
from sandbox.protocol import ChannelClosed, ChannelTimeout, read_frame, write_frame

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
_STARTUP_TIMEOUT_S = 60.0
_BACKSTOP_GRACE_S = 5.0  # on top of the worker's own per-run wall-clock kill
_TRANSFER_TIMEOUT_S = 120.0
DEFAULT_LIMITS = SandboxLimits()
_RUN_LIMIT_FIELDS = ("cpu_seconds", "memory_bytes", "file_bytes")


class BadReply(ValueError):
    """The worker answered something that is not a results frame for this request."""


@dataclass(frozen=True)
class Isolation:
    """What the worker could actually enforce on this machine."""

    network_isolated: bool
    problems: tuple[str, ...]


class _Worker:
    """One worker process and its pipes."""

    def __init__(self, limits: SandboxLimits, network_isolation: bool) -> None:
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "LC_ALL", "HOME", "TMPDIR")}
        env |= {
            "PYTHONPATH": str(REPO_ROOT), "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0",
            "POLARS_MAX_THREADS": str(limits.threads), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "MALLOC_ARENA_MAX": "2",
            "ARROW_DEFAULT_MEMORY_POOL": "system",  # mimalloc reserves 1 GiB arenas under RLIMIT_AS
        }  # fmt: skip
        argv = [sys.executable, "-m", "sandbox.worker"] + (["--netns"] if network_isolation else [])
        self.process = subprocess.Popen(  # in a group of its own: Ctrl-C reaches `afep`, which stops the worker
            argv, cwd=REPO_ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, process_group=0
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.send_fd, self.recv_fd = self.process.stdin.fileno(), self.process.stdout.fileno()
        os.set_blocking(self.send_fd, False)
        os.set_blocking(self.recv_fd, False)
        self._isolation: Isolation | None = None

    @property
    def isolation(self) -> Isolation:
        """What the worker enforces, from its hello (waits for it the first time)."""
        if self._isolation is None:
            hello, _ = read_frame(self.recv_fd, time.monotonic() + _STARTUP_TIMEOUT_S)
            self._isolation = Isolation(bool(hello["network_isolated"]), tuple(hello["problems"]))
            for problem in self._isolation.problems:
                logger.warning("sandbox isolation degraded: %s", problem)
        return self._isolation

    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass


class Sandbox:
    """Runs generated feature code in confined, forked processes of a warm worker.

    `run()` returns a SandboxResult for anything the code does; it raises only for invalid
    arguments (wrong mask length) or if the worker cannot be started at all.
    """

    def __init__(self, limits: SandboxLimits = DEFAULT_LIMITS, *, network_isolation: bool = True) -> None:
        self.limits = limits
        self.network_isolation = network_isolation
        self._worker: _Worker | None = None
        self._lock = threading.Lock()
        self._table: pa.Table | None = None
        self._table_key = ""
        self._table_ipc = b""

    # lifecycle -------------------------------------------------------------------------
    def start(self) -> Isolation:
        """Start the warm worker now (otherwise the first run does it) and wait until it is ready."""
        with self._lock:
            return self._ensure_worker().isolation

    def spawn(self) -> None:
        """Start the warm worker without waiting for it: it imports Polars while the caller goes on.

        Call it from a long-lived thread: the worker is killed when the thread that started
        it exits (PR_SET_PDEATHSIG follows the creating thread, not the process).
        """
        with self._lock:
            if self._worker is None or not self._worker.alive():
                self._worker = None
                self._worker = _Worker(self.limits, self.network_isolation)

    @property
    def worker_pid(self) -> int | None:
        return self._worker.process.pid if self._worker and self._worker.alive() else None

    def close(self) -> None:
        with self._lock:
            worker, self._worker = self._worker, None
            if worker is None:
                return
            try:
                write_frame(worker.send_fd, {"op": "exit"}, deadline=time.monotonic() + 1)
                worker.process.wait(timeout=2)
            except (ChannelClosed, ChannelTimeout, subprocess.TimeoutExpired):
                pass
            worker.kill()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # running ---------------------------------------------------------------------------
    def run(self, code: str, data: pa.Table, fits: Sequence[npt.NDArray[np.bool_]] | None = None) -> SandboxResult:
        """values[:, i] = feature(df=data, ref=data.filter(fits[i])); fits=None means ref=data."""
        return self.run_batch([code], data, fits)[0]

    def run_batch(
        self,
        codes: Sequence[str],
        data: pa.Table,
        fits: Sequence[npt.NDArray[np.bool_]] | None = None,
        *,
        shared_process: bool = False,
    ) -> list[SandboxResult]:
        """Run several codes over one table in one round trip; each gets its own process.

        `shared_process=True` runs them one after another in ONE confined process instead
        (same limits per code, same checks), saving a fork per code (about 10 ms). Only
        for code that cannot attack its neighbours, i.e. code AFEP generated itself from a
        declarative spec. If that process dies or times out, every code it had not answered
        runs again alone, so a failure is still reported for the code that caused it.
        """
        results: list[SandboxResult | None] = [None] * len(codes)
        todo: list[int] = []
        for i, code in enumerate(codes):
            violations = check_code(code)
            if violations:
                more = f" (+{len(violations) - 1} more)" if len(violations) > 1 else ""
                results[i] = SandboxResult.failure("policy", violations[0] + more)
            else:
                todo.append(i)
        if todo:
            executed = self._execute([codes[i] for i in todo], data, fits, shared=shared_process)
            for i, result in zip(todo, executed, strict=True):
                results[i] = result
        return [r for r in results if r is not None]

    def _execute(
        self,
        codes: Sequence[str],
        data: pa.Table,
        fits: Sequence[npt.NDArray[np.bool_]] | None,
        *,
        shared: bool = False,
    ) -> list[SandboxResult]:
        """Run codes WITHOUT the static policy check (the runtime layers still apply)."""
        masks = _stack_masks(fits, data.num_rows)
        n_fits = 1 if masks is None else masks.shape[0]
        with self._lock:
            table_key = self._table_identity(data)
            masks_key = None if masks is None else _digest(masks.tobytes(), str(masks.shape))
            request = {
                "op": "run", "codes": list(codes), "table": table_key, "masks": masks_key, "shared": shared,
                "wall_seconds": self.limits.wall_seconds,
                "limits": {k: v for k, v in asdict(self.limits).items() if k in _RUN_LIMIT_FIELDS},
            }  # fmt: skip
            started = time.monotonic()
            try:
                worker = self._ensure_worker()
                reply, payload = self._request(worker, request, len(codes) * (2 if shared else 1))
                if reply.get("op") == "missing":
                    for key in _missing_keys(reply, {table_key, masks_key}):
                        self._put(worker, key, masks)
                    reply, payload = self._request(worker, request, len(codes) * (2 if shared else 1))
                return _unpack(reply, payload, len(codes), data.num_rows, n_fits)
            except (ChannelClosed, ChannelTimeout, ValueError, KeyError, TypeError, OSError) as exc:
                # a killed worker, a garbled or partial reply: every code of the request fails, never the caller
                return [self._worker_failure(exc, time.monotonic() - started)] * len(codes)

    # worker plumbing -------------------------------------------------------------------
    def _ensure_worker(self) -> _Worker:
        if self._worker is not None and not self._worker.alive():
            logger.warning(
                "sandbox worker %s died (exit %s); replacing it",
                self._worker.process.pid,
                self._worker.process.returncode,
            )
            self._worker.kill()
            self._worker = None
        if self._worker is None:
            self._worker = _Worker(self.limits, self.network_isolation)
        self._worker.isolation  # noqa: B018 - the hello must have arrived before any request
        return self._worker

    def _request(self, worker: _Worker, request: dict[str, Any], n_codes: int) -> tuple[dict[str, Any], bytes]:
        write_frame(worker.send_fd, request, deadline=time.monotonic() + _TRANSFER_TIMEOUT_S)
        budget = n_codes * (self.limits.wall_seconds + 2.0) + _BACKSTOP_GRACE_S
        return read_frame(worker.recv_fd, deadline=time.monotonic() + budget)

    def _put(self, worker: _Worker, key: str, masks: npt.NDArray[np.bool_] | None) -> None:
        if key == self._table_key:
            meta: dict[str, Any] = {"op": "put", "key": key, "kind": "table"}
            payload = self._table_ipc
        else:
            assert masks is not None
            meta = {"op": "put", "key": key, "kind": "masks", "shape": list(masks.shape)}
            payload = masks.tobytes()
        deadline = time.monotonic() + _TRANSFER_TIMEOUT_S
        write_frame(worker.send_fd, meta, payload, deadline)
        read_frame(worker.recv_fd, deadline)

    def _table_identity(self, data: pa.Table) -> str:
        """Content id of `data` (cached by object identity); keeps its IPC bytes for sending."""
        if data is not self._table:
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, data.schema) as writer:
                writer.write_table(data.combine_chunks())
            self._table_ipc = sink.getvalue().to_pybytes()
            self._table_key = _digest(self._table_ipc, "table")
            self._table = data
        return self._table_key

    def _worker_failure(self, exc: Exception, duration: float) -> SandboxResult:
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.kill()
        violation: Violation = "timeout" if isinstance(exc, ChannelTimeout) else "crash"
        if violation == "timeout":
            reason = f"timed out after {duration:.1f} s wall clock (worker unresponsive; it has been replaced)"
        else:
            reason = f"sandbox worker failed ({type(exc).__name__}: {exc}); it has been replaced"
        logger.warning("%s", reason)
        return SandboxResult.failure(violation, reason, duration)


def _stack_masks(fits: Sequence[npt.NDArray[np.bool_]] | None, n_rows: int) -> npt.NDArray[np.bool_] | None:
    if fits is None:
        return None
    masks = [np.asarray(m) for m in fits]
    for i, mask in enumerate(masks):
        if mask.shape != (n_rows,):
            raise ValueError(f"fits[{i}] has shape {mask.shape}; expected ({n_rows},) (one flag per row of data)")
    if not masks:
        raise ValueError("fits is empty: pass None for one fit on all rows")
    return np.ascontiguousarray(np.stack(masks).astype(np.bool_))


def _digest(data: bytes, salt: str) -> str:
    return hashlib.blake2b(data, digest_size=16, person=salt.encode()[:16]).hexdigest()


def _missing_keys(reply: dict[str, Any], known: set[str | None]) -> list[str]:
    keys = reply.get("keys")
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) and k in known for k in keys):
        raise BadReply(f"the worker asked for unknown data {str(keys)[:80]}")
    return keys


_VIOLATIONS = frozenset({"policy", "timeout", "memory", "cpu", "error", "output", "crash"})


def _unpack(reply: dict[str, Any], payload: bytes, n_codes: int, n_rows: int, n_fits: int) -> list[SandboxResult]:
    """The results of a reply, one per code; raises BadReply for anything else."""
    items = reply.get("results")
    if reply.get("op") != "results" or not isinstance(items, list):
        raise BadReply(f"the worker replied {str(reply.get('op'))[:40]!r} without results")
    if len(items) != n_codes:
        raise BadReply(f"the worker answered {len(items)} of {n_codes} codes")
    size = n_rows * n_fits * 8
    if len(payload) != size * sum(1 for item in items if isinstance(item, dict) and item.get("ok") is True):
        raise BadReply(f"the worker sent {len(payload)} bytes of values; expected a multiple of {size}")
    results: list[SandboxResult] = []
    offset = 0
    for item in items:
        if not isinstance(item, dict):
            raise BadReply("a result is not an object")
        if item.get("ok") is True:
            values = np.frombuffer(payload, dtype=np.float64, count=n_rows * n_fits, offset=offset)
            results.append(SandboxResult(True, None, values.reshape(n_rows, n_fits).copy(), _seconds(item), None))
            offset += size
        else:
            violation: Violation = item["violation"] if item.get("violation") in _VIOLATIONS else "crash"
            reason = str(item.get("reason") or "the sandbox gave no reason")[:1000]
            results.append(SandboxResult.failure(violation, reason, _seconds(item)))
    return results


def _seconds(item: dict[str, Any]) -> float:
    value = item.get("duration_s")
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else 0.0
