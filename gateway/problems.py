"""Errors as application/problem+json (RFC 9457), each with a detail that says what to do next."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from domain.errors import ConflictingCommand, DomainError, InvalidTransition, UnknownAggregate
from projections.directory import UnsupportedConnection
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


def _domain(error: DomainError) -> Problem:
    if isinstance(error, UnknownAggregate):
        return Problem(404, "Not Found", str(error))
    if isinstance(error, (InvalidTransition, ConflictingCommand)):
        return Problem(409, "Conflict", str(error), kind="invalid-transition")
    return Problem(422, "Unprocessable Content", str(error))


def install(app: FastAPI) -> None:
    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        return render(request, exc)  # type: ignore[arg-type]

    async def on_domain(request: Request, exc: Exception) -> JSONResponse:
        return render(request, _domain(exc))  # type: ignore[arg-type]

    async def on_bad_input(request: Request, exc: Exception) -> JSONResponse:
        return render(request, Problem(400, "Bad Request", str(exc)))

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        errors = exc.errors()  # type: ignore[attr-defined]
        where = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors[:5])
        detail = f"the request does not match the schema ({where}); see /api/v1/openapi.json"
        return render(
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
        return render(
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
        return render(
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
    app.add_exception_handler(UnsupportedConnection, on_bad_input)
    app.add_exception_handler(InvalidAsOf, on_bad_input)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_crash)
