"""EventStore adapters on the `eventsourcing` library's process recorders.

The recorder gives us what the port needs: a unique (originator_id,
originator_version) per event (optimistic concurrency), a global notification
sequence (the log position) and tracking records committed in the same
transaction as the events (exactly-once processing).
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from eventsourcing.persistence import IntegrityError, InternalError, ProcessRecorder, StoredEvent
from eventsourcing.persistence import Tracking as EsTracking

from commands.store import ConcurrencyConflict, Tracking
from domain.envelope import Envelope
from schemas.codec import envelope_from_json, envelope_to_json


class RecorderEventStore:
    """Shared logic; subclasses build the recorder."""

    def __init__(self, recorder: ProcessRecorder, closer: object) -> None:
        self._recorder = recorder
        self._closer = closer

    def append(self, envelopes: Sequence[Envelope], *, tracking: Tracking | None = None) -> list[int]:
        stored = [
            StoredEvent(
                originator_id=e.stream_id,
                originator_version=e.version,
                topic=e.event_type,
                state=envelope_to_json(e),
            )
            for e in envelopes
        ]
        es_tracking = EsTracking(tracking.processor, tracking.position) if tracking else None
        if not stored:
            if es_tracking is not None and es_tracking.notification_id > self.tracking_position(tracking.processor):  # type: ignore[union-attr]
                self._recorder.insert_tracking(es_tracking)
            return []
        try:
            ids = self._recorder.insert_events(stored, tracking=es_tracking)
        except IntegrityError as error:
            raise ConcurrencyConflict(str(error)) from error
        return list(ids or [])

    def read_stream(self, stream_id: str, *, after_version: int = 0) -> list[Envelope]:
        rows = self._recorder.select_events(stream_id, gt=after_version or None)
        return [envelope_from_json(r.topic, str(r.originator_id), r.originator_version, r.state, 0) for r in rows]

    def read_all(self, *, after: int = 0, limit: int = 1000, types: Sequence[str] = ()) -> list[Envelope]:
        rows = self._recorder.select_notifications(after, limit, topics=tuple(types), inclusive_of_start=False)
        return [envelope_from_json(r.topic, str(r.originator_id), r.originator_version, r.state, r.id) for r in rows]

    def last_position(self) -> int:
        return self._recorder.max_notification_id() or 0

    def tracking_position(self, processor: str) -> int:
        return self._recorder.max_tracking_id(processor) or 0

    def close(self) -> None:
        close = getattr(self._closer, "close", None)
        if close is not None:
            close()


ATTEMPTS = 3  # to create the tables


def created(make: Callable[[], Any]) -> Any:
    """A recorder whose tables exist. Processes that open a fresh store at the same instant
    (`afep relay`, workers and projector starting together) race to create the tables and
    record the schema version; the loser's insert fails (or PostgreSQL's catalog says "tuple
    concurrently updated" for two CREATE ... IF NOT EXISTS at once), and its next look finds
    them made. On PostgreSQL the creation is also serialized by an advisory lock
    (`_creation_lock`), so the retry is the second line of defence."""
    for attempt in range(ATTEMPTS):
        recorder = make()
        try:
            recorder.create_table()
            return recorder
        except (IntegrityError, InternalError):
            if attempt == ATTEMPTS - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


class SqliteEventStore(RecorderEventStore):
    """The embedded default: one SQLite file under the data dir."""

    def __init__(self, path: Path | str) -> None:
        from eventsourcing.sqlite import SQLiteDatastore, SQLiteProcessRecorder

        Path(path).parent.mkdir(parents=True, exist_ok=True)
        datastore = SQLiteDatastore(str(path), originator_id_type="text", lock_timeout=30)
        with _file_lock(Path(path)):  # the first connection switches the file to WAL: one process at a time
            recorder = created(lambda: SQLiteProcessRecorder(datastore))
            with datastore.transaction(commit=True) as cursor:
                cursor.execute("PRAGMA journal_mode=WAL")
        super().__init__(recorder, datastore)


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Serialize opening a SQLite store among this machine's processes (a sidecar `<file>.lock`).

    Processes opening a fresh file at once race to switch it to WAL and create the tables;
    SQLite answers a connection that loses the journal-mode switch "database is locked" at
    once, without waiting for its busy timeout. Later opens pass the lock in microseconds.
    """
    with path.with_name(path.name + ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class PostgresEventStore(RecorderEventStore):
    """Production: PostgreSQL, `AFEP_DATABASE_URL=postgresql://user@host:port/db`."""

    def __init__(self, url: str, *, schema: str = "", table_prefix: str = "") -> None:
        from eventsourcing.postgres import PostgresDatastore, PostgresProcessRecorder

        parsed = urlparse(url)
        params: dict[str, Any] = {
            "dbname": (parsed.path or "/").lstrip("/") or "postgres",
            "host": parsed.hostname or "127.0.0.1",
            "port": parsed.port or 5432,
            "user": unquote(parsed.username or "postgres"),
            "password": unquote(parsed.password or ""),
        }
        datastore = PostgresDatastore(
            **params,
            originator_id_type="text",
            schema=schema,
            pool_size=4,
            max_overflow=4,
        )
        with _creation_lock(params):
            recorder = created(
                lambda: PostgresProcessRecorder(
                    datastore,
                    events_table_name=f"{table_prefix}stored_events",
                    tracking_table_name=f"{table_prefix}notification_tracking",
                )
            )
        super().__init__(recorder, datastore)


# Any fixed 64-bit key: the processes of one cluster agree on it.
_CREATION_LOCK_KEY = 0x0AFE_0E5C_0001


@contextmanager
def _creation_lock(params: dict[str, Any]) -> Iterator[None]:
    """Hold a PostgreSQL session advisory lock while the tables are created, so processes that
    start together create them one after another (a CI run failed with six processes, three
    retries each, all racing on the catalog). `params` are the store's own connection values.
    Closing the connection releases the lock; a holder stuck for a minute makes this fail."""
    import psycopg

    with psycopg.connect(**params, autocommit=True, connect_timeout=30) as conn:
        conn.execute("SET lock_timeout = '60s'")
        conn.execute("SELECT pg_advisory_lock(%s)", (_CREATION_LOCK_KEY,))
        try:
            yield
        finally:
            with suppress(psycopg.Error):  # a broken connection has released it already
                conn.execute("SELECT pg_advisory_unlock(%s)", (_CREATION_LOCK_KEY,))
