"""Load -> decide -> append, for a batch of commands, in one transaction.

A processor's reaction (or an API call) hands its commands to a `UnitOfWork`;
`commit` appends every resulting event, each at its stream's next version, plus
the processor's tracking position, atomically. A concurrency conflict rolls the
whole batch back; `execute` then decides again from fresh state (a repeated
command decides nothing, so a retry never duplicates).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from commands.store import ConcurrencyConflict, EventStore, Tracking
from domain import activity, feature, job, webhook
from domain.envelope import Context, Envelope

EVENT_ID_NAMESPACE = uuid.UUID("6f1c2a52-8f7e-4d55-9a67-4c3b1d0e2a11")


@dataclass(frozen=True)
class Route:
    stream: Callable[[Any], str]
    decide: Callable[[Any, Any], tuple[Any, ...]]
    evolve: Callable[[Any, Any], Any]


JOB_ROUTE = Route(lambda c: job.job_stream(c.job_id), job.decide, job.evolve)
FEATURE_ROUTE = Route(lambda c: feature.feature_stream(c.feature_id), feature.decide, feature.evolve)
SUBSCRIPTION_ROUTE = Route(
    lambda c: webhook.subscription_stream(c.subscription_id), webhook.decide_subscription, webhook.evolve_subscription
)
DELIVERY_ROUTE = Route(
    lambda c: webhook.delivery_stream(c.delivery_id), webhook.decide_delivery, webhook.evolve_delivery
)
ROUTES: dict[type, Route] = {
    **{cmd: JOB_ROUTE for cmd in job.JobCommand.__args__},  # type: ignore[attr-defined]
    **{cmd: FEATURE_ROUTE for cmd in feature.FeatureCommand.__args__},  # type: ignore[attr-defined]
    **{cmd: SUBSCRIPTION_ROUTE for cmd in webhook.SubscriptionCommand.__args__},  # type: ignore[attr-defined]
    **{cmd: DELIVERY_ROUTE for cmd in webhook.DeliveryCommand.__args__},  # type: ignore[attr-defined]
}


@dataclass(frozen=True)
class Trace:
    """A command to record an agent's thought, tool call, tool result or decision."""

    job_id: str
    agent: str
    kind: str
    message: str
    data: dict[str, Any] | None = None


@dataclass(frozen=True)
class Progress:
    job_id: str
    agent: str
    stage: str
    done: int
    total: int
    message: str = ""


Command = Any  # a job/feature command, Trace or Progress


def event_id(stream_id: str, version: int) -> str:
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, f"{stream_id}:{version}"))


class UnitOfWork:
    def __init__(self, store: EventStore) -> None:
        self.store = store
        self._states: dict[str, tuple[Any, int]] = {}
        self.pending: list[Envelope] = []

    def load(self, stream_id: str, evolve: Callable[[Any, Any], Any]) -> tuple[Any, int]:
        if stream_id not in self._states:
            state, version = None, 0
            for envelope in self.store.read_stream(stream_id):
                state, version = evolve(state, envelope.event), envelope.version
            self._states[stream_id] = (state, version)
        return self._states[stream_id]

    def handle(self, command: Command, ctx: Context) -> tuple[Any, ...]:
        if isinstance(command, (Trace, Progress)):
            return (self._activity(command, ctx),)
        route = ROUTES.get(type(command))
        if route is None:
            raise TypeError(f"no handler for {type(command).__name__}")
        stream_id = route.stream(command)
        state, version = self.load(stream_id, route.evolve)
        events = route.decide(command, state)
        for event in events:
            version += 1
            state = route.evolve(state, event)
            self.pending.append(self._envelope(event, stream_id, version, ctx))
        self._states[stream_id] = (state, version)
        return events

    def _activity(self, command: Trace | Progress, ctx: Context) -> Any:
        stream_id = activity.activity_stream(command.job_id, command.agent)
        _, version = self.load(stream_id, lambda s, e: None)
        event: Any
        if isinstance(command, Trace):
            data = json.dumps(command.data or {}, default=str, sort_keys=True)
            event = activity.AgentTraced(command.job_id, command.agent, command.kind, command.message, data)
        else:
            event = activity.ProgressReported(
                command.job_id, command.agent, command.stage, command.done, command.total, command.message
            )
        self.pending.append(self._envelope(event, stream_id, version + 1, ctx))
        self._states[stream_id] = (None, version + 1)
        return event

    def _envelope(self, event: Any, stream_id: str, version: int, ctx: Context) -> Envelope:
        return Envelope(
            event=event,
            stream_id=stream_id,
            version=version,
            event_id=event_id(stream_id, version),
            occurred_at=ctx.at,
            correlation_id=ctx.correlation_id or getattr(event, "job_id", ""),
            causation_id=ctx.causation_id,
            actor=ctx.actor,
            tenant_id=ctx.tenant_id,
        )

    def commit(self, tracking: Tracking | None = None) -> list[Envelope]:
        positions = self.store.append(self.pending, tracking=tracking)
        recorded = [replace(e, position=p) for e, p in zip(self.pending, positions, strict=False)]
        self.pending = []
        return recorded


def execute(
    store: EventStore,
    commands: Sequence[tuple[Command, Context]],
    *,
    tracking: Tracking | None = None,
    attempts: int = 5,
) -> list[Envelope]:
    """Decide and append a batch of commands atomically, retrying on concurrency conflicts."""
    for attempt in range(attempts):
        uow = UnitOfWork(store)
        for command, ctx in commands:
            uow.handle(command, ctx)
        try:
            return uow.commit(tracking)
        except ConcurrencyConflict:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def load_state(store: EventStore, stream_id: str, evolve: Callable[[Any, Any], Any]) -> tuple[Any, int]:
    return UnitOfWork(store).load(stream_id, evolve)


def load_job(store: EventStore, job_id: str) -> job.Job | None:
    return load_state(store, job.job_stream(job_id), job.evolve)[0]  # type: ignore[no-any-return]


def load_feature(store: EventStore, feature_id: str) -> feature.Feature | None:
    return load_state(store, feature.feature_stream(feature_id), feature.evolve)[0]  # type: ignore[no-any-return]
