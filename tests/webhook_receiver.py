"""Test helpers for webhooks: a receiver on a loopback port that answers as scripted, and a job
with a selected feature recorded straight into a store (no LightGBM, no sandbox)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from commands.unit_of_work import execute
from domain import feature, job
from domain.envelope import Context


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int  # what the receiver answered


@dataclass
class Receiver:
    """Answers each POST with the next status of `script`, then `then`; records every request."""

    url: str
    script: list[int] = field(default_factory=list)
    then: int = 200
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self) -> int:
        with self.lock:
            return self.script.pop(0) if self.script else self.then

    def record(self, received: Received) -> None:
        with self.lock:
            self.requests.append(received)

    def got(self) -> list[Received]:
        with self.lock:
            return list(self.requests)


@contextlib.contextmanager
def receiver(script: list[int] | None = None, then: int = 200, port: int = 0) -> Iterator[Receiver]:
    """A stdlib HTTP server on a loopback port (a free one by default), in a thread, for the test's duration."""
    state: dict[str, Receiver] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            me = state["receiver"]
            status = me.answer()
            me.record(Received({k.lower(): v for k, v in self.headers.items()}, body, status))
            reply = b'{"ok": true}' if status < 300 else b"receiver is down for maintenance"
            self.send_response(status)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    state["receiver"] = Receiver(f"http://127.0.0.1:{server.server_address[1]}/hooks", list(script or []), then)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state["receiver"]
    finally:
        server.shutdown()
        server.server_close()


def free_url() -> str:
    """A loopback URL nothing listens on (connections are refused)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hooks"


def selected_feature(
    store: Any, *, tenant: str = "acme", project: str = "risk", job_id: str = "j1", feature_id: str = "f1"
) -> None:
    """Record a job of `tenant`'s `project` with one selected feature `feature_id` (named `dti_<id>`)."""
    at = datetime.now(UTC)
    ctx = Context(at=at, actor="agent:test", tenant_id=tenant, correlation_id=job_id)
    commands = [
        job.RequestJob(job_id, project, "credit.csv", None, "Status", "auto", 60.0, 0, 1, 10),
        feature.ProposeFeature(
            feature_id, job_id, 1, f"dti_{feature_id}", "debt / income", "why", "{}", ("debt", "income"), 0.8, "kb", ()
        ),
        feature.RecordCode(feature_id, "code", "polars", "h", None, None, False),
        feature.RecordExecution(feature_id, True, None, None, 3.0, None, 0.0, 10),
        feature.RecordEvaluation(feature_id, 1, "confirm", "roc_auc", 0.01, 0.004, 0.001, 0.007, 0.01, 1, "helps"),
        feature.SelectFeature(feature_id, 1, "helps"),
    ]
    existing = store.read_stream(job.job_stream(job_id))
    execute(store, [(c, ctx) for c in (commands[1:] if existing else commands)])
