"""Errors as application/problem+json (RFC 9457), each with a detail that says what to do next.

Every 4xx/5xx answer to a request that carried credentials is also an audit record
(`request.refused` / `request.failed`), unless the route already audited it: the
caller's tenant sees it in GET /api/v1/audit; unknown keys are recorded as actor
"anonymous" in the platform tenant's trail.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from domain.errors import ConflictingCommand, DomainError, InvalidTransition, UnknownAggregate
from gateway.auth import Unauthenticated, authenticate
from processors.profiling import InputError
from projections.clickhouse import AuditRecord
from projections.database import UnstorableText
from projections.directory import TenantDeleted, UndecryptableConnection
from projections.history import InvalidAsOf
from projections.pagination import InvalidCursor

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://afep.dev/problems/"
log = logging.getLogger("afep.gateway")


class Problem(Exception):
    """Raise from a route or dependency; rendered as problem+json with this status."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        *,
        kind: str | None = None,
        headers: dict[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.kind = kind or title.lower().replace(" ", "-")
        self.headers = headers or {}
        self.extensions = extensions


def not_found(resource: str, ident: str, hint: str) -> Problem:
    return Problem(404, "Not Found", f"no {resource} {ident!r} in your tenant; {hint}")


def render(request: Request, problem: Problem) -> JSONResponse:
    body = {
        "type": TYPE_BASE + problem.kind,
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        "instance": request.url.path,
        **problem.extensions,
    }
    return JSONResponse(body, status_code=problem.status, media_type=MEDIA_TYPE, headers=problem.headers)


def _caller(request: Request, services: Any) -> tuple[str, str, str] | None:
    """(actor, tenant, role) of the request, or None when it carried no credentials."""
    state = request.state
    principal = getattr(state, "principal", None)
    refused = getattr(state, "refused", None)
    if principal is None and refused is None:
        authorization, api_key = request.headers.get("authorization"), request.headers.get("x-api-key")
        if not (authorization or api_key):
            return None
        try:  # refused before authentication ran (a malformed body, an unknown path)
            principal = authenticate(services.settings, services.db, authorization, api_key)
        except Unauthenticated as error:
            refused = error
    if principal is not None:
        return principal.actor, principal.tenant_id, principal.role.value
    return refused.actor, refused.tenant_id, ""  # type: ignore[union-attr]


def audit_refusal(request: Request, problem: Problem) -> None:
    """One audit record for a 4xx/5xx answer, unless the route recorded one already."""
    services = getattr(request.app.state, "services", None)
    if services is None or getattr(request.state, "audited", False):
        return
    try:
        caller = _caller(request, services)
        if caller is None:
            return
        actor, tenant, role = caller
        client = request.client
        services.audit.record(
            AuditRecord(
                actor=actor,
                tenant_id=tenant,
                role=role,
                action="request.failed" if problem.status >= 500 else "request.refused",
                resource_type="endpoint",
                resource_id=request.url.path,
                previous_state=request.method,
                new_state=problem.detail[:2000],
                source_ip=client.host if client else "",
                user_agent=request.headers.get("user-agent", ""),
                status_code=problem.status,
                time=datetime.now(UTC),
            )
        )
        request.state.audited = True
    except Exception:  # the refusal itself must still be answered
        log.exception("recording the refusal of %s failed", request.url.path)


async def reply(request: Request, problem: Problem) -> JSONResponse:
    await anyio.to_thread.run_sync(audit_refusal, request, problem)
    return render(request, problem)


def _domain(error: DomainError) -> Problem:
    if isinstance(error, UnknownAggregate):
        return Problem(404, "Not Found", str(error))
    if isinstance(error, (InvalidTransition, ConflictingCommand)):
        return Problem(409, "Conflict", str(error), kind="invalid-transition")
    return Problem(422, "Unprocessable Content", str(error))


def install(app: FastAPI) -> None:
    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        return await reply(request, exc)  # type: ignore[arg-type]

    async def on_domain(request: Request, exc: Exception) -> JSONResponse:
        return await reply(request, _domain(exc))  # type: ignore[arg-type]

    async def on_bad_input(request: Request, exc: Exception) -> JSONResponse:
        return await reply(request, Problem(400, "Bad Request", str(exc)))

    async def on_input(request: Request, exc: Exception) -> JSONResponse:  # a source or table we cannot read
        return await reply(request, Problem(422, "Unprocessable Content", str(exc), kind="input"))

    async def on_conflict(request: Request, exc: Exception) -> JSONResponse:
        kind = "undecryptable-connection" if isinstance(exc, UndecryptableConnection) else "tenant-deleted"
        return await reply(request, Problem(409, "Conflict", str(exc), kind=kind))

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        errors = exc.errors()  # type: ignore[attr-defined]
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors[:5])
        detail = f"the request does not match the schema ({where}); see /api/v1/openapi.json"
        return await reply(
            request,
            Problem(
                422,
                "Unprocessable Content",
                detail,
                kind="validation",
                errors=[{"loc": list(e["loc"]), "msg": e["msg"]} for e in errors],
            ),
        )

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        status = exc.status_code  # type: ignore[attr-defined]
        hints = {404: "check the path against /api/v1/openapi.json", 405: "check the method in /api/v1/openapi.json"}
        detail = f"{exc.detail}; {hints.get(status, 'see /api/v1/openapi.json')}"  # type: ignore[attr-defined]
        return await reply(
            request,
            Problem(
                status,
                str(exc.detail),  # type: ignore[attr-defined]
                detail,
                kind=f"http-{status}",
                headers=getattr(exc, "headers", None),
            ),
        )

    async def on_crash(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s", request.url.path)
        return await reply(
            request,
            Problem(
                500,
                "Internal Server Error",
                "the server failed unexpectedly; retry, and report the time if it persists",
            ),
        )

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(DomainError, on_domain)
    app.add_exception_handler(InvalidCursor, on_bad_input)
    app.add_exception_handler(InvalidAsOf, on_bad_input)
    app.add_exception_handler(UnstorableText, on_bad_input)
    app.add_exception_handler(InputError, on_input)
    app.add_exception_handler(UndecryptableConnection, on_conflict)
    app.add_exception_handler(TenantDeleted, on_conflict)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_crash)
