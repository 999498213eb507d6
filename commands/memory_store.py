"""InMemoryEventStore: the unit-test twin; passes the same contract as the real adapters."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace

from commands.store import ConcurrencyConflict, Tracking
from domain.envelope import Envelope


class InMemoryEventStore:
    def __init__(self) -> None:
        self._log: list[Envelope] = []
        self._streams: dict[str, list[Envelope]] = {}
        self._tracking: dict[str, int] = {}
        self._lock = threading.Lock()

    def append(self, envelopes: Sequence[Envelope], *, tracking: Tracking | None = None) -> list[int]:
        with self._lock:
            seen: set[tuple[str, int]] = set()
            for e in envelopes:
                key = (e.stream_id, e.version)
                existing = self._streams.get(e.stream_id, [])
                if key in seen or any(x.version == e.version for x in existing):
                    raise ConcurrencyConflict(f"stream {e.stream_id} already has version {e.version}")
                seen.add(key)
            positions = []
            for e in envelopes:
                recorded = replace(e, position=len(self._log) + 1)
                self._log.append(recorded)
                self._streams.setdefault(e.stream_id, []).append(recorded)
                positions.append(recorded.position)
            if tracking is not None:
                self._tracking[tracking.processor] = max(self._tracking.get(tracking.processor, 0), tracking.position)
            return positions

    def read_stream(self, stream_id: str, *, after_version: int = 0) -> list[Envelope]:
        return [replace(e, position=0) for e in self._streams.get(stream_id, []) if e.version > after_version]

    def read_all(self, *, after: int = 0, limit: int = 1000, types: Sequence[str] = ()) -> list[Envelope]:
        wanted = set(types)
        out = []
        for e in self._log[after:]:
            if not wanted or e.event_type in wanted:
                out.append(e)
                if len(out) >= limit:
                    break
        return out

    def last_position(self) -> int:
        return len(self._log)

    def tracking_position(self, processor: str) -> int:
        return self._tracking.get(processor, 0)

    def close(self) -> None:
        pass
