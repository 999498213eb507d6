"""Shared fixtures: stores for every adapter, a fixed clock, a real server on a loopback port."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

POSTGRES_URL = os.environ.get("AFEP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
REPO = Path(__file__).resolve().parents[1]


def reachable(port: int) -> bool:
    """A service listens on 127.0.0.1:`port`."""
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def at() -> datetime:
    return datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _postgres_store():  # type: ignore[no-untyped-def]
    from commands.recorder_store import PostgresEventStore

    return PostgresEventStore(POSTGRES_URL, table_prefix=f"t{uuid.uuid4().hex[:10]}_")


def _drop_prefix(store) -> None:  # type: ignore[no-untyped-def]
    import psycopg

    prefix = store._recorder.events_table_name.removesuffix("stored_events")
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        for suffix in ("stored_events", "notification_tracking"):
            conn.execute(f"DROP TABLE IF EXISTS {prefix}{suffix} CASCADE")


@pytest.fixture(
    params=[
        "memory",
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    if request.param == "memory":
        from commands.memory_store import InMemoryEventStore

        yield InMemoryEventStore()
    elif request.param == "sqlite":
        from commands.recorder_store import SqliteEventStore

        s = SqliteEventStore(tmp_path / "events.db")
        yield s
        s.close()
    else:
        s = _postgres_store()
        yield s
        _drop_prefix(s)
        s.close()


@contextmanager
def fresh_postgres_database(prefix: str) -> Iterator[str]:
    """A new PostgreSQL database on the test server (its URL), dropped with its connections after."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# ------------------------------------------------ a real server, for e2e and security tests


@contextmanager
def running(app: Any) -> Iterator[str]:
    """Yields the API base URL (http://127.0.0.1:PORT/api/v1); stops the server afterwards."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}/api/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def serve() -> Any:
    """`with serve(app) as url:` runs `app` on a free loopback port."""
    return running
