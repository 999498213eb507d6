"""Request checks at the HTTP edge: bounded, control-free strings and a request body size limit.

The annotated types put the limits of `domain.validation` into the request models,
so a bad field is a 422 problem+json naming it (and the limits show in the OpenAPI
document). `BodyLimit` answers 413 before a route reads an oversized body, by its
Content-Length or, for a streamed body, as soon as the bytes received pass the limit.
`CleanTarget` answers 400 for a path or query string that, once percent-decoded, is
not UTF-8 or holds a control character (NUL above all: PostgreSQL text cannot hold it).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Annotated, Any
from urllib.parse import unquote_to_bytes

from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from domain import validation
from domain.errors import InvalidInput

DEFAULT_MAX_REQUEST_BYTES = 2**20
_CONTROL = re.compile("[\x00-\x1f\x7f]")


def _refusing(check: Callable[[str, str], None]) -> Callable[[str], str]:
    def run(value: str) -> str:
        try:
            check("the value", value)
        except InvalidInput as error:
            raise ValueError(str(error)) from None
        return value

    return run


ClientId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=validation.MAX_ID, pattern=f"^{validation.ID_PATTERN.pattern}$"),
    Field(description="letters, digits and . _ : @ -, at most 128 characters"),
]
Name = Annotated[
    str, StringConstraints(max_length=validation.MAX_NAME), AfterValidator(_refusing(validation.check_name))
]
Source = Annotated[
    str, StringConstraints(max_length=validation.MAX_SOURCE), AfterValidator(_refusing(validation.check_name))
]
Text = Annotated[
    str, StringConstraints(max_length=validation.MAX_TEXT), AfterValidator(_refusing(validation.check_text))
]
Budget = Annotated[float, Field(gt=0, le=validation.MAX_BUDGET_SECONDS, allow_inf_nan=False)]


class RequestBody(BaseModel):
    """A request's JSON body: a field it does not define is a 422 naming it, not silently ignored
    (a misspelt option, `budget` for `budget_seconds`, would otherwise run with the default)."""

    model_config = ConfigDict(extra="forbid")


class _TooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: 413 problem+json for a request body over `max_bytes` (paths in `exempt` excepted)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int = DEFAULT_MAX_REQUEST_BYTES, exempt: Sequence[str] = ()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.exempt = tuple(exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(scope, receive, send)
            return
        received = 0
        refused = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    refused = True
                    raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:  # the app's answer to a body we cut off is replaced by the 413
                return
            started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not refused or started:
                raise
        if refused and not started:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        body: dict[str, Any] = {
            "type": "https://afep.dev/problems/payload-too-large",
            "title": "Payload Too Large",
            "status": 413,
            "detail": f"the request body is over {self.max_bytes:,} bytes; send less, "
            "or upload files with POST /api/v1/uploads",
            "instance": scope["path"],
        }
        response = JSONResponse(
            body, status_code=413, media_type="application/problem+json", headers={"Connection": "close"}
        )
        await response(scope, receive, send)


def target_problem(raw_path: bytes, query_string: bytes) -> str | None:
    """Why the request's path or query string cannot be taken, or None when both are clean text."""
    for part, raw in (("path", raw_path), ("query string", query_string.replace(b"+", b" "))):
        try:
            text = unquote_to_bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            return (
                f"the {part} is not valid UTF-8 once percent-decoded (a stray byte or an encoded surrogate); "
                "percent-encode UTF-8 text only"
            )
        found = _CONTROL.search(text)
        if found:
            return (
                f"the {part} holds the control character {found.group()!r} once percent-decoded; "
                "remove it (identifiers and filters are plain text) and retry"
            )
    return None


class CleanTarget:
    """ASGI middleware: 400 problem+json for a path or query string with control characters or bad UTF-8."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_path = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogatepass")
        problem = target_problem(raw_path, scope.get("query_string", b""))
        if problem is None:
            await self.app(scope, receive, send)
            return
        body: dict[str, Any] = {
            "type": "https://afep.dev/problems/bad-request",
            "title": "Bad Request",
            "status": 400,
            "detail": problem,
            "instance": _shown(scope["path"]),
        }
        response = JSONResponse(body, status_code=400, media_type="application/problem+json")
        await response(scope, receive, send)


def _shown(path: str) -> str:
    """`path` with control characters and surrogates escaped, safe to echo in a JSON answer."""
    escaped = path.encode("utf-8", "backslashreplace").decode("utf-8")
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", escaped)
