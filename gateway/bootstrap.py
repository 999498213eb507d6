"""Wiring: builds every adapter the gateway needs from the settings, once, and tears it down."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import functools
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio

from commands.store import EventStore
from domain.envelope import Envelope
from gateway.ratelimit import RateLimiter
from gateway.settings import Settings
from projections import directory
from projections.clickhouse import ClickHouse, ClickHouseAuditLog, ClickHouseEventsProjection
from projections.database import Database
from projections.projector import Projector

log = logging.getLogger("afep.gateway")


class Runtime(Protocol):
    def wake(self) -> None: ...


@dataclass
class Services:
    settings: Settings
    store: EventStore
    db: Database
    projector: Projector
    clickhouse: ClickHouse
    audit: ClickHouseAuditLog
    events_projection: ClickHouseEventsProjection
    limiter: RateLimiter
    runtime: Runtime | None = None
    owns_store: bool = False
    heartbeat_seconds: float = 15.0
    poll_seconds: float = 0.02
    outbox_seconds: float = 1.0  # how often `afep keys`/`afep tenants` acts are copied into the audit trail
    log_changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    projections_due: asyncio.Event = field(default_factory=asyncio.Event)
    head: int = 0
    # The tail of the log, read once by `follow_log` and shared by every live feed, so
    # fifty subscribers cost one read per append instead of fifty.
    recent: list[Envelope] = field(default_factory=list)
    recent_positions: list[int] = field(default_factory=list)
    recent_floor: int | None = None  # every event after this position is in `recent`
    recent_limit: int = 20_000

    def recent_after(self, position: int, limit: int = 500) -> list[Envelope] | None:
        """Events after `position` from the shared tail, or None when the tail does not reach back."""
        if self.recent_floor is None or position < self.recent_floor:
            return None
        start = bisect.bisect_right(self.recent_positions, position)
        return self.recent[start : start + limit]

    def _remember(self, batch: list[Envelope]) -> None:
        self.recent.extend(batch)
        self.recent_positions.extend(e.position for e in batch)
        if len(self.recent) > 2 * self.recent_limit:
            cut = len(self.recent) - self.recent_limit
            self.recent_floor = self.recent_positions[cut - 1]
            del self.recent[:cut], self.recent_positions[:cut]

    def after_commands(self) -> None:
        """Read-your-writes for the caller, and a nudge for the agents."""
        self.projector.catch_up()
        if self.runtime is not None:
            self.runtime.wake()

    async def follow_log(self) -> None:
        """Notice appends (ours or any other process's) and wake the SSE feeds and the projections."""
        if self.recent_floor is None:
            self.head = self.recent_floor = await anyio.to_thread.run_sync(self.store.last_position)
            self.projections_due.set()
        while True:
            try:
                read = functools.partial(self.store.read_all, after=self.head, limit=500)
                batch = await anyio.to_thread.run_sync(read)
                if batch:
                    self._remember(batch)
                    self.head = batch[-1].position
                    self.projections_due.set()
                    async with self.log_changed:
                        self.log_changed.notify_all()
                    if len(batch) == 500:
                        continue
            except Exception:
                log.exception("reading the log failed; retrying")
                await asyncio.sleep(1.0)
            await asyncio.sleep(self.poll_seconds)

    async def run_projections(self) -> None:
        """Catch the read models and ClickHouse up, off the SSE path (chdb inserts take tens of ms), and
        drain the directory's audit outbox into the trail (the CLI cannot write chdb while we own it)."""
        while True:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a cancellation that
            # arrives as the event is set, and the lifespan's shutdown then waits for this loop forever
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.outbox_seconds):
                    await self.projections_due.wait()
            due = self.projections_due.is_set()
            self.projections_due.clear()
            try:
                if due:
                    await anyio.to_thread.run_sync(self.projector.catch_up)
                    await anyio.to_thread.run_sync(self.events_projection.catch_up)
                await anyio.to_thread.run_sync(self.audit.drain, self.db)
            except Exception:
                log.exception("projecting the event log or the audit outbox failed; retrying")
                await asyncio.sleep(1.0)
                self.projections_due.set()

    def health(self) -> dict[str, Any]:
        """Cheap liveness: the projector's checkpoint against the log head and its skipped events."""
        errors = self.projector.error_count()
        checkpoint = self.projector.position()
        return {
            "status": "degraded" if errors else "ok",
            "projection_errors": errors,
            "projector_checkpoint": checkpoint,
            "log_head": self.store.last_position(),
        }

    def close(self) -> None:
        for closing in (self.clickhouse.close, self.db.close, self.store.close if self.owns_store else None):
            if closing is not None:
                with contextlib.suppress(Exception):
                    closing()


def open_store(settings: Settings) -> EventStore:
    from commands.recorder_store import PostgresEventStore, SqliteEventStore

    if settings.database_url:
        return PostgresEventStore(settings.database_url)
    return SqliteEventStore(settings.event_db_path)


def bootstrap(settings: Settings, *, store: EventStore | None = None, runtime: Any = None) -> Services:
    owns_store = store is None
    event_store = store if store is not None else open_store(settings)
    db = Database(settings.database_url or settings.readmodel_db_path)
    projector = Projector(db, event_store)
    projector.create_tables()
    directory.create_tables(db)
    clickhouse = ClickHouse(url=settings.clickhouse_url, path=settings.clickhouse_path)
    services = Services(
        settings=settings,
        store=event_store,
        db=db,
        projector=projector,
        clickhouse=clickhouse,
        audit=ClickHouseAuditLog(clickhouse),
        events_projection=ClickHouseEventsProjection(clickhouse, event_store),
        limiter=RateLimiter(lambda tenant: directory.tenant_tier(db, tenant)),
        runtime=runtime,
        owns_store=owns_store,
    )
    projector.catch_up()
    return services
