"""Envelopes on Kafka: the event Avro-encoded as the record value, the envelope's metadata in headers.

One topic per event category (`afep.job`, `afep.feature`, `afep.activity`, `afep.webhook`), keyed by
the job id so that a job's events stay in one partition, in log order. The headers
carry everything a consumer needs to rebuild the envelope without reading the store:
schema name and fingerprint, stream and version, log position, tenant, ids, and the
W3C `traceparent` of the reaction that recorded the event.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from domain.envelope import Envelope
from domain.events import ACTIVITY_EVENTS, FEATURE_EVENTS, JOB_EVENTS, WEBHOOK_EVENTS
from schemas.codec import NAMESPACE, _parsed, event_from_avro, event_to_avro

TOPIC_PREFIX = "afep"
CATEGORIES: dict[str, str] = {
    **{cls.__name__: "job" for cls in JOB_EVENTS},
    **{cls.__name__: "feature" for cls in FEATURE_EVENTS},
    **{cls.__name__: "activity" for cls in ACTIVITY_EVENTS},
    **{cls.__name__: "webhook" for cls in WEBHOOK_EVENTS},
}
Headers = list[tuple[str, bytes]]


class NotAnAfepRecord(ValueError):
    """A record on an AFEP topic without the headers the relay writes."""


def topic_for(event_type: str, prefix: str = TOPIC_PREFIX) -> str:
    return f"{prefix}.{CATEGORIES[event_type]}"


def all_topics(prefix: str = TOPIC_PREFIX) -> tuple[str, ...]:
    return tuple(f"{prefix}.{c}" for c in sorted(set(CATEGORIES.values())))


@dataclass(frozen=True)
class Record:
    topic: str
    key: bytes
    value: bytes
    headers: Headers


@cache
def schema_fingerprint(event_type: str) -> str:
    """The Avro schema's CRC-64-AVRO (Rabin) fingerprint: which version of the schema wrote the value."""
    from fastavro.schema import fingerprint, to_parsing_canonical_form

    return str(fingerprint(to_parsing_canonical_form(_parsed(event_type)), "CRC-64-AVRO"))


def job_key(envelope: Envelope) -> str:
    return envelope.correlation_id or envelope.stream_id


def to_record(envelope: Envelope, prefix: str = TOPIC_PREFIX) -> Record:
    name = envelope.event_type
    meta = {
        "afep-schema": f"{NAMESPACE}.{name}",
        "afep-schema-fingerprint": schema_fingerprint(name),
        "afep-stream": envelope.stream_id,
        "afep-version": str(envelope.version),
        "afep-position": str(envelope.position),
        "afep-tenant": envelope.tenant_id,
        "afep-event-id": envelope.event_id,
        "afep-occurred-at": envelope.occurred_at.isoformat(),
        "afep-correlation-id": envelope.correlation_id,
        "afep-causation-id": envelope.causation_id or "",
        "afep-actor": envelope.actor,
        "traceparent": traceparent(envelope),
    }
    return Record(
        topic=topic_for(name, prefix),
        key=job_key(envelope).encode(),
        value=event_to_avro(envelope.event),
        headers=[(k, v.encode()) for k, v in meta.items()],
    )


def from_record(value: bytes, headers: Headers | tuple[tuple[str, bytes], ...]) -> Envelope:
    meta = {k: v.decode() for k, v in headers}
    if "afep-schema" not in meta:
        raise NotAnAfepRecord(f"record without an afep-schema header (headers: {', '.join(meta) or 'none'})")
    name = meta["afep-schema"].removeprefix(f"{NAMESPACE}.")
    return Envelope(
        event=event_from_avro(name, value, meta.get("afep-schema-fingerprint")),
        stream_id=meta["afep-stream"],
        version=int(meta["afep-version"]),
        event_id=meta["afep-event-id"],
        occurred_at=datetime.fromisoformat(meta["afep-occurred-at"]),
        correlation_id=meta["afep-correlation-id"],
        causation_id=meta["afep-causation-id"] or None,
        actor=meta["afep-actor"],
        tenant_id=meta["afep-tenant"],
        position=int(meta["afep-position"]),
    )


# ----------------------------------------------------------- trace context
# A job is one trace. Its ids are derived from what the envelope already records, so
# the store needs no extra column and every process computes the same ids: the trace
# id is the job's, and an event's parent span is the reaction that recorded it, named
# by (job, actor, causing event). A reaction to an event therefore has the span id
# `span_id(job, "agent:NAME", event.event_id)`, and the events it appends point at it.


def trace_id(job_id: str) -> int:
    try:
        value = uuid.UUID(job_id).int
    except ValueError:
        value = int.from_bytes(hashlib.sha256(job_id.encode()).digest()[:16], "big")
    return value or 1


def span_id(job_id: str, actor: str, causation_id: str | None) -> int:
    digest = hashlib.sha256(f"{job_id}\x00{actor}\x00{causation_id or ''}".encode()).digest()
    return int.from_bytes(digest[:8], "big") or 1


def traceparent(envelope: Envelope) -> str:
    job = job_key(envelope)
    parent = span_id(job, envelope.actor, envelope.causation_id)
    return f"00-{trace_id(job):032x}-{parent:016x}-01"
