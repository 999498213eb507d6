"""docs/events.md, where each event is decided, handled and projected, is generated from the code
and current; every event has a place where it is decided."""

from __future__ import annotations

from domain.events import EVENT_TYPES
from ops.event_map import DOC, render


def test_the_event_map_is_current() -> None:
    assert DOC.read_text() == render(), "docs/events.md is stale: run `python -m ops.event_map`"


def test_every_event_is_decided_somewhere_and_listed_once() -> None:
    rows = [line for line in render().splitlines() if line.startswith("| `")]
    assert sorted(row.split("`")[1] for row in rows) == sorted(EVENT_TYPES)
    for row in rows:
        event, decided = (cell.strip() for cell in row.strip("|").split("|")[:2])
        assert decided != "—" and ("domain/" in decided or "commands/" in decided), event
