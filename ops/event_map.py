"""Where every event is decided, handled and projected: `docs/events.md`, read from the code.

    python -m ops.event_map            # rewrite docs/events.md
    python -m ops.event_map --check    # exit 1 when docs/events.md is stale (the test suite runs this)

Decided: the functions under `domain/` and `commands/` that construct the event (a `decide`
returning it, or the unit of work recording a trace). Handled: the agents whose `SUBSCRIBES`
name it (`processors/agents/`), plus the webhook dispatcher and the relay for their families.
Projected: the read-model modules under `projections/` that name it (a `case`, an `isinstance`);
the ClickHouse `events` table keeps every event, `projections/history.py` replays them.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "events.md"
# Keep every event, or fold them on demand: named in the header, not per event.
NOT_READ_MODELS = frozenset({"clickhouse.py", "history.py"})


def _constructed(folder: str, names: set[str]) -> dict[str, list[str]]:
    """event name -> ['domain/job.py:decide', …]: where a call `EventName(…)` appears."""
    found: dict[str, list[str]] = defaultdict(list)
    for path in sorted((ROOT / folder).rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        rel = path.relative_to(ROOT).as_posix()
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Call):
                    f = node.func
                    name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
                    where = f"{rel}:{fn.name}"
                    if name in names and where not in found[name]:
                        found[name].append(where)
    return found


def _referenced(folder: str, names: set[str], families: dict[str, tuple[type, ...]]) -> dict[str, list[str]]:
    """event name -> ['projections/jobs.py', …]: read-model modules that name the event class (a
    `case EventName()`, an `isinstance`, a tuple of them) or a family of them (`ACTIVITY_EVENTS`)."""
    found: dict[str, list[str]] = defaultdict(list)
    for path in sorted((ROOT / folder).glob("*.py")):
        if path.name in NOT_READ_MODELS:
            continue
        tree = ast.parse(path.read_text(), str(path))
        rel = path.relative_to(ROOT).as_posix()
        for node in ast.walk(tree):
            name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""
            for event in [name] if name in names else [e.__name__ for e in families.get(name, ())]:
                if rel not in found[event]:
                    found[event].append(rel)
    return found


def render() -> str:
    from domain.events import (
        ACTIVITY_EVENTS,
        EVENT_TYPES,
        FEATURE_EVENTS,
        JOB_EVENTS,
        WEBHOOK_DELIVERY_EVENTS,
        WEBHOOK_SUBSCRIPTION_EVENTS,
    )
    from processors.agents import AGENTS

    names = set(EVENT_TYPES)
    decided = _constructed("domain", names)
    for name, places in _constructed("commands", names).items():
        decided[name] += places
    families = {
        "ACTIVITY_EVENTS": ACTIVITY_EVENTS,
        "FEATURE_EVENTS": FEATURE_EVENTS,
        "JOB_EVENTS": JOB_EVENTS,
        "WEBHOOK_DELIVERY_EVENTS": WEBHOOK_DELIVERY_EVENTS,
        "WEBHOOK_SUBSCRIPTION_EVENTS": WEBHOOK_SUBSCRIPTION_EVENTS,
    }
    projected = _referenced("projections", names, families)
    handlers: dict[str, list[str]] = defaultdict(list)
    for agent in AGENTS:
        for event in agent.SUBSCRIBES:
            handlers[event.__name__].append(f"{agent.NAME} (`{agent.__name__.replace('.', '/')}.py`)")
    for event in WEBHOOK_DELIVERY_EVENTS + WEBHOOK_SUBSCRIPTION_EVENTS:
        handlers[event.__name__].append("webhook dispatcher (`processors/webhooks/book.py`)")

    lines = [
        "# Events: where each is decided, handled and projected",
        "",
        "Generated from the code by `python -m ops.event_map` (a test fails when this file is stale).",
        "Every event is appended to the log by `commands/unit_of_work.py` (load, decide, append), published",
        "to Kafka by the relay (`processors/kafka/relay.py`) in the distributed runtime, and kept in",
        "ClickHouse's `events` table (`projections/clickhouse.py`) for audit and analytics;",
        "`projections/history.py` folds a job's events as of any time or log position (replay).",
        "",
    ]
    groups = (
        ("Job", JOB_EVENTS),
        ("Feature", FEATURE_EVENTS),
        ("Activity", ACTIVITY_EVENTS),
        ("Webhook", WEBHOOK_SUBSCRIPTION_EVENTS + WEBHOOK_DELIVERY_EVENTS),
    )
    for title, events in groups:
        lines += [f"## {title} events", "", "| event | decided in | handled by | projected in |", "|---|---|---|---|"]
        for event in events:
            name = event.__name__
            cells = (
                "<br>".join(f"`{p}`" for p in decided.get(name, [])) or "—",
                "<br>".join(handlers.get(name, [])) or "—",
                "<br>".join(f"`{p}`" for p in projected.get(name, [])) or "—",
            )
            lines.append(f"| `{name}` | {' | '.join(cells)} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not DOC.exists() or DOC.read_text() != text:
            print(f"{DOC.relative_to(ROOT)} is stale: run `python -m ops.event_map`", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(text)
    print(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
