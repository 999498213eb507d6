"""Wiring of the embedded runtime: the agents' workbench and the local runtime, from settings."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from commands.store import EventStore
from gateway.bootstrap import open_store
from gateway.settings import Settings
from processors.runtime import LocalRuntime, Observer
from processors.sources import SourceError
from processors.workbench import Workbench

build_store = open_store
CONNECTION_PREFIX = "connection://"


def connection_resolver(settings: Settings) -> Callable[[str, str], str]:
    """Turn `connection://ID` sources (jobs created over the API) into the tenant's decrypted URI."""
    opened: list[Any] = []

    def resolve(source: str, tenant: str) -> str:
        if not source.startswith(CONNECTION_PREFIX):
            return source
        from projections.database import Database
        from projections.directory import connection_uri

        if not opened:
            opened.append(Database(settings.database_url or settings.readmodel_db_path))
        connection_id = source.removeprefix(CONNECTION_PREFIX)
        uri = connection_uri(opened[0], settings.secret_key or "", tenant, connection_id)
        if uri is None:
            raise SourceError(
                f"connection {connection_id!r} does not exist for tenant {tenant!r}; see GET /api/v1/connections"
            )
        return uri

    return resolve


def build_workbench(settings: Settings) -> Workbench:
    return Workbench(
        resolve_source=connection_resolver(settings),
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
