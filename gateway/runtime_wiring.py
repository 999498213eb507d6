"""Wiring of the embedded runtime: the agents' workbench and the local runtime, from settings."""

from __future__ import annotations

from collections.abc import Sequence

from commands.store import EventStore
from gateway.bootstrap import open_store
from gateway.settings import Settings
from processors.runtime import LocalRuntime, Observer
from processors.workbench import Workbench

build_store = open_store


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
