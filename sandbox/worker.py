"""The warm worker (`python -m sandbox.worker`): imports Polars once, caches data tables and
forks one confined process per run. It never executes feature code itself."""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import json
import os
import resource
import select
import signal
import sys
import tempfile
import time
from collections import OrderedDict
from typing import Any

import numpy as np
import polars as pl  # noqa: F401 - imported once here so every forked run starts warm
import pyarrow as pa

from sandbox.confinement import RunLimits, confine_process, die_with_parent, enter_network_namespace
from sandbox.execution import FeatureFailed, compute_feature
from sandbox.namespace import disarm_file_methods
from sandbox.protocol import ChannelClosed, read_frame, write_frame

# Run processes see no files at all (an empty chroot) and run as `nobody`, so whatever
# feature code or Polars imports or loads lazily is imported here first (and `_warm_up`).
WARM_IMPORTS = (
    "polars.selectors", "numpy.linalg", "numpy.random", "numpy.fft", "numpy.ma", "math", "datetime",
    "re", "zoneinfo", "json", "decimal", "fractions", "statistics", "secrets", "hmac", "encodings.idna",
    "unicodedata", "traceback", "linecache", "tokenize",
)  # fmt: skip
_CACHE_SIZE = 4
_STDERR_TAIL = 4096
_KILL_GRACE_S = 2.0


def main() -> None:
    """Serve frames on stdin/stdout until EOF or {"op": "exit"}."""
    proto_in, proto_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(2, 1)  # stray prints must never corrupt the protocol stream
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent, which stops this worker
    die_with_parent()
    _warm_up()
    net_problem = enter_network_namespace() if "--netns" in sys.argv else "network isolation disabled"
    hello = {"op": "hello", "pid": os.getpid(), "network_isolated": net_problem is None, "problems": []}
    hello["problems"] = ([net_problem] if net_problem else []) + _probe_confinement()
    write_frame(proto_out, hello)
    cache: OrderedDict[str, Any] = OrderedDict()
    while True:
        try:
            meta, payload = read_frame(proto_in)
        except ChannelClosed:
            return
        if meta["op"] == "exit":
            return
        if meta["op"] == "put":
            cache[meta["key"]] = _decode_blob(meta, payload)
            while len(cache) > _CACHE_SIZE:
                cache.popitem(last=False)
            write_frame(proto_out, {"op": "stored"})
        elif meta["op"] == "run":
            _serve_run(proto_out, meta, cache)


def _warm_up() -> None:
    """Import, once, what feature code reaches lazily, before any run is forked.

    Only imports: computing anything with Polars here would start its thread pool, and a
    process forked from one with running threads deadlocks on the pool's first use.
    """
    for name in WARM_IMPORTS:
        importlib.import_module(name)
    tempfile.gettempdir()  # the run process makes its empty root there; find it once
    with contextlib.suppress(OSError):
        ctypes.CDLL("libgcc_s.so.1")  # glibc loads it lazily when a thread exits


def _decode_blob(meta: dict[str, Any], payload: bytes) -> Any:
    if meta["kind"] == "table":
        return pa.ipc.open_stream(pa.py_buffer(payload)).read_all()
    return np.frombuffer(payload, dtype=np.bool_).reshape(meta["shape"])


def _serve_run(proto_out: int, meta: dict[str, Any], cache: OrderedDict[str, Any]) -> None:
    missing = [k for k in (meta["table"], meta["masks"]) if k is not None and k not in cache]
    if missing:
        write_frame(proto_out, {"op": "missing", "keys": missing})
        return
    for key in (meta["table"], meta["masks"]):
        if key is not None:
            cache.move_to_end(key)
    table, masks = cache[meta["table"]], cache.get(meta["masks"]) if meta["masks"] else None
    limits = RunLimits(**meta["limits"])
    codes = meta["codes"]
    answered: list[tuple[dict[str, Any], bytes | None] | None] = [None] * len(codes)
    if meta.get("shared") and len(codes) > 1:
        answered = run_shared_child(codes, table, masks, limits, meta["wall_seconds"])
    results, payloads = [], []
    for code, done in zip(codes, answered, strict=True):
        # one process per code, or after a shared process died: each unanswered code alone,
        # so that a crash or a timeout is reported for the code that caused it
        result, values = done if done is not None else run_in_child(code, table, masks, limits, meta["wall_seconds"])
        results.append(result)
        if values is not None:
            payloads.append(values)
    write_frame(proto_out, {"op": "results", "results": results}, b"".join(payloads))


