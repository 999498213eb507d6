"""The event store port: an append-only log of envelopes, in streams and in one global order.

Adapters: `SqliteEventStore`, `PostgresEventStore` (both on the `eventsourcing`
library's process recorders) and `InMemoryEventStore` (the twin for unit tests).
All pass `tests/contract/test_event_store.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from domain.envelope import Envelope


class ConcurrencyConflict(Exception):
    """Another writer appended to one of the streams first; reload and decide again."""


@dataclass(frozen=True)
class Tracking:
    """A processor's position in the global log, committed with what it produced."""

    processor: str
    position: int


class EventStore(Protocol):
    def append(self, envelopes: Sequence[Envelope], *, tracking: Tracking | None = None) -> list[int]:
        """Atomically record envelopes (each at its stream `version`) and the tracking position.

        Raises ConcurrencyConflict, recording nothing, if any (stream, version) exists.
        Returns the global positions given to the envelopes.
        """
        ...

    def read_stream(self, stream_id: str, *, after_version: int = 0) -> list[Envelope]: ...

    def read_all(self, *, after: int = 0, limit: int = 1000, types: Sequence[str] = ()) -> list[Envelope]:
        """Envelopes with position > after, in log order, optionally only of these event types."""
        ...

    def last_position(self) -> int: ...

    def tracking_position(self, processor: str) -> int: ...

    def close(self) -> None: ...
