"""Webhooks agent: queues one delivery per subscription that wants a job or feature event.

It reacts to the events in `processors/webhooks/payloads.py` (job.started … feature.deprecated)
and sends nothing itself: it appends `WebhookQueued` with the exact body, for the dispatcher
(`processors/webhooks/dispatcher.py`) to send with retries. The subscriptions are those of the
job's own tenant and project that were active at the event's log position; a delivery's id is
derived from (subscription, event), so a redelivered event queues nothing twice.

A webhook must never fail a job: if describing the event fails, the agent records why in the
job's trace and moves on instead of raising (which would fail the job).
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from commands.store import EventStore
from commands.unit_of_work import Trace
from domain import webhook
from domain.envelope import Envelope
from processors.webhooks.book import SubscriptionIndex
from processors.webhooks.payloads import EVENT_NAMES, describe, webhook_event
from processors.workbench import Workbench

NAME = "webhooks"
SUBSCRIBES = tuple(dict.fromkeys(EVENT_NAMES))
DELIVERY_NAMESPACE = uuid.UUID("0d7c6a0e-5a0b-4f0e-9f3e-2b6f1c9a4e57")
log = logging.getLogger("afep.webhooks")


def delivery_id(subscription_id: str, event_id: str) -> str:
    return str(uuid.uuid5(DELIVERY_NAMESPACE, f"{subscription_id}:{event_id}"))


def react(envelope: Envelope, store: EventStore, bench: Workbench) -> list[Any]:
    name = webhook_event(envelope)
    if name is None:
        return []
    index: SubscriptionIndex = bench.memo(("webhook-subscriptions", id(store)), SubscriptionIndex)
    try:
        index.refresh(store)
        if not len(index):
            return []
        subject = describe(envelope, store, bench.datasets_dir.parent)
        if subject is None:
            return []
        wanted = index.matching(subject.tenant_id, subject.project_id, name, position=envelope.position)
        if not wanted:
            return []
        body = webhook.payload(name, _utc(envelope.occurred_at).isoformat(), subject.data)
    except Exception as error:  # a webhook must never fail the job it reports on
        log.exception("webhooks for %s at %d not queued", envelope.event_type, envelope.position)
        message = f"{name} webhooks not queued: {type(error).__name__}: {error}"
        return [Trace(envelope.correlation_id, NAME, "decision", message)]
    at = bench.clock()
    return [
        webhook.QueueDelivery(
            delivery_id(s.subscription_id, envelope.event_id), s.subscription_id, name, envelope.event_id, body, at
        )
        for s in wanted
    ]


def _utc(at: datetime) -> datetime:
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC)
