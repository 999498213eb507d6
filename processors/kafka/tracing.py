"""A job is one OpenTelemetry trace, across the API, the relay and every worker.

The trace id is the job's and each reaction's span id is derived from (job, agent,
causing event); see `schemas/wire.py`. The `traceparent` header a consumer receives
names the reaction that recorded the event, so the reaction it starts is that span's
child, in whatever process it runs. `configure` installs the exporter: OTLP when
OTEL_EXPORTER_OTLP_ENDPOINT is set, otherwise JSON lines under `<data dir>/traces/`.
Without `configure` the spans go nowhere (the OpenTelemetry API's no-op tracer).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from domain.envelope import Envelope
from schemas.wire import span_id, trace_id, traceparent

TRACER = "afep"
_next_span_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("afep_next_span_id", default=None)
_next_trace_id: contextvars.ContextVar[int | None] = contextvars.ContextVar("afep_next_trace_id", default=None)


def reaction_span_id(agent: str, envelope: Envelope) -> int:
    return span_id(envelope.correlation_id or envelope.stream_id, f"agent:{agent}", envelope.event_id)


@contextlib.contextmanager
def reaction_span(agent: str, envelope: Envelope, partition: int | None = None, tracer: Any = None) -> Iterator[Any]:
    """The span of `agent` reacting to `envelope`: a child of the reaction that recorded the envelope."""
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    parent = TraceContextTextMapPropagator().extract({"traceparent": traceparent(envelope)})
    attributes: dict[str, Any] = {
        "afep.job_id": envelope.correlation_id,
        "afep.agent": agent,
        "afep.event_type": envelope.event_type,
        "afep.log_position": envelope.position,
        "afep.event_id": envelope.event_id,
    }
    if partition is not None:
        attributes["messaging.destination.partition.id"] = str(partition)
    token = _next_span_id.set(reaction_span_id(agent, envelope))
    try:
        tracer = tracer or trace.get_tracer(TRACER)
        with tracer.start_as_current_span(
            f"{agent} {envelope.event_type}", context=parent, attributes=attributes
        ) as span:
            yield span
    finally:
        _next_span_id.reset(token)


@contextlib.contextmanager
def command_span(name: str, job_id: str, actor: str, tracer: Any = None) -> Iterator[Any]:
    """The root of a job's trace: the command that requested it (its JobRequested points here)."""
    from opentelemetry import context, trace

    ids = _next_trace_id.set(trace_id(job_id)), _next_span_id.set(span_id(job_id, actor, None))
    try:
        tracer = tracer or trace.get_tracer(TRACER)
        attributes = {"afep.job_id": job_id, "afep.actor": actor}
        with tracer.start_as_current_span(name, context=context.Context(), attributes=attributes) as span:
            yield span
    finally:
        _next_span_id.reset(ids[1])
        _next_trace_id.reset(ids[0])


def id_generator() -> Any:
    """Trace and span ids derived from the event log where the caller set them; random otherwise."""
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class DerivedIds(RandomIdGenerator):
        def generate_span_id(self) -> int:
            wanted = _next_span_id.get()
            return wanted if wanted is not None else super().generate_span_id()

        def generate_trace_id(self) -> int:
            wanted = _next_trace_id.get()
            return wanted if wanted is not None else super().generate_trace_id()

    return DerivedIds()


def configure(service: str, data_dir: Path, *, otlp_endpoint: str | None = None) -> Any:
    """Install a tracer provider for this process; returns it (call `.shutdown()` to flush)."""
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    resource = Resource.create({"service.name": service, "process.pid": os.getpid()})
    provider = TracerProvider(resource=resource, id_generator=id_generator())
    if otlp_endpoint:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError as error:
            raise RuntimeError(
                "OTEL_EXPORTER_OTLP_ENDPOINT is set but opentelemetry-exporter-otlp-proto-http is not installed; "
                "install it or unset the variable to write spans under the data dir"
            ) from error
        # the base URL, as OTEL_EXPORTER_OTLP_ENDPOINT is: traces go to its /v1/traces
        endpoint = otlp_endpoint.rstrip("/") + "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    else:
        path = traces_dir(data_dir) / f"{service}-{os.getpid()}.jsonl"
        provider.add_span_processor(SimpleSpanProcessor(JsonLinesExporter(path)))
    trace.set_tracer_provider(provider)
    return provider


def traces_dir(data_dir: Path) -> Path:
    return data_dir / "traces"


class JsonLinesExporter:
    """Each finished span as one JSON line (one file per process, so writers never interleave)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        lines = [json.dumps(span_record(s), sort_keys=True) + "\n" for s in spans]
        with self._lock, self.path.open("a") as out:
            out.writelines(lines)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def span_record(span: Any) -> dict[str, Any]:
    context = span.get_span_context()
    return {
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "parent_id": f"{span.parent.span_id:016x}" if span.parent is not None else None,
        "name": span.name,
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
        "service": span.resource.attributes.get("service.name", ""),
        "pid": span.resource.attributes.get("process.pid", 0),
    }


def read_spans(data_dir: Path, trace_id: str) -> list[dict[str, Any]]:
    spans = []
    for path in sorted(traces_dir(data_dir).glob("*.jsonl")):
        for line in path.read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                if record["trace_id"] == trace_id:
                    spans.append(record)
    return spans


def span_tree(spans: list[dict[str, Any]]) -> list[str]:
    """Lines of an indented tree, children in start order, with durations and where they ran."""
    by_id = {s["span_id"]: s for s in spans}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for s in spans:
        parent = s["parent_id"] if s["parent_id"] in by_id else None
        children.setdefault(parent, []).append(s)
    lines: list[str] = []

    def walk(parent: str | None, depth: int) -> None:
        for s in sorted(children.get(parent, []), key=lambda s: s["start_ns"]):
            ms = (s["end_ns"] - s["start_ns"]) / 1e6
            position = s["attributes"].get("afep.log_position", "")
            where = f"{s['service']}[{s['pid']}]"
            lines.append(f"{'  ' * depth}{s['name']}  {ms:,.1f} ms  @{position}  {where}")
            walk(s["span_id"], depth + 1)

    walk(None, 0)
    return lines
