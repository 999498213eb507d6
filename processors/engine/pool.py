"""LightGBM fits on worker processes: both cores busy, and no OpenMP in the parent.

Why processes: LightGBM fits on small tables are fastest single-threaded, so the
second core only helps if two fits run side by side. Threads cannot do that
(concurrent `lgb.train` calls segfaulted in lib_lightgbm; per-iteration Python
work holds the GIL), and forked children of a parent that has used OpenMP can
hang. So `FitPool` starts plain `python -m processors.engine.fit_worker`
processes (no fork), one parent thread drives each over a pipe, and the parent
itself never runs LightGBM while workers are alive.

A worker that dies (segfault, OOM kill) is not retried: its request is fitted in
the parent (one at a time), and the next request starts a new worker. A request
the worker answers with an error is fitted in the parent too, so the caller gets
the real exception. Results are identical wherever a fit runs (single-threaded,
seeded, deterministic).

`AFEP_ENGINE_WORKERS` sets the number of workers (default: the number of cores,
at most 4; 0 fits everything in the calling process).
"""

from __future__ import annotations

import atexit
import os
import queue
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np

from processors.engine.scoring import LEARNING_RATE, FitJob, FitResult, Task, fit_and_score

WORKERS_ENV = "AFEP_ENGINE_WORKERS"
MAX_DEFAULT_WORKERS = 4
BASES_PER_WORKER = 3
_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class FitRequest:
    """One model: the base matrix plus `extra` columns, trained and scored on one split."""

    extra: np.ndarray | None
    categorical: tuple[int, ...]
    train_idx: np.ndarray
    valid_idx: np.ndarray
    learning_rate: float = LEARNING_RATE
    stop_idx: np.ndarray | None = None  # set: the external protocol's model (see `scoring.FitJob`)


class _Rejected(Exception):
    """The worker answered a request with an error (the parent repeats it to raise the real one)."""


