"""Every event has an Avro schema; each round-trips through Avro and the store's JSON."""

from __future__ import annotations

import dataclasses
import json
import typing
from datetime import UTC, datetime

import pytest

from domain.envelope import Envelope
from domain.events import ALL_EVENTS
from schemas.codec import (
    AVRO_DIR,
    avro_schema,
    envelope_from_json,
    envelope_to_json,
    event_from_avro,
    event_to_avro,
    schema_path,
)

SAMPLES = {str: "text", int: 7, float: 0.25, bool: True}


def sample(cls: type) -> object:
    hints = typing.get_type_hints(cls)
    values = {}
    for field in dataclasses.fields(cls):
        hint = hints[field.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if typing.get_origin(hint) is tuple:
            values[field.name] = (SAMPLES[args[0]], SAMPLES[args[0]])
        elif args:
            values[field.name] = SAMPLES[args[0]]
        else:
            values[field.name] = SAMPLES[hint]
    return cls(**values)


def test_the_set_of_events_equals_the_set_of_schemas() -> None:
    assert {schema_path(cls).name for cls in ALL_EVENTS} == {p.name for p in AVRO_DIR.glob("*.avsc")}


def test_committed_schemas_match_the_domain() -> None:
    for cls in ALL_EVENTS:
        assert json.loads(schema_path(cls).read_text()) == avro_schema(cls), f"run `afep schemas` for {cls.__name__}"


def test_each_event_round_trips_through_avro_and_json() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    for cls in ALL_EVENTS:
        event = sample(cls)
        assert event_from_avro(cls.__name__, event_to_avro(event)) == event
        env = Envelope(event, "s", 1, "e1", at, "j", None, "a", "t")
        back = envelope_from_json(cls.__name__, "s", 1, envelope_to_json(env), 5)
        assert back == dataclasses.replace(env, position=5)


def test_a_record_an_earlier_schema_version_wrote_is_read_with_todays_defaults() -> None:
    """A JobRequested the relay sent before keep_columns existed, read from a retained topic."""
    import io
    import json

    import fastavro

    from schemas.codec import HISTORY_DIR, UnknownSchemaVersion

    [old] = HISTORY_DIR.glob("job_requested.*.avsc")
    fingerprint = old.name.split(".")[1]
    record = {
        "job_id": "j", "project_id": "p", "source": "s.csv", "table": None, "target": "y", "task": "auto",
        "budget_seconds": 60.0, "seed": 0, "max_rounds": 1, "max_candidates": 5, "entity": None,
        "llm_budget_tokens": None, "llm_budget_usd": None,
    }  # fmt: skip
    payload = io.BytesIO()
    fastavro.schemaless_writer(payload, fastavro.parse_schema(json.loads(old.read_text())), record)
    event = event_from_avro("JobRequested", payload.getvalue(), fingerprint)
    assert event.keep_columns == () and event.max_candidates == 5 and event.target == "y"
    with pytest.raises(UnknownSchemaVersion, match="schema version 123"):
        event_from_avro("JobRequested", payload.getvalue(), "123")
