"""The webhooks read model: subscriptions (never their secret) and the delivery log with every attempt.

Every row carries the subscription's tenant, and every query takes the caller's tenant: a
webhook or delivery of another tenant is simply not found. The secret's ciphertext is not
copied here at all; only the dispatcher reads it, from the log.
"""

from __future__ import annotations

import json
from typing import Any

from domain import webhook
from domain.envelope import Envelope
from projections.database import Database, Row, Tx
from projections.jobs import iso
from projections.pagination import Page, clamp_limit, decode_cursor, page_of

TABLES = ("webhook_subscriptions", "webhook_deliveries", "webhook_attempts")
DDL = (
    """CREATE TABLE IF NOT EXISTS {webhook_subscriptions} (
        id TEXT PRIMARY KEY, seq BIGINT NOT NULL UNIQUE, tenant_id TEXT NOT NULL, project_id TEXT NOT NULL,
        url TEXT NOT NULL, events TEXT NOT NULL, status TEXT NOT NULL, created_at TEXT NOT NULL,
        created_by TEXT NOT NULL, removed_at TEXT, removed_by TEXT, secret_rotated_at TEXT,
        position BIGINT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS {webhook_subscriptions}_project "
    "ON {webhook_subscriptions} (tenant_id, project_id, seq)",
    """CREATE TABLE IF NOT EXISTS {webhook_deliveries} (
        id TEXT PRIMARY KEY, seq BIGINT NOT NULL UNIQUE, subscription_id TEXT NOT NULL, tenant_id TEXT NOT NULL,
        project_id TEXT NOT NULL, event TEXT NOT NULL, source_event_id TEXT NOT NULL, payload TEXT NOT NULL,
        status TEXT NOT NULL, attempts INTEGER NOT NULL, queued_at TEXT NOT NULL, next_attempt_at TEXT,
        finished_at TEXT, last_status_code INTEGER, last_error TEXT, updated_at TEXT NOT NULL,
        position BIGINT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS {webhook_deliveries}_subscription "
    "ON {webhook_deliveries} (tenant_id, subscription_id, seq)",
    """CREATE TABLE IF NOT EXISTS {webhook_attempts} (
        delivery_id TEXT NOT NULL, attempt INTEGER NOT NULL, started_at TEXT NOT NULL, lease_until TEXT NOT NULL,
        finished_at TEXT, outcome TEXT NOT NULL, status_code INTEGER, error TEXT, duration_ms DOUBLE PRECISION,
        next_attempt_at TEXT, PRIMARY KEY (delivery_id, attempt))""",
)
_SUBSCRIPTION = "id, tenant_id, project_id, url, events, status, created_at, created_by, removed_at, removed_by, "
_SUBSCRIPTION += "secret_rotated_at"
_DELIVERY = "id, subscription_id, tenant_id, project_id, event, source_event_id, payload, status, attempts, "
_DELIVERY += "queued_at, next_attempt_at, finished_at, last_status_code, last_error, updated_at"
_ATTEMPT = "attempt, outcome, status_code, error, duration_ms, started_at, finished_at, next_attempt_at"


def apply(tx: Tx, envelope: Envelope) -> None:
    e, at = envelope.event, iso(envelope.occurred_at)
    match e:
        case webhook.WebhookSubscribed():
            tx.execute(
                """INSERT INTO {webhook_subscriptions} (id, seq, tenant_id, project_id, url, events, status,
                    created_at, created_by, position) VALUES (?, ?, ?, ?, ?, ?, 'active', ?, ?, ?)
                ON CONFLICT (id) DO NOTHING""",
                (
                    e.subscription_id,
                    envelope.position,
                    e.tenant_id,
                    e.project_id,
                    e.url,
                    json.dumps(list(e.events)),
                    at,
                    envelope.actor,
                    envelope.position,
                ),
            )
        case webhook.WebhookUnsubscribed():
            tx.execute(
                "UPDATE {webhook_subscriptions} SET status = 'removed', removed_at = ?, removed_by = ?, position = ? "
                "WHERE id = ?",
                (at, envelope.actor, envelope.position, e.subscription_id),
            )
        case webhook.WebhookSecretRotated():
            tx.execute(
                "UPDATE {webhook_subscriptions} SET secret_rotated_at = ?, position = ? WHERE id = ?",
                (at, envelope.position, e.subscription_id),
            )
        case webhook.WebhookQueued():
            owner = tx.one(
                "SELECT tenant_id, project_id FROM {webhook_subscriptions} WHERE id = ?", (e.subscription_id,)
            )
            if owner is None:  # a delivery for a subscription the log never had: nothing to show it to
                return
            tx.execute(
                """INSERT INTO {webhook_deliveries} (id, seq, subscription_id, tenant_id, project_id, event,
                    source_event_id, payload, status, attempts, queued_at, next_attempt_at, updated_at, position)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'queued', 0, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING""",
                (
                    e.delivery_id,
                    envelope.position,
                    e.subscription_id,
                    owner["tenant_id"],
                    owner["project_id"],
                    e.event,
                    e.source_event_id,
                    e.body,
                    at,
                    e.due_at,
                    at,
                    envelope.position,
                ),
            )
        case webhook.WebhookAttemptStarted():
            tx.execute(
                """INSERT INTO {webhook_attempts} (delivery_id, attempt, started_at, lease_until, outcome)
                VALUES (?, ?, ?, ?, 'sending') ON CONFLICT (delivery_id, attempt) DO NOTHING""",
                (e.delivery_id, e.attempt, at, e.lease_until),
            )
            _delivery(tx, envelope, status="sending", attempts=e.attempt, next_attempt_at=None)
        case webhook.WebhookAttemptFailed():
            _attempt(
                tx, e.delivery_id, e.attempt, at, "failed", e.status_code, e.error, e.duration_ms, e.next_attempt_at
            )
            _delivery(
                tx,
                envelope,
                status="retrying",
                next_attempt_at=e.next_attempt_at,
                last_status_code=e.status_code,
                last_error=e.error,
            )
        case webhook.WebhookDelivered():
            _attempt(tx, e.delivery_id, e.attempt, at, "delivered", e.status_code, "", e.duration_ms, None)
            _delivery(tx, envelope, status="delivered", finished_at=at, last_status_code=e.status_code, last_error=None)
        case webhook.WebhookAbandoned():
            _delivery(tx, envelope, status="abandoned", finished_at=at, next_attempt_at=None, last_error=e.reason)


def _attempt(
    tx: Tx,
    delivery_id: str,
    attempt: int,
    at: str,
    outcome: str,
    status_code: int | None,
    error: str,
    duration_ms: float,
    next_attempt_at: str | None,
) -> None:
    tx.execute(
        "UPDATE {webhook_attempts} SET outcome = ?, status_code = ?, error = ?, duration_ms = ?, finished_at = ?, "
        "next_attempt_at = ? WHERE delivery_id = ? AND attempt = ?",
        (outcome, status_code, error, duration_ms, at, next_attempt_at, delivery_id, attempt),
    )


def _delivery(tx: Tx, envelope: Envelope, **values: Any) -> None:
    values = {**values, "updated_at": iso(envelope.occurred_at), "position": envelope.position}
    assignments = ", ".join(f"{name} = ?" for name in values)
    tx.execute(
        f"UPDATE {{webhook_deliveries}} SET {assignments} WHERE id = ?", (*values.values(), envelope.event.delivery_id)
    )


# ----------------------------------------------------------------- queries


def _subscription(row: Row | None) -> Row | None:
    if row is not None:
        row["events"] = json.loads(row["events"])
    return row


def get_subscription(db: Database, tenant_id: str, subscription_id: str) -> Row | None:
    with db.transaction(write=False) as tx:
        row = tx.one(
            f"SELECT {_SUBSCRIPTION} FROM {{webhook_subscriptions}} WHERE id = ? AND tenant_id = ?",
            (subscription_id, tenant_id),
        )
    return _subscription(row)


def list_subscriptions(
    db: Database,
    tenant_id: str,
    project_id: str,
    *,
    include_removed: bool = False,
    cursor: str | None = None,
    limit: int = 50,
) -> Page:
    limit = clamp_limit(limit)
    where = "tenant_id = ? AND project_id = ? AND seq > ?" + ("" if include_removed else " AND status = 'active'")
    with db.transaction(write=False) as tx:
        rows = tx.all(
            f"SELECT seq, {_SUBSCRIPTION} FROM {{webhook_subscriptions}} WHERE {where} ORDER BY seq LIMIT ?",
            (tenant_id, project_id, decode_cursor(cursor) or 0, limit + 1),
        )
    page = page_of(rows, limit)
    return Page([_subscription(r) for r in page.items], page.next_cursor)  # type: ignore[misc]


def count_active(db: Database, tenant_id: str, project_id: str) -> int:
    with db.transaction(write=False) as tx:
        return int(
            tx.scalar(
                "SELECT COUNT(*) AS n FROM {webhook_subscriptions} "
                "WHERE tenant_id = ? AND project_id = ? AND status = 'active'",
                (tenant_id, project_id),
            )
            or 0
        )


def list_deliveries(
    db: Database,
    tenant_id: str,
    subscription_id: str,
    *,
    status: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page:
    """A subscription's deliveries, oldest first, each with `attempts`: every attempt and its outcome."""
    limit = clamp_limit(limit)
    where, params = ["tenant_id = ?", "subscription_id = ?", "seq > ?"], [tenant_id, subscription_id]
    params.append(decode_cursor(cursor) or 0)  # type: ignore[arg-type]
    if status:
        where.append("status = ?")
        params.append(status)
    with db.transaction(write=False) as tx:
        rows = tx.all(
            f"SELECT seq, {_DELIVERY} FROM {{webhook_deliveries}} WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?",
            (*params, limit + 1),
        )
        page = page_of(rows, limit)
        for row in page.items:
            row["attempt_log"] = _attempts(tx, row["id"])
    return page


def get_delivery(db: Database, tenant_id: str, delivery_id: str) -> Row | None:
    with db.transaction(write=False) as tx:
        row = tx.one(
            f"SELECT {_DELIVERY} FROM {{webhook_deliveries}} WHERE id = ? AND tenant_id = ?", (delivery_id, tenant_id)
        )
        if row is not None:
            row["attempt_log"] = _attempts(tx, delivery_id)
    return row


def _attempts(tx: Tx, delivery_id: str) -> list[Row]:
    return tx.all(f"SELECT {_ATTEMPT} FROM {{webhook_attempts}} WHERE delivery_id = ? ORDER BY attempt", (delivery_id,))