class _Worker:
    def __init__(self) -> None:
        # one thread everywhere: OpenMP for LightGBM, and OpenBLAS, whose idle threads poll
        env = dict(os.environ, OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE", OPENBLAS_NUM_THREADS="1")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_ROOT), env.get("PYTHONPATH", "")) if p)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "processors.engine.fit_worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=str(_ROOT),
            process_group=0,  # out of the terminal's group: Ctrl-C reaches `afep`, which stops the workers
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.outbox = Connection(os.dup(self.process.stdin.fileno()), readable=False)
        self.inbox = Connection(os.dup(self.process.stdout.fileno()), writable=False)
        self.process.stdin.close()
        self.process.stdout.close()
        self.ready = False
        self.bases: deque[str] = deque()

    def call(self, key: str, x: np.ndarray, y: np.ndarray, request: FitRequest, task: Task, seed: int) -> FitResult:
        """Send (base if new) and one fit; raises EOFError/OSError if the worker died."""
        if not self.ready:
            self.inbox.recv()  # ("ready", pid)
            self.ready = True
        if key not in self.bases:
            if len(self.bases) >= BASES_PER_WORKER:
                self.outbox.send(("drop", self.bases.popleft()))
            self.outbox.send(("base", key, x, y))
            self.bases.append(key)
        self.outbox.send(
            (
                "fit",
                key,
                request.extra,
                request.categorical,
                request.train_idx,
                request.valid_idx,
                task,
                seed,
                request.learning_rate,
                request.stop_idx,
            )
        )
        status, payload = self.inbox.recv()
        if status != "ok":
            raise _Rejected(str(payload))
        result: FitResult = payload
        return result

    def hang_up(self) -> None:
        """Close the pipes: the worker reads EOF and exits."""
        for conn in (self.outbox, self.inbox):
            if not conn.closed:
                conn.close()

    def close(self) -> None:
        self.hang_up()
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class FitPool:
    """Fits many requests on one base matrix across worker processes, in request order."""

    def __init__(self, workers: int) -> None:
        self.size = max(0, workers)
        self._workers: list[_Worker | None] = [None] * self.size
        self._local = threading.Lock()  # in-process fits: one at a time
        self._busy = threading.Lock()  # one fit_many at a time: each worker's pipe has one driver
        self.fallbacks = 0

    def start(self) -> None:
        """Start the workers now (they import LightGBM while the caller does other work)."""
        for i in range(self.size):
            self._worker(i)

    def _worker(self, i: int) -> _Worker:
        worker = self._workers[i]
        if worker is None or worker.process.poll() is not None:
            worker = self._workers[i] = _Worker()
        return worker

    def fit_many(
        self, key: str, x: np.ndarray, y: np.ndarray, requests: Sequence[FitRequest], task: Task, seed: int
    ) -> list[FitResult]:
        if not requests:
            return []
        with self._busy:
            if self.size == 0:
                return [self._fit_here(x, y, r, task, seed) for r in requests]
            return self._fit_many(key, x, y, requests, task, seed)

    def _fit_many(
        self, key: str, x: np.ndarray, y: np.ndarray, requests: Sequence[FitRequest], task: Task, seed: int
    ) -> list[FitResult]:
        results: list[FitResult | None] = [None] * len(requests)
        errors: list[BaseException] = []
        todo: queue.SimpleQueue[int] = queue.SimpleQueue()
        for i in range(len(requests)):
            todo.put(i)

        def drive(slot: int) -> None:
            while not errors:
                try:
                    i = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    results[i] = self._fit_on(slot, key, x, y, requests[i], task, seed)
                except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                    errors.append(exc)

        slots = min(self.size, len(requests))
        threads = [threading.Thread(target=drive, args=(s,), daemon=True) for s in range(1, slots)]
        for t in threads:
            t.start()
        drive(0)
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        return [r for r in results if r is not None]

    def _fit_on(
        self, slot: int, key: str, x: np.ndarray, y: np.ndarray, request: FitRequest, task: Task, seed: int
    ) -> FitResult:
        try:
            return self._worker(slot).call(key, x, y, request, task, seed)
        except _Rejected:
            return self._fit_here(x, y, request, task, seed)
        except (EOFError, OSError):
            worker = self._workers[slot]
            self._workers[slot] = None
            if worker is not None:
                worker.close()
            self.fallbacks += 1
            return self._fit_here(x, y, request, task, seed)

    def _fit_here(self, x: np.ndarray, y: np.ndarray, request: FitRequest, task: Task, seed: int) -> FitResult:
        design = x if request.extra is None else np.hstack([x, request.extra])
        with self._local:
            job = FitJob(design, y, request.train_idx, request.valid_idx, request.categorical, request.stop_idx)
            return fit_and_score(job, task, seed, learning_rate=request.learning_rate)

    def close(self) -> None:
        workers = [w for w in self._workers if w is not None]
        self._workers = [None] * self.size
        for worker in workers:  # all hang up first, so they exit side by side
            worker.hang_up()
        for worker in workers:
            worker.close()


def default_workers() -> int:
    configured = os.environ.get(WORKERS_ENV, "").strip()
    if configured:
        try:
            return max(0, int(configured))
        except ValueError:
            raise ValueError(f"{WORKERS_ENV}={configured!r}: give a whole number of fit workers (0 = none)") from None
    cores = os.cpu_count() or 1
    return 0 if cores < 2 else min(cores, MAX_DEFAULT_WORKERS)


_shared: FitPool | None = None
_shared_lock = threading.Lock()


def shared_pool() -> FitPool:
    """The process-wide pool (created on first use, closed at exit)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = FitPool(default_workers())
            atexit.register(_shared.close)
        return _shared


def close_shared_pool() -> None:
    """Stop the process-wide pool's workers now and wait for them (if it was ever started)."""
    if _shared is not None:
        _shared.close()
