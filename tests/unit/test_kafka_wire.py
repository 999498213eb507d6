"""The distributed runtime without a broker: the wire format, trace ids, and redelivery changing nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from commands.memory_store import InMemoryEventStore
from commands.unit_of_work import Trace, execute, load_job
from domain.envelope import Context
from domain.events import EVENT_TYPES
from domain.job import CancelJob, JobRequested, RequestJob, RetryJob
from processors.kafka.reaction import Reactor, tracking_name
from processors.kafka.tracing import reaction_span_id
from processors.workbench import Workbench
from schemas.wire import all_topics, from_record, schema_fingerprint, to_record, trace_id, traceparent

ROOT = Path(__file__).resolve().parents[2]


def request(store: InMemoryEventStore, job_id: str) -> None:
    command = RequestJob(job_id, "p", "d.csv", None, "y", "auto", 60.0, 0, 1, 10)
    ctx = Context(at=datetime(2026, 1, 1, tzinfo=UTC), actor="user:a", tenant_id="t9", correlation_id=job_id)
    execute(store, [(command, ctx), (Trace(job_id, "schema", "thought", "hm", {"k": 1}), ctx)])


def test_an_envelope_survives_the_wire_and_lands_on_its_category_topic() -> None:
    store = InMemoryEventStore()
    request(store, "j1")
    for envelope in store.read_all():
        record = to_record(envelope)
        assert record.topic in all_topics() and record.key == b"j1"
        headers = dict(record.headers)
        assert headers["afep-position"] == str(envelope.position).encode() and headers["afep-tenant"] == b"t9"
        assert from_record(record.value, record.headers) == envelope
    assert len({schema_fingerprint(name) for name in EVENT_TYPES}) == len(EVENT_TYPES)


def test_a_reaction_is_the_child_span_of_the_reaction_that_recorded_its_event() -> None:
    job_id = "3f1c2a52-8f7e-4d55-9a67-4c3b1d0e2a11"
    store = InMemoryEventStore()
    request(store, job_id)
    requested = store.read_all()[0]
    ctx = Context(datetime(2026, 1, 1, tzinfo=UTC), "agent:schema", "t9", job_id, requested.event_id)
    execute(store, [(CancelJob(job_id, "test"), ctx)])
    cancelled = store.read_all()[-1]
    _version, trace, parent, _flags = traceparent(cancelled).split("-")
    assert trace == f"{trace_id(job_id):032x}" == job_id.replace("-", "")
    assert int(parent, 16) == reaction_span_id("schema", requested)


def test_a_redelivered_event_changes_nothing(tmp_path: Path) -> None:
    calls: list[int] = []

    def react(envelope: Any, store: Any, bench: Any) -> list[Any]:
        calls.append(envelope.position)
        return [Trace(envelope.event.job_id, "echo", "thought", "saw it")]

    agent = SimpleNamespace(NAME="echo", SUBSCRIBES=(JobRequested,), react=react)
    store = InMemoryEventStore()
    request(store, "j1")
    request(store, "j2")
    first, second = (e for e in store.read_all() if e.event_type == "JobRequested")
    reactor = Reactor(store, Workbench(datasets_dir=tmp_path, artifacts_dir=tmp_path))
    assert reactor.handle(agent, second, "afep.job", 1) == "reacted"
    assert reactor.handle(agent, second, "afep.job", 1) == "duplicate"
    # another partition has its own position: an earlier event there is not a duplicate
    assert reactor.handle(agent, first, "afep.job", 0) == "reacted"
    assert reactor.handle(agent, first, "afep.job", 0) == "duplicate"
    assert reactor.handle(agent, store.read_all()[1], "afep.activity", 0) == "ignored"
    assert calls == [second.position, first.position]
    assert store.tracking_position(tracking_name("echo", "afep.job", 1)) == second.position


def test_a_worker_fails_the_job_whose_reaction_is_refused_and_handles_the_next(tmp_path: Path) -> None:
    def react(envelope: Any, store: Any, bench: Any) -> list[Any]:
        job_id = envelope.event.job_id
        return [RetryJob(job_id)] if job_id == "a" else [CancelJob(job_id, "handled")]  # retrying "a" is refused

    agent = SimpleNamespace(NAME="picky", SUBSCRIBES=(JobRequested,), react=react)
    store = InMemoryEventStore()
    request(store, "a")
    request(store, "b")
    first, second = (e for e in store.read_all() if e.event_type == "JobRequested")
    reactor = Reactor(store, Workbench(datasets_dir=tmp_path, artifacts_dir=tmp_path))
    assert reactor.handle(agent, first, "afep.job", 0) == "reacted"
    assert reactor.handle(agent, first, "afep.job", 0) == "duplicate"  # the refusal does not repeat
    assert reactor.handle(agent, second, "afep.job", 0) == "reacted"
    a, b = load_job(store, "a"), load_job(store, "b")
    assert a is not None and a.status == "failed" and "was refused" in (a.failure or "")
    assert b is not None and b.status == "cancelled"


def test_a_reaction_whose_store_fails_is_retried_in_place_until_it_is_recorded_once(tmp_path: Path) -> None:
    """The store failing (locked, down) must not crash the faust agent: a crashed agent may never
    read its partition again. The reaction is retried; tracking keeps its effect single."""
    import asyncio

    from processors.kafka.worker import handle_until_done

    class Flaky(InMemoryEventStore):
        failures = 2

        def append(self, envelopes: Any, *, tracking: Any = None) -> list[int]:
            if tracking is not None and self.failures:
                self.failures -= 1
                raise OSError("database is locked")
            return super().append(envelopes, tracking=tracking)

    def react(envelope: Any, store: Any, bench: Any) -> list[Any]:
        return [Trace(envelope.event.job_id, "echo", "thought", "saw it")]

    agent = SimpleNamespace(NAME="echo", SUBSCRIBES=(JobRequested,), react=react)
    store = Flaky()
    request(store, "j1")
    event = next(e for e in store.read_all() if e.event_type == "JobRequested")
    reactor = Reactor(store, Workbench(datasets_dir=tmp_path, artifacts_dir=tmp_path))
    outcome = asyncio.run(
        handle_until_done(
            lambda: asyncio.to_thread(reactor.handle, agent, event, "afep.job", 0), "echo", first_delay=0.01
        )
    )
    assert outcome == "reacted" and store.failures == 0
    assert [getattr(e.event, "agent", "") for e in store.read_all()].count("echo") == 1
    assert reactor.handle(agent, event, "afep.job", 0) == "duplicate"

    async def broken() -> None:
        raise KeyError("a bug, not the store")  # raised at once: retrying would hide it

    with pytest.raises(KeyError):
        asyncio.run(handle_until_done(broken, "a bug", first_delay=0.01))

    async def cancelled() -> None:
        raise asyncio.CancelledError  # a rebalance or shutdown stops the wait; it is not retried

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(handle_until_done(cancelled, "stopping", first_delay=0.01))


def test_the_command_is_the_root_of_the_job_trace_and_each_reaction_hangs_under_its_cause() -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from processors.kafka.tracing import command_span, id_generator, reaction_span, span_tree

    exporter = InMemorySpanExporter()
    provider = TracerProvider(id_generator=id_generator())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    job_id = "3f1c2a52-8f7e-4d55-9a67-4c3b1d0e2a11"
    store = InMemoryEventStore()
    with command_span("POST /api/v1/jobs", job_id, "user:a", tracer=tracer):
        request(store, job_id)
    requested = store.read_all()[0]
    with reaction_span("schema", requested, 0, tracer=tracer):
        pass
    root, reaction = exporter.get_finished_spans()
    assert root.context.trace_id == reaction.context.trace_id == int(job_id.replace("-", ""), 16)
    assert root.parent is None and reaction.parent is not None and reaction.parent.span_id == root.context.span_id
    assert reaction.attributes is not None and reaction.attributes["afep.log_position"] == requested.position
    records = [
        {"span_id": f"{s.context.span_id:016x}", "parent_id": f"{s.parent.span_id:016x}" if s.parent else None,
         "name": s.name, "start_ns": s.start_time, "end_ns": s.end_time, "attributes": dict(s.attributes or {}),
         "service": "t", "pid": 1}
        for s in (root, reaction)
    ]  # fmt: skip
    tree = span_tree(records)
    assert tree[0].startswith("POST /api/v1/jobs") and tree[1].startswith("  schema JobRequested")


def test_spans_reach_an_otlp_collector_as_one_trace(tmp_path: Path) -> None:
    """configure(otlp_endpoint=...) exports over OTLP/HTTP: a real HTTP receiver decodes what arrives."""
    import http.server
    import subprocess
    import sys
    import threading

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    received: list[tuple[str, ExportTraceServiceRequest]] = []
    job_id = "3f1c2a52-8f7e-4d55-9a67-4c3b1d0e2a11"

    class Collector(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # the http.server hook's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            received.append((self.path, request))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # its own process: `configure` installs the process-wide tracer provider
    child = f"""