def run_shared_child(
    codes: list[str], table: pa.Table, masks: np.ndarray | None, limits: RunLimits, wall_seconds: float
) -> list[tuple[dict[str, Any], bytes | None] | None]:
    """Run several codes one after another in ONE confined process (for code AFEP generated
    itself). Each answered code gets its result; None marks codes the process never answered
    (it crashed, hit a limit or the deadline), which the caller reruns one process each."""
    n = len(codes)
    n_fits = 1 if masks is None else masks.shape[0]
    expected = table.num_rows * n_fits * 8
    shared = RunLimits(limits.cpu_seconds * n, limits.memory_bytes, limits.file_bytes)
    pid, result_r, err_r, start = _fork(codes, table, masks, shared)
    out, *_ = _collect(
        pid, result_r, err_r, start + wall_seconds, (expected + 4096) * n, slide=(wall_seconds, expected)
    )
    answered: list[tuple[dict[str, Any], bytes | None] | None] = [None] * n
    offset = 0
    for i in range(n):
        try:
            header, data, offset = _next_frame(out, offset, expected)
        except ValueError:
            break
        duration = float(header.pop("duration_s", 0.0))
        if header.get("ok") is True:
            answered[i] = ({"ok": True, "reason": None, "violation": None, "duration_s": duration}, data)
        elif header.get("violation") in {"policy", "error", "output"}:  # the code's own failure, not the process's
            result, _ = _fail(header["violation"], str(header.get("reason") or "feature failed")[:1000])
            answered[i] = ({**result, "duration_s": duration}, None)
        else:
            break  # e.g. MemoryError: rerun alone to report it with the right limits
    return answered


def run_in_child(
    code: str, table: pa.Table, masks: np.ndarray | None, limits: RunLimits, wall_seconds: float
) -> tuple[dict[str, Any], bytes | None]:
    """Fork a confined process for one code; returns (result header, float64 bytes or None)."""
    n_fits = 1 if masks is None else masks.shape[0]
    expected = table.num_rows * n_fits * 8
    pid, result_r, err_r, start = _fork(code, table, masks, limits)
    out, err, status, usage, timed_out = _collect(pid, result_r, err_r, start + wall_seconds, expected)
    duration = time.monotonic() - start
    result, values = _classify(out, err, status, usage, timed_out, limits, wall_seconds, expected)
    result["duration_s"] = duration
    return result, values


def _fork(
    codes: str | list[str], table: pa.Table, masks: np.ndarray | None, limits: RunLimits
) -> tuple[int, int, int, float]:
    """Fork the confined run process; returns (pid, result pipe, stderr pipe, start time)."""
    result_r, result_w = os.pipe()
    err_r, err_w = os.pipe()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        _child(codes, table, masks, limits, result_w, err_w)
    os.close(result_w)
    os.close(err_w)
    return pid, result_r, err_r, start


def _child(
    codes: str | list[str], table: pa.Table, masks: np.ndarray | None, limits: RunLimits, result_w: int, err_w: int
) -> None:
    status = 70
    try:
        os.setpgid(0, 0)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(err_w, 1)
        os.dup2(err_w, 2)
        os.closerange(3, result_w)
        os.closerange(result_w + 1, max(65536, resource.getrlimit(resource.RLIMIT_NOFILE)[0]))
        disarm_file_methods()
        for problem in confine_process(limits):
            print(f"sandbox: {problem}", file=sys.stderr)
        for code in [codes] if isinstance(codes, str) else codes:
            started = time.monotonic()
            try:
                values = compute_feature(code, table, masks)
                header: dict[str, object] = {"ok": True}
                data = values.tobytes()
            except FeatureFailed as failed:
                header = {"ok": False, "violation": failed.violation, "reason": failed.reason}
                data = b""
            if not isinstance(codes, str):
                header["duration_s"] = time.monotonic() - started
            write_frame(result_w, header, data)
        status = 0
    except BaseException as exc:  # noqa: BLE001 - the child must never return into the worker loop
        with contextlib.suppress(BaseException):
            print(f"sandbox child failed: {type(exc).__name__}: {exc}", file=sys.stderr)
    finally:
        os._exit(status)


