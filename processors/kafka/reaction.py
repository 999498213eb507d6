"""One agent's reaction to one delivered event, exactly once in effect.

The embedded runtime (`processors/runtime.py`) reads an agent's events from the store
in log order and tracks one position per agent. From Kafka an agent gets its events
per partition: in log order within a partition, in no particular order across them. So
the position is tracked per (agent, topic, partition): a delivered event at or below
it was handled already and changes nothing. The reaction itself is the embedded one:
`processors.reaction.react`: the same policy, the same unit of work, the events and
the new position appended in one transaction; an agent bug or a refused reaction
fails the job, never the worker.
"""

from __future__ import annotations

import logging
from types import ModuleType
from typing import Literal

from commands.store import ConcurrencyConflict, EventStore, Tracking
from domain.envelope import Envelope
from processors.kafka import tracing
from processors.reaction import react
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
        react(self.store, self.bench, agent, envelope, tracking)
