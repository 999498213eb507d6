"""One agent's reaction to one delivered event, exactly once in effect.

The embedded runtime (`processors/runtime.py`) reads an agent's events from the store
in log order and tracks one position per agent. From Kafka an agent gets its events
per partition: in log order within a partition, in no particular order across them. So
the position is tracked per (agent, topic, partition): a delivered event at or below
it was handled already and changes nothing. The reaction itself is the embedded one:
the same `react` policy, the same unit of work, the events and the new position
appended in one transaction; an agent bug fails the job, never the worker.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Sequence
from types import ModuleType
from typing import Any, Literal

from commands.store import ConcurrencyConflict, EventStore, Tracking
from commands.unit_of_work import Trace, execute
from domain.envelope import Context, Envelope
from domain.job import FailJob
from processors.kafka import tracing
from processors.workbench import Workbench

log = logging.getLogger(__name__)
Outcome = Literal["reacted", "duplicate", "ignored"]


def tracking_name(agent: str, topic: str, partition: int) -> str:
    return f"{agent}@{topic}:{partition}"


class Reactor:
    def __init__(self, store: EventStore, bench: Workbench) -> None:
        self.store = store
        self.bench = bench

    def handle(self, agent: ModuleType, envelope: Envelope, topic: str, partition: int) -> Outcome:
        if envelope.event_type not in {t.__name__ for t in agent.SUBSCRIBES}:
            return "ignored"
        name = tracking_name(agent.NAME, topic, partition)
        if self.store.tracking_position(name) >= envelope.position:
            return "duplicate"
        with tracing.reaction_span(agent.NAME, envelope, partition):
            try:
                self._react(agent, envelope, Tracking(name, envelope.position))
            except ConcurrencyConflict:
                # two workers on one partition during a rebalance: the other one committed first
                if self.store.tracking_position(name) >= envelope.position:
                    return "duplicate"
                raise
        return "reacted"

    def _react(self, agent: ModuleType, envelope: Envelope, tracking: Tracking) -> None:
        def context() -> Context:
            return Context(
                at=self.bench.clock(),
                actor=f"agent:{agent.NAME}",
                tenant_id=envelope.tenant_id,
                correlation_id=envelope.correlation_id,
                causation_id=envelope.event_id,
            )

        def emit(commands: Sequence[Any]) -> None:
            if commands:
                ctx = context()
                execute(self.store, [(c, ctx) for c in commands])

        self.bench.emit = emit
        try:
            commands = list(agent.react(envelope, self.store, self.bench))
        except Exception as error:  # an agent bug fails the job, never the worker
            log.exception("agent %s failed on %s", agent.NAME, envelope.event_type)
            job_id = envelope.correlation_id
            reason = f"{agent.NAME} agent crashed on {envelope.event_type}: {type(error).__name__}: {error}"
            commands = [
                Trace(job_id, agent.NAME, "decision", reason, {"traceback": traceback.format_exc(limit=8)}),
                FailJob(job_id, reason, agent.NAME),
            ]
        finally:
            self.bench.emit = lambda commands: None
        ctx = context()
        execute(self.store, [(c, ctx) for c in commands], tracking=tracking)
