"""Wiring: settings in, store, workbench and runtime out. Nothing connects at import time."""

from __future__ import annotations

from collections.abc import Sequence

from commands.store import EventStore
from gateway.settings import Settings
from processors.runtime import LocalRuntime, Observer
from processors.workbench import Workbench


def build_store(settings: Settings) -> EventStore:
    if settings.database_url:
        from commands.recorder_store import PostgresEventStore

        return PostgresEventStore(settings.database_url)
    from commands.recorder_store import SqliteEventStore

    return SqliteEventStore(settings.event_db_path)


def build_workbench(settings: Settings) -> Workbench:
    return Workbench(
        datasets_dir=settings.datasets_dir,
        artifacts_dir=settings.artifacts_dir,
        sandbox_options={
            "wall_seconds": settings.sandbox_wall_seconds,
            "cpu_seconds": settings.sandbox_cpu_seconds,
            "memory_bytes": settings.sandbox_memory_bytes,
        },
    )


def build_runtime(settings: Settings, store: EventStore, observers: Sequence[Observer] = ()) -> LocalRuntime:
    return LocalRuntime(store, build_workbench(settings), observers=observers)
