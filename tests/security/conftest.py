"""A hostile tenant's view: the real API on a real uvicorn server, per backend.

`hostile(agents=False)` starts `afep serve`'s app on a free loopback port over
SQLite (embedded) or PostgreSQL (a fresh database per test, dropped after), and
hands out HTTP clients for tenants and roles. With `agents=True` the embedded
runtime runs the agents in the background, as `afep serve` does.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import fresh_postgres_database, running

SECRET = "security-suite-secret-key-0123456789abcdef"


@dataclass
class Hostile:
    """The running API and the means to act as any tenant against it."""

    url: str
    settings: Any
    store: Any
    backend: str
    clients: list[httpx.Client] = field(default_factory=list)

    def key(self, tenant: str, role: str = "admin") -> str:
        from gateway.auth import create_api_key

        return create_api_key(self.settings, tenant, role)

    def client(self, tenant: str, role: str = "admin") -> httpx.Client:
        """An HTTP client acting as a fresh key of `tenant` with `role`."""
        client = httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.key(tenant, role)}"}, timeout=60
        )
        self.clients.append(client)
        return client

    def project(self, client: httpx.Client, project_id: str = "p1") -> None:
        r = client.post("/projects", json={"name": project_id, "id": project_id})
        assert r.status_code in (201, 409), r.text

    def wait_job(self, client: httpx.Client, job_id: str, timeout: float = 120.0) -> dict[str, Any]:
        """Poll until the job is terminal; returns its row."""
        deadline = time.monotonic() + timeout
        while True:
            row = client.get(f"/jobs/{job_id}").json()
            if row.get("status") in ("completed", "failed", "cancelled") or time.monotonic() > deadline:
                return row  # type: ignore[no-any-return]
            time.sleep(0.2)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@contextlib.contextmanager
def hostile_api(backend: str, tmp_path: Path, agents: bool = False, **overrides: Any) -> Iterator[Hostile]:
    """The API as `afep serve` runs it, on `backend` (sqlite | postgres), state under `tmp_path`."""
    from gateway.app import create_app
    from gateway.runtime_wiring import build_runtime, build_store
    from gateway.settings import Settings

    with contextlib.ExitStack() as stack:
        database_url = stack.enter_context(fresh_postgres_database("afep_sec")) if backend == "postgres" else None
        settings = Settings(data_dir=tmp_path / "afep", secret_key=SECRET, database_url=database_url, **overrides)
        store = build_store(settings)
        stack.callback(store.close)
        runtime = None
        if agents:
            runtime = build_runtime(settings, store)
            runtime.start()
            stack.callback(runtime.stop)
        url = stack.enter_context(running(create_app(settings, store=store, runtime=runtime)))
        api = Hostile(url, settings, store, backend)
        try:
            yield api
        finally:
            for client in api.clients:
                client.close()


@pytest.fixture
def hostile(backend: str, tmp_path: Path) -> Callable[..., Any]:
    """`with hostile(agents=False, **settings) as api:` the API as `afep serve` runs it."""
    return functools.partial(hostile_api, backend, tmp_path)
