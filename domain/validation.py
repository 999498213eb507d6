"""Field checks every command passes before an event reaches the log.

A stored event lives forever and is replayed by every projection, so text with
NUL or control characters, unbounded sizes and non-finite numbers are refused
here, in the domain, whoever sends the command (CLI, API, agents). Each refusal
is an `InvalidInput` that names the field and says what to send instead.
`printable` is the lenient twin for text the system itself writes (failure
reasons built from exception messages): it cleans instead of refusing.
"""

from __future__ import annotations

import math
import re

from domain.errors import InvalidInput

MAX_ID = 128
MAX_NAME = 1024
MAX_TEXT = 64 * 1024
MAX_SOURCE = 4096
MAX_BUDGET_SECONDS = 7 * 24 * 3600.0
MAX_SEED = 2**31 - 1
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]*")
# C0 and C1 controls and DEL; free text may keep tab, newline and carriage return.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def check_id(field: str, value: str) -> None:
    """A client-chosen id: 1-128 characters of letters, digits and `._:@-`, starting with a letter or digit."""
    if not 0 < len(value) <= MAX_ID or ID_PATTERN.fullmatch(value) is None:
        raise InvalidInput(
            f"{field} must be 1-{MAX_ID} letters, digits or . _ : @ - (starting with a letter or digit), "
            f"not {_preview(value)}; choose another id or omit it to get one"
        )


def check_name(field: str, value: str, limit: int = MAX_NAME, *, allow_empty: bool = False) -> None:
    """A one-line string (name, column, table, source): no control characters, at most `limit` characters."""
    _check_length(field, value, limit, allow_empty=allow_empty)
    _check_characters(field, value, _CONTROL)


def check_text(field: str, value: str, limit: int = MAX_TEXT) -> None:
    """Free text (description, reason, comment): tab and newlines allowed, no other control characters."""
    _check_length(field, value, limit, allow_empty=True)
    _check_characters(field, value, _CONTROL_IN_TEXT)


def _check_characters(field: str, value: str, control: re.Pattern[str]) -> None:
    found = control.search(value) or _SURROGATE.search(value)
    if found:
        raise InvalidInput(
            f"{field} contains the control character {found.group()!r} at offset {found.start()}; "
            "remove it and send the request again"
        )


def check_number(field: str, value: float, low: float, high: float, *, low_open: bool = False) -> None:
    """A finite number in [low, high] (or (low, high] with `low_open`)."""
    below = value <= low if low_open else value < low
    if not math.isfinite(value) or below or value > high:
        bracket = "(" if low_open else "["
        raise InvalidInput(f"{field} must be a finite number in {bracket}{low:g}, {high:g}], not {value!r}")


def printable(text: str, limit: int = MAX_TEXT) -> str:
    """`text` made safe to store: control characters (but tab and newline) replaced, cut to `limit`."""
    cleaned = _SURROGATE.sub("\ufffd", _CONTROL_IN_TEXT.sub("\ufffd", text.replace("\r", "")))
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"


def _check_length(field: str, value: str, limit: int, *, allow_empty: bool) -> None:
    if not allow_empty and not value:
        raise InvalidInput(f"{field} must not be empty")
    if len(value) > limit:
        raise InvalidInput(f"{field} is {len(value):,} characters long; the limit is {limit:,}, send a shorter one")


def _preview(value: str) -> str:
    return repr(value) if len(value) <= 40 else f"{value[:40]!r}… ({len(value):,} characters)"
