"""Length-prefixed frames over pipes: a JSON header plus a binary payload, with deadlines."""

from __future__ import annotations

import json
import os
import select
import struct
import time
from typing import Any

_PREFIX = struct.Struct("<IQ")  # json length, payload length
MAX_HEADER_BYTES = 1 << 20
_CHUNK = 1 << 20


class ChannelClosed(Exception):
    """The other end closed the pipe (or the process behind it died)."""


class ChannelTimeout(Exception):
    """The deadline passed before a frame was fully sent or received."""


def write_frame(
    fd: int, meta: dict[str, Any], payload: bytes | memoryview = b"", deadline: float | None = None
) -> None:
    """Send one frame; `deadline` is a time.monotonic() value (None = block)."""
    header = json.dumps(meta, separators=(",", ":")).encode()
    _write_all(fd, _PREFIX.pack(len(header), len(payload)) + header, deadline)
    if len(payload):
        _write_all(fd, memoryview(payload).cast("B"), deadline)


def read_frame(fd: int, deadline: float | None = None, max_payload: int | None = None) -> tuple[dict[str, Any], bytes]:
    """Receive one frame; raises ChannelClosed, ChannelTimeout or ValueError (malformed)."""
    json_len, payload_len = _PREFIX.unpack(read_exact(fd, _PREFIX.size, deadline))
    if json_len > MAX_HEADER_BYTES or (max_payload is not None and payload_len > max_payload):
        raise ValueError(f"frame too large: header {json_len} B, payload {payload_len} B")
    meta = json.loads(read_exact(fd, json_len, deadline))
    if not isinstance(meta, dict):
        raise ValueError("frame header is not a JSON object")
    return meta, bytes(read_exact(fd, payload_len, deadline)) if payload_len else b""


def read_exact(fd: int, n: int, deadline: float | None) -> bytearray:
    """Read exactly n bytes from a (blocking or non-blocking) fd."""
    buf = bytearray()
    while len(buf) < n:
        _wait(fd, select.POLLIN, deadline)
        try:
            chunk = os.read(fd, min(n - len(buf), _CHUNK))
        except BlockingIOError:
            continue
        if not chunk:
            raise ChannelClosed(f"pipe closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def _write_all(fd: int, data: bytes | memoryview, deadline: float | None) -> None:
    view = memoryview(data)
    while len(view):
        _wait(fd, select.POLLOUT, deadline)
        try:
            written = os.write(fd, view[:_CHUNK])
        except BlockingIOError:
            continue
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise ChannelClosed(str(exc)) from exc
        view = view[written:]


def _wait(fd: int, event: int, deadline: float | None) -> None:
    if deadline is None:
        return
    poller = select.poll()
    poller.register(fd, event)
    remaining = deadline - time.monotonic()
    if remaining <= 0 or not poller.poll(remaining * 1000):
        raise ChannelTimeout("deadline passed")
