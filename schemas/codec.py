"""Turn events into plain data and back, and describe them in Avro.

The store keeps JSON (readable, replayable); Kafka carries Avro. Both are derived
from the frozen dataclasses in `domain/`, so a field added there shows up in
`schemas/avro/*.avsc` after `afep schemas write` and a test fails until it does.
"""

from __future__ import annotations

import dataclasses
import io
import json
import types
import typing
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import fastavro
import orjson

from domain.envelope import Envelope
from domain.events import EVENT_TYPES

AVRO_DIR = Path(__file__).parent / "avro"
HISTORY_DIR = AVRO_DIR / "history"  # earlier versions of changed schemas, to read records they wrote
NAMESPACE = "afep.events"


class UnknownEventType(ValueError):
    pass


def snake_name(type_name: str) -> str:
    out = []
    for i, ch in enumerate(type_name):
        if ch.isupper() and i:
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def event_to_dict(event: Any) -> dict[str, Any]:
    return {f.name: _plain(getattr(event, f.name)) for f in dataclasses.fields(event)}


def event_from_dict(type_name: str, data: dict[str, Any]) -> Any:
    cls = EVENT_TYPES.get(type_name)
    if cls is None:
        raise UnknownEventType(f"unknown event type {type_name!r}; known: {', '.join(sorted(EVENT_TYPES))}")
    hints = _hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            kwargs[f.name] = _typed(hints[f.name], data[f.name])
    return cls(**kwargs)


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _typed(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin is tuple:
        return tuple(value)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return _typed(inner[0], value)
    if hint is float and isinstance(value, int):
        return float(value)
    return value


# ----------------------------------------------------------------- store JSON


def envelope_to_json(envelope: Envelope) -> bytes:
    return orjson.dumps(
        {
            "e": event_to_dict(envelope.event),
            "m": {
                "event_id": envelope.event_id,
                "occurred_at": envelope.occurred_at.isoformat(),
                "correlation_id": envelope.correlation_id,
                "causation_id": envelope.causation_id,
                "actor": envelope.actor,
                "tenant_id": envelope.tenant_id,
            },
        }
    )


def envelope_from_json(type_name: str, stream_id: str, version: int, state: bytes, position: int) -> Envelope:
    data = orjson.loads(state)
    meta = data["m"]
    return Envelope(
        event=event_from_dict(type_name, data["e"]),
        stream_id=stream_id,
        version=version,
        event_id=meta["event_id"],
        occurred_at=datetime.fromisoformat(meta["occurred_at"]),
        correlation_id=meta["correlation_id"],
        causation_id=meta["causation_id"],
        actor=meta["actor"],
        tenant_id=meta["tenant_id"],
        position=position,
    )


# ----------------------------------------------------------------------- Avro


def _avro_type(hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return ["null", _avro_type(inner[0])]
    if origin is tuple:
        return {"type": "array", "items": _avro_type(typing.get_args(hint)[0])}
    mapping = {str: "string", int: "long", float: "double", bool: "boolean"}
    if hint in mapping:
        return mapping[hint]
    raise TypeError(f"no Avro mapping for {hint!r}")


def avro_schema(cls: type) -> dict[str, Any]:
    """The Avro record for one event class (fields in dataclass order)."""
    fields = []
    for f in dataclasses.fields(cls):
        avro_type = _avro_type(_hints(cls)[f.name])
        field: dict[str, Any] = {"name": f.name, "type": avro_type}
        if isinstance(avro_type, list):
            field["default"] = None
        elif f.default == ():  # a list added later: records written before it read as empty
            field["default"] = []
        fields.append(field)
    return {"type": "record", "name": cls.__name__, "namespace": NAMESPACE, "fields": fields}


def schema_path(cls: type) -> Path:
    return AVRO_DIR / f"{snake_name(cls.__name__)}.avsc"


def write_schemas() -> list[Path]:
    """Write every event's schema; a schema that changes keeps its previous version in history/."""
    AVRO_DIR.mkdir(parents=True, exist_ok=True)
    written = []
    for cls in EVENT_TYPES.values():
        path = schema_path(cls)
        text = json.dumps(avro_schema(cls), indent=2) + "\n"
        if path.exists() and path.read_text() != text:
            previous = path.read_text()
            HISTORY_DIR.mkdir(exist_ok=True)
            (HISTORY_DIR / f"{path.stem}.{_fingerprint(json.loads(previous))}.avsc").write_text(previous)
        path.write_text(text)
        written.append(path)
    return written


def _fingerprint(schema: Any) -> str:
    """CRC-64-AVRO (Rabin) of the canonical form: the `afep-schema-fingerprint` a record is sent with."""
    from fastavro.schema import fingerprint, to_parsing_canonical_form

    return str(fingerprint(to_parsing_canonical_form(fastavro.parse_schema(schema)), "CRC-64-AVRO"))


class UnknownSchemaVersion(ValueError):
    """A record written with a schema version this code has neither now nor in history/."""


@cache
def _writer(type_name: str, fingerprint: str) -> Any:
    """The schema that wrote a record: today's, or an earlier version kept in history/."""
    path = HISTORY_DIR / f"{schema_path(EVENT_TYPES[type_name]).stem}.{fingerprint}.avsc"
    if not path.exists():
        raise UnknownSchemaVersion(
            f"{type_name} record written with schema version {fingerprint}, which this AFEP does not know: "
            "upgrade the reader, or replay the log with `afep relay` from this version"
        )
    return fastavro.parse_schema(json.loads(path.read_text()))


@cache
def _parsed(type_name: str) -> Any:
    path = schema_path(EVENT_TYPES[type_name])
    return fastavro.parse_schema(json.loads(path.read_text()))


def event_to_avro(event: Any) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, _parsed(type(event).__name__), event_to_dict(event))
    return buf.getvalue()


def event_from_avro(type_name: str, payload: bytes, fingerprint: str | None = None) -> Any:
    """The event in `payload`; `fingerprint` names the schema version that wrote it (None: today's).

    A record an earlier version wrote (before a field with a default was added, say) is read
    with that version as the writer's schema and today's as the reader's (Avro resolution)."""
    current = _parsed(type_name)
    writer = current if fingerprint in (None, _current_fingerprint(type_name)) else _writer(type_name, fingerprint)
    reader = None if writer is current else current
    record = fastavro.schemaless_reader(io.BytesIO(payload), writer, reader)
    return event_from_dict(type_name, record)  # type: ignore[arg-type]


@cache
def _current_fingerprint(type_name: str) -> str:
    return _fingerprint(json.loads(schema_path(EVENT_TYPES[type_name]).read_text()))
