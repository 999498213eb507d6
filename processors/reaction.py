"""One agent's reaction to one event, recorded with the agent's position: the step both
runtimes take (the embedded loop in `runtime.py`, the Kafka workers in `kafka/reaction.py`).

The agent's policy turns the envelope into commands; they are appended together with
the agent's new tracking position in one transaction, so a redelivered or replayed
event changes nothing. Interim results go out through `bench.emit` while the policy
runs. An agent bug, or commands the domain refuses, fail that job with the reason and
the position moves on: one bad event never stalls an agent for every other job.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from commands.store import EventStore, Tracking
from commands.unit_of_work import Trace, execute
from domain.envelope import Context, Envelope
from domain.errors import DomainError
from domain.job import FailJob
from domain.validation import printable
from processors.workbench import Workbench

log = logging.getLogger(__name__)
Publish = Callable[[Sequence[Envelope]], None]
# What a reaction's commands can meet that retrying would only meet again: the domain refusing
# them, or a command that cannot be encoded. Anything else (the store is down) is retried.
REFUSALS = (DomainError, TypeError, ValueError)
MAX_REASON = 4000


def react(
    store: EventStore,
    bench: Workbench,
    agent: ModuleType,
    envelope: Envelope,
    tracking: Tracking,
    publish: Publish = lambda recorded: None,
) -> Sequence[Envelope]:
    """Run `agent`'s policy on `envelope` and record the outcome at `tracking`; returns what was appended
    last (interim emits go to `publish` as they are committed)."""

    def context() -> Context:  # read the clock at each commit: occurred_at is when it was recorded
        return Context(
            at=bench.clock(),
            actor=f"agent:{agent.NAME}",
            tenant_id=envelope.tenant_id,
            correlation_id=envelope.correlation_id,
            causation_id=envelope.event_id,
        )

    def emit(commands: Sequence[Any]) -> None:
        if commands:
            ctx = context()
            publish(execute(store, [(c, ctx) for c in commands]))

    bench.emit = emit
    try:
        commands = list(agent.react(envelope, store, bench))
    except Exception as error:  # an agent bug fails the job, never the runtime
        log.exception("agent %s failed on %s", agent.NAME, envelope.event_type)
        reason = f"{agent.NAME} agent crashed on {envelope.event_type}: {type(error).__name__}: {error}"
        commands = failure(agent, envelope, reason)
    finally:
        bench.emit = lambda commands: None
    ctx = context()
    try:
        return execute(store, [(c, ctx) for c in commands], tracking=tracking)
    except REFUSALS as error:  # a refused reaction fails its job; the agent moves on to the next event
        log.warning("agent %s: the domain refused its reaction to %s: %s", agent.NAME, envelope.event_type, error)
        reason = f"{agent.NAME} agent's reaction to {envelope.event_type} was refused: {error}"
        return _record_failure(store, agent, envelope, reason, tracking, ctx)


def failure(agent: ModuleType, envelope: Envelope, reason: str) -> list[Any]:
    """The commands that fail the envelope's job with `reason` (cleaned: a failure is always recordable)."""
    job_id = envelope.correlation_id
    reason = printable(reason, MAX_REASON)
    return [
        Trace(job_id, agent.NAME, "decision", reason, {"traceback": printable(traceback.format_exc(limit=8))}),
        FailJob(job_id, reason, agent.NAME),
    ]


def _record_failure(
    store: EventStore, agent: ModuleType, envelope: Envelope, reason: str, tracking: Tracking, ctx: Context
) -> Sequence[Envelope]:
    """Fail the job with `reason`; when even that is refused (no such job), only move the position on."""
    try:
        return execute(store, [(c, ctx) for c in failure(agent, envelope, reason)], tracking=tracking)
    except REFUSALS as error:
        log.warning(
            "agent %s: could not fail job %s (%s); skipping the event", agent.NAME, envelope.correlation_id, error
        )
        return execute(store, [], tracking=tracking)
