"""The HTTP API: `create_app(settings, *, store=None, runtime=None)`.

Adapters are opened in the lifespan (chdb allows one data folder per process,
so the app must close it on shutdown) and a background task follows the log.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, FastAPI, Header, Request

from commands.store import EventStore
from gateway import problems
from gateway.auth import Unauthenticated, authenticate
from gateway.bootstrap import bootstrap
from gateway.routes import audit, connections, explorer, features, jobs, keys, streams, tenants, uploads, webhooks
from gateway.settings import Settings
from gateway.validation import BodyLimit, CleanTarget

API_PREFIX = "/api/v1"


def create_app(settings: Settings, *, store: EventStore | None = None, runtime: Any = None) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await anyio.to_thread.run_sync(lambda: bootstrap(settings, store=store, runtime=runtime))
        app.state.services = services
        tasks = [asyncio.create_task(services.follow_log()), asyncio.create_task(services.run_projections())]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            app.state.services = None
            await anyio.to_thread.run_sync(services.close)

    app = FastAPI(
        title="AFEP API",
        version="1",
        lifespan=lifespan,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
    )
    app.state.services = None
    problems.install(app)
    # uploads carry files and check their own limit
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes, exempt=(f"{API_PREFIX}/uploads",))
    # added last, so it runs first: a NUL or control character in the path or query never reaches a route
    app.add_middleware(CleanTarget)
    api = APIRouter(prefix=API_PREFIX)
    for module in (jobs, features, tenants, keys, connections, explorer, audit, streams, uploads, webhooks):
        api.include_router(module.router)

    @api.get("/health", tags=["health"])
    def health(
        request: Request,
        authorization: Annotated[str | None, Header()] = None,
        x_api_key: Annotated[str | None, Header()] = None,
    ) -> dict[str, Any]:
        """`status` for anyone (ok | degraded); the projector's checkpoint, the log head and the
        count of skipped poison events only for admins of the platform tenant, since the log's
        size tells of every tenant's activity."""
        services = request.app.state.services
        if services is None:
            return {"status": "starting"}
        report = services.health()
        try:
            principal = authenticate(settings, services.db, authorization, x_api_key)
        except Unauthenticated:
            principal = None
        if principal is not None and principal.operates_platform:
            return report  # type: ignore[no-any-return]
        return {"status": report["status"]}

    app.include_router(api)
    return app
