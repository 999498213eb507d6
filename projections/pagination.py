"""Cursor pagination: opaque, stable cursors over a unique, monotonic `seq` column."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Any

MAX_LIMIT = 500


class InvalidCursor(ValueError):
    """The cursor was not produced by this API; drop it to start from the first page."""


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    next_cursor: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"s:{seq}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    if not cursor:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not re.fullmatch(r"s:[0-9]{1,18}", text):
            raise ValueError(text)
        return int(text[2:])
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidCursor(
            f"cursor {cursor!r} is not valid; use the `next_cursor` of the previous page or omit it"
        ) from error


def clamp_limit(limit: int) -> int:
    return max(1, min(int(limit), MAX_LIMIT))


def page_of(rows: list[dict[str, Any]], limit: int, key: str = "seq") -> Page:
    """`rows` were fetched with limit + 1: the extra row tells whether there is a next page."""
    items = rows[:limit]
    more = len(rows) > limit
    return Page(items=items, next_cursor=encode_cursor(int(items[-1][key])) if more and items else None)
