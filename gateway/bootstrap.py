"""Wiring: builds every adapter the gateway needs from the settings, once, and tears it down."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio

from commands.store import EventStore
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
    log_changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    projections_due: asyncio.Event = field(default_factory=asyncio.Event)
    head: int = 0

    def after_commands(self) -> None:
        """Read-your-writes for the caller, and a nudge for the agents."""
        self.projector.catch_up()
        if self.runtime is not None:
            self.runtime.wake()

    async def follow_log(self) -> None:
        """Notice appends (ours or any other process's) and wake the SSE feeds and the projections."""
        while True:
            try:
                head = await anyio.to_thread.run_sync(self.store.last_position)
                if head != self.head:
                    self.head = head
                    self.projections_due.set()
                    async with self.log_changed:
                        self.log_changed.notify_all()
            except Exception:
                log.exception("reading the log head failed; retrying")
                await asyncio.sleep(1.0)
            await asyncio.sleep(self.poll_seconds)

    async def run_projections(self) -> None:
        """Catch the read models and ClickHouse up, off the SSE path (chdb inserts take tens of ms)."""
        while True:
            await self.projections_due.wait()
            self.projections_due.clear()
            try:
                await anyio.to_thread.run_sync(self.projector.catch_up)
                await anyio.to_thread.run_sync(self.events_projection.catch_up)
            except Exception:
                log.exception("projecting the event log failed; retrying")
                await asyncio.sleep(1.0)
                self.projections_due.set()

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