def _collect(
    pid: int, result_r: int, err_r: int, deadline: float, expected: int, slide: tuple[float, int] | None = None
) -> tuple[bytearray, bytearray, int, Any, bool]:
    """Read the child's pipes until it exits or the deadline passes (then kill it).

    `slide=(seconds, frame_bytes)`: a shared child writes one frame per code; each
    complete frame moves the deadline to `seconds` from then, so every code gets the
    per-code wall-clock limit."""
    parsed = 0
    pidfd = os.pidfd_open(pid)
    out, err = bytearray(), bytearray()
    poller = select.poll()
    for fd in (result_r, err_r, pidfd):
        poller.register(fd, select.POLLIN)
    open_fds, exited, timed_out, flooded = {result_r, err_r}, False, False, False
    while not (exited or flooded):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = True
            break
        for fd, _ in poller.poll(remaining * 1000):
            if fd == pidfd:
                exited = True
                continue
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                poller.unregister(fd)
                open_fds.discard(fd)
            elif fd == result_r:
                out += chunk
                flooded = len(out) > expected + (1 << 21)  # more than any valid answer
                while slide is not None:
                    try:
                        parsed = _next_frame(out, parsed, slide[1])[2]
                    except ValueError:
                        break
                    deadline = time.monotonic() + slide[0]
            else:
                err = (err + chunk)[-_STDERR_TAIL:]
    _kill_group(pid)
    _, status, usage = os.wait4(pid, 0)
    for fd in open_fds:  # drain whatever a dying child left behind
        os.set_blocking(fd, False)
        try:
            while chunk := os.read(fd, 1 << 20):
                if fd == result_r and len(out) <= expected + (1 << 21):
                    out += chunk
                elif fd == err_r:
                    err = (err + chunk)[-_STDERR_TAIL:]
        except BlockingIOError:
            pass
    for fd in (result_r, err_r, pidfd):
        os.close(fd)
    return out, err, status, usage, timed_out


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGKILL)


def _classify(
    out: bytearray, err: bytearray, status: int, usage: Any, timed_out: bool,
    limits: RunLimits, wall_seconds: float, expected: int,
) -> tuple[dict[str, Any], bytes | None]:  # fmt: skip
    stderr = err.decode(errors="replace")
    if timed_out:
        return _fail("timeout", f"timed out after {wall_seconds:.1f} s wall clock")
    cpu_used = usage.ru_utime + usage.ru_stime
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu_used >= limits.cpu_seconds):
            return _fail("cpu", f"CPU limit {limits.cpu_seconds:.1f} s exceeded ({cpu_used:.1f} s used)")
        if "memory allocation of" in stderr or "MemoryError" in stderr:
            return _fail("memory", f"memory limit {_gib(limits.memory_bytes)} exceeded (allocation failed)")
        return _fail("crash", f"run process killed by {signal.Signals(sig).name}{_tail(stderr)}")
    try:
        header, data = _parse_result(out, expected)
    except ValueError as exc:
        code = os.WEXITSTATUS(status)
        return _fail("crash", f"run process exited with status {code} without a valid result ({exc}){_tail(stderr)}")
    if header.get("ok") is True:
        return {"ok": True, "reason": None, "violation": None}, data
    violation = header.get("violation")
    violation = violation if violation in {"policy", "memory", "error", "output"} else "error"
    reason = str(header.get("reason") or "feature failed")[:1000]
    if violation == "memory":
        reason = f"memory limit {_gib(limits.memory_bytes)} exceeded ({reason})"
    return _fail(violation, reason)


def _next_frame(out: bytearray, offset: int, expected: int) -> tuple[dict[str, Any], bytes, int]:
    """The frame starting at `offset` of a run process's output, and where the next one starts."""
    if len(out) < offset + 12:
        raise ValueError("no result")
    json_len = int.from_bytes(out[offset : offset + 4], "little")
    payload_len = int.from_bytes(out[offset + 4 : offset + 12], "little")
    end = offset + 12 + json_len + payload_len
    if len(out) < end:
        raise ValueError("truncated result")
    header = json.loads(out[offset + 12 : offset + 12 + json_len])
    if not isinstance(header, dict) or (header.get("ok") is True and payload_len != expected):
        raise ValueError("malformed result")
    return header, bytes(out[offset + 12 + json_len : end]), end


def _parse_result(out: bytearray, expected: int) -> tuple[dict[str, Any], bytes]:
    header, data, end = _next_frame(out, 0, expected)
    if end != len(out):
        raise ValueError("truncated or oversized result")
    return header, data


def _fail(violation: str, reason: str) -> tuple[dict[str, Any], None]:
    return {"ok": False, "violation": violation, "reason": reason}, None


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"


def _tail(stderr: str) -> str:
    last = [line for line in stderr.strip().splitlines() if line.strip()][-1:] if stderr.strip() else []
    return f": {last[0][:300]}" if last else ""


def _probe_confinement() -> list[str]:
    """Fork once with the full confinement to learn (and log) what this machine allows."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            problems = confine_process(RunLimits(cpu_seconds=5, memory_bytes=2**30, file_bytes=2**20))
            os.write(w, json.dumps(problems).encode())
        finally:
            os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    try:
        return [str(p) for p in json.loads(data)]
    except ValueError:
        return ["confinement probe failed"]


if __name__ == "__main__":
    main()
    # every answer is written with os.write: nothing is buffered, so skip the teardown of
    # Polars and pyarrow that the parent would otherwise wait for when it closes the sandbox
    os._exit(0)