import sys
from pathlib import Path
from datetime import UTC, datetime
from commands.memory_store import InMemoryEventStore
from commands.unit_of_work import execute
from domain.envelope import Context
from domain.job import RequestJob
from processors.kafka.tracing import command_span, configure, reaction_span
provider = configure("afep-test", Path(sys.argv[1]), otlp_endpoint="http://127.0.0.1:{server.server_port}/")
store = InMemoryEventStore()
with command_span("POST /api/v1/jobs", "{job_id}", "user:a"):
    command = RequestJob("{job_id}", "p", "d.csv", None, "y", "auto", 60.0, 0, 1, 10)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    execute(store, [(command, Context(at=at, actor="user:a", tenant_id="t9", correlation_id="{job_id}"))])
with reaction_span("schema", store.read_all()[0], 3):
    pass
provider.shutdown()  # flushes the batch
"""
    try:
        done = subprocess.run(
            [sys.executable, "-c", child, str(tmp_path)], capture_output=True, text=True, timeout=120, cwd=ROOT
        )
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 0, done.stderr
    assert received and {path for path, _ in received} == {"/v1/traces"}
    spans = [
        (resource.resource, span)
        for _, req in received
        for resource in req.resource_spans
        for scope in resource.scope_spans
        for span in scope.spans
    ]
    assert sorted(span.name for _, span in spans) == ["POST /api/v1/jobs", "schema JobRequested"]
    by_name = {span.name: span for _, span in spans}
    root, reaction = by_name["POST /api/v1/jobs"], by_name["schema JobRequested"]
    assert root.trace_id == reaction.trace_id == bytes.fromhex(job_id.replace("-", ""))
    assert reaction.parent_span_id == root.span_id and not root.parent_span_id
    attributes = {a.key: a.value for a in reaction.attributes}
    assert attributes["afep.agent"].string_value == "schema"
    assert attributes["messaging.destination.partition.id"].string_value == "3"
    service = {a.key: a.value.string_value for a in spans[0][0].attributes}["service.name"]
    assert service == "afep-test"
