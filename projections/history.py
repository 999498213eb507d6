"""Replay: a job's timeline, and the job and its features as they were at a time or log position.

State is rebuilt by folding the domain's own `evolve` functions over the log,
so "as of" answers agree with what the deciders saw at that moment.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime
from typing import Any

from commands.store import EventStore
from domain import feature, job
from domain.envelope import Envelope
from domain.events import ACTIVITY_EVENTS, FEATURE_EVENTS, JOB_EVENTS
from projections.jobs import iso
from schemas.codec import event_to_dict

AsOf = int | datetime
_DOMAIN_TYPES = tuple(cls.__name__ for cls in (*JOB_EVENTS, *FEATURE_EVENTS))
_ALL_TYPES = (*_DOMAIN_TYPES, *(cls.__name__ for cls in ACTIVITY_EVENTS))


class InvalidAsOf(ValueError):
    """`as_of` is neither a log position nor an ISO-8601 time."""


def parse_as_of(text: str) -> AsOf:
    if re.fullmatch(r"[0-9]{1,18}", text):
        return int(text)
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidAsOf(
            f"as_of {text!r} is neither a log position (e.g. 42) nor an ISO-8601 time (e.g. 2025-01-31T12:00:00Z)"
        ) from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _job_envelopes(store: EventStore, job_id: str, types: tuple[str, ...], batch: int = 1000) -> list[Envelope]:
    """Every envelope of the job in log order (a scan of the log filtered by type and job)."""
    out: list[Envelope] = []
    after = 0
    while True:
        page = store.read_all(after=after, limit=batch, types=types)
        if not page:
            return out
        out += [e for e in page if getattr(e.event, "job_id", None) == job_id]
        after = page[-1].position


def _upto(envelope: Envelope, as_of: AsOf) -> bool:
    if isinstance(as_of, int):
        return envelope.position <= as_of
    at = envelope.occurred_at if envelope.occurred_at.tzinfo else envelope.occurred_at.replace(tzinfo=UTC)
    return at <= as_of


def timeline(
    store: EventStore, job_id: str, *, include_activity: bool = False, as_of: AsOf | None = None
) -> list[dict[str, Any]]:
    envelopes = _job_envelopes(store, job_id, _ALL_TYPES if include_activity else _DOMAIN_TYPES)
    if as_of is not None:
        envelopes = [e for e in envelopes if _upto(e, as_of)]
    return [
        {
            "position": e.position,
            "event_type": e.event_type,
            "stream_id": e.stream_id,
            "version": e.version,
            "occurred_at": iso(e.occurred_at),
            "actor": e.actor,
            "causation_id": e.causation_id,
            "data": event_to_dict(e.event),
        }
        for e in envelopes
    ]


def plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(plain(v) for v in value)
    return value


def as_of(store: EventStore, job_id: str, point: AsOf) -> dict[str, Any]:
    """The job and its features folded from the log up to `point` (inclusive)."""
    job_state: job.Job | None = None
    features: dict[str, feature.Feature] = {}
    position = 0
    for envelope in _job_envelopes(store, job_id, _DOMAIN_TYPES):
        if not _upto(envelope, point):
            break
        position = envelope.position
        e = envelope.event
        if isinstance(e, JOB_EVENTS):
            job_state = job.evolve(job_state, e)  # type: ignore[arg-type]
        elif isinstance(e, FEATURE_EVENTS):
            fid: str = e.feature_id  # type: ignore[attr-defined]
            features[fid] = feature.evolve(features.get(fid), e)  # type: ignore[arg-type]
    return {
        "job_id": job_id,
        "as_of": point if isinstance(point, int) else point.isoformat(),
        "position": position,
        "job": plain(job_state),
        "features": [plain(f) for f in features.values()],
    }
