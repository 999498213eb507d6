"""The webhook state a process keeps in memory, folded from the log and kept up to date.

`SubscriptionIndex` answers "which subscriptions want this event" for the agent, as of the
event's log position: a subscription made after an event does not get it, one removed
before it does not either, however late the agent reacts. `DeliveryBook` holds the
deliveries not yet delivered or abandoned, for the dispatcher. Both start from position 0
(so a restarted process knows every pending delivery) and then read only what is new; a
follower moves its position up to the log head it saw, so polling an idle log does not scan
the same unrelated events again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from commands.store import EventStore
from domain import webhook
from domain.envelope import Envelope
from domain.events import WEBHOOK_DELIVERY_EVENTS, WEBHOOK_SUBSCRIPTION_EVENTS

log = logging.getLogger("afep.webhooks")
PAGE = 1000


class LogFollower:
    """The events of some types appended after the last call, in log order."""

    def __init__(self, types: Sequence[type]) -> None:
        self.types = tuple(t.__name__ for t in types)
        self.position = 0

    def new(self, store: EventStore) -> Iterator[Envelope]:
        head = store.last_position()
        while True:
            page = store.read_all(after=self.position, limit=PAGE, types=self.types)
            for envelope in page:
                self.position = envelope.position
                yield envelope
            if len(page) < PAGE:
                break
        self.position = max(self.position, head)


@dataclass(frozen=True)
class Entry:
    subscription: webhook.Subscription
    since: int  # log position of WebhookSubscribed
    until: int | None = None  # log position of WebhookUnsubscribed


class SubscriptionIndex:
    def __init__(self) -> None:
        self._follower = LogFollower(WEBHOOK_SUBSCRIPTION_EVENTS)
        self.entries: dict[str, Entry] = {}

    def refresh(self, store: EventStore) -> None:
        for envelope in self._follower.new(store):
            e = envelope.event
            if isinstance(e, webhook.WebhookSubscribed):
                if e.tenant_id != envelope.tenant_id:  # the gateway records both; they must agree
                    log.error(
                        "ignoring webhook %s: recorded by tenant %s for %s",
                        e.subscription_id,
                        envelope.tenant_id,
                        e.tenant_id,
                    )
                    continue
                self.entries[e.subscription_id] = Entry(webhook.evolve_subscription(None, e), envelope.position)
                continue
            entry = self.entries.get(e.subscription_id)
            if entry is None:
                continue
            until = envelope.position if isinstance(e, webhook.WebhookUnsubscribed) else entry.until
            self.entries[e.subscription_id] = Entry(
                webhook.evolve_subscription(entry.subscription, e), entry.since, until
            )

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, subscription_id: str) -> webhook.Subscription | None:
        entry = self.entries.get(subscription_id)
        return entry.subscription if entry else None

    def matching(self, tenant_id: str, project_id: str, event: str, *, position: int) -> list[webhook.Subscription]:
        """The subscriptions active at log `position` that want `event` of the tenant's project."""
        out = []
        for entry in self.entries.values():
            s = entry.subscription.subscribed
            active = entry.since < position and (entry.until is None or entry.until > position)
            if active and s.tenant_id == tenant_id and s.project_id == project_id and event in s.events:
                out.append(entry.subscription)
        return sorted(out, key=lambda s: s.subscription_id)


@dataclass(frozen=True)
class Pending:
    """A delivery not yet delivered or abandoned, with the envelope metadata its events carry on."""

    delivery: webhook.Delivery
    tenant_id: str
    correlation_id: str
    queued_event_id: str

    @property
    def subscription_id(self) -> str:
        return self.delivery.queued.subscription_id

    def wakes_at(self) -> datetime:
        in_flight = self.delivery.in_flight
        return datetime.fromisoformat(in_flight.lease_until if in_flight else self.delivery.due_at)


class DeliveryBook:
    def __init__(self) -> None:
        self._follower = LogFollower(WEBHOOK_DELIVERY_EVENTS)
        self.pending: dict[str, Pending] = {}

    def refresh(self, store: EventStore) -> int:
        """Fold what is new; returns how many events that was."""
        seen = 0
        for envelope in self._follower.new(store):
            seen += 1
            e = envelope.event
            if isinstance(e, webhook.WebhookQueued):
                delivery = webhook.evolve_delivery(None, e)
                self.pending[e.delivery_id] = Pending(
                    delivery, envelope.tenant_id, envelope.correlation_id, envelope.event_id
                )
                continue
            known = self.pending.get(e.delivery_id)
            if known is None:
                continue  # finished already
            delivery = webhook.evolve_delivery(known.delivery, e)
            if delivery.terminal:
                del self.pending[e.delivery_id]
            else:
                self.pending[e.delivery_id] = Pending(
                    delivery, known.tenant_id, known.correlation_id, known.queued_event_id
                )
        return seen

    def due(self, at: datetime) -> list[Pending]:
        """The deliveries a sender may attempt at `at`, oldest due first."""
        return sorted((p for p in self.pending.values() if p.delivery.due(at)), key=Pending.wakes_at)

    def next_wake(self) -> datetime | None:
        return min((p.wakes_at() for p in self.pending.values()), default=None)
