"""/api/v1/projects/{id}/webhooks and /api/v1/webhooks/{id}: subscriptions and their delivery log.

Managing webhooks is for admins (`manage_webhooks`). A subscription's secret is returned once,
by the POST that creates it (or rotates it), and never again; the log holds it encrypted.
Ids of another tenant's webhooks answer 404, as if they did not exist. Every change is audited.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Query, Response
from pydantic import AfterValidator, Field, StringConstraints

from commands.unit_of_work import execute
from domain import webhook
from domain.errors import InvalidInput
from gateway.auth import Permission
from gateway.dependencies import Auditor, ServicesDep, allowed
from gateway.problems import Problem, not_found
from gateway.routes.jobs import PageOut, page_out
from gateway.validation import RequestBody, Text
from processors.webhooks.signing import encrypt_secret, new_secret
from processors.webhooks.targets import TargetRefused, check_url_host
from projections import directory, webhooks

router = APIRouter(tags=["webhooks"])
MAX_PER_PROJECT = 25
HINT = "list a project's webhooks with GET /api/v1/projects/{project_id}/webhooks"
DELIVERY_STATUSES = ("queued", "sending", "retrying", "delivered", "abandoned")


def _checked(check: Any) -> Any:
    def run(value: Any) -> Any:
        try:
            check(tuple(value) if isinstance(value, list) else value)
        except InvalidInput as error:
            raise ValueError(str(error)) from None
        return value

    return run


WebhookUrl = Annotated[
    str,
    StringConstraints(min_length=1, max_length=webhook.MAX_URL),
    AfterValidator(_checked(webhook.check_url)),
    Field(description="https:// (or http://) URL of the receiver; no credentials, no #fragment"),
]
EventNames = Annotated[
    list[str],
    Field(min_length=1, max_length=len(webhook.SUPPORTED_EVENTS), description=", ".join(webhook.SUPPORTED_EVENTS)),
    AfterValidator(_checked(webhook.check_events)),
]


class WebhookIn(RequestBody):
    url: WebhookUrl
    events: EventNames = Field(default_factory=lambda: list(webhook.SUPPORTED_EVENTS))


class RemoveIn(RequestBody):
    reason: Text = ""


def _server_secrets(services: ServicesDep) -> list[str]:
    secrets = services.settings.connection_secrets
    if not secrets:
        raise Problem(
            503, "Service Unavailable", "webhooks need AFEP_SECRET_KEY to encrypt their secrets; set it and restart"
        )
    return secrets


def _owned(services: ServicesDep, tenant: str, subscription_id: str) -> dict[str, Any]:
    row = webhooks.get_subscription(services.db, tenant, subscription_id)
    if row is None:
        services.projector.catch_up()  # maybe it was just recorded by another process
        row = webhooks.get_subscription(services.db, tenant, subscription_id)
    if row is None:
        raise not_found("webhook", subscription_id, HINT)
    return row


def _active(row: dict[str, Any]) -> None:
    if row["status"] != "active":
        raise Problem(409, "Conflict", f"webhook {row['id']} was removed; create a new one", kind="invalid-transition")


async def _record(services: ServicesDep, auditor: Auditor, command: Any) -> None:
    await anyio.to_thread.run_sync(lambda: execute(services.store, [(command, auditor.context())]))
    await anyio.to_thread.run_sync(services.after_commands)


@router.post("/projects/{project_id}/webhooks", status_code=201)
async def create_webhook(
    project_id: str, body: WebhookIn, services: ServicesDep, auditor: Auditor = allowed(Permission.MANAGE_WEBHOOKS)
) -> dict[str, Any]:
    """Subscribe a URL to the project's events. The answer's `secret` signs every delivery; it is shown only now."""
    tenant = auditor.principal.tenant_id
    if await anyio.to_thread.run_sync(directory.get_project, services.db, tenant, project_id) is None:
        raise not_found("project", project_id, "create it with POST /api/v1/projects")
    try:
        check_url_host(body.url, allow_private=services.settings.webhook_private_targets)
    except TargetRefused as error:
        refused = {"refused": str(error)}
        await anyio.to_thread.run_sync(
            lambda: auditor.record("webhook.create", "project", project_id, new=refused, status=422)
        )
        raise Problem(422, "Unprocessable Content", str(error), kind="webhook-target") from None
    active = await anyio.to_thread.run_sync(webhooks.count_active, services.db, tenant, project_id)
    if active >= MAX_PER_PROJECT:
        raise Problem(
            409, "Conflict", f"project {project_id!r} has {active} webhooks, the most it may have; remove one first"
        )
    secret = new_secret()
    subscription_id = str(uuid.uuid4())
    command = webhook.Subscribe(
        subscription_id,
        tenant,
        project_id,
        body.url,
        tuple(body.events),
        encrypt_secret(secret, _server_secrets(services)),
    )
    await _record(services, auditor, command)
    row = await anyio.to_thread.run_sync(_owned, services, tenant, subscription_id)
    await anyio.to_thread.run_sync(
        lambda: auditor.record(
            "webhook.create", "webhook", subscription_id, new={"url": body.url, "events": body.events}, status=201
        )
    )
    return {**row, "secret": secret}


@router.get("/projects/{project_id}/webhooks")
def list_webhooks(
    project_id: str,
    services: ServicesDep,
    auditor: Auditor = allowed(Permission.MANAGE_WEBHOOKS),
    include_removed: bool = False,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> PageOut:
    tenant = auditor.principal.tenant_id
    if directory.get_project(services.db, tenant, project_id) is None:
        raise not_found("project", project_id, "list them with GET /api/v1/projects")
    page = webhooks.list_subscriptions(
        services.db, tenant, project_id, include_removed=include_removed, cursor=cursor, limit=limit
    )
    return page_out(page)


@router.get("/webhooks/{subscription_id}")
def get_webhook(
    subscription_id: str, services: ServicesDep, auditor: Auditor = allowed(Permission.MANAGE_WEBHOOKS)
) -> dict[str, Any]:
    return _owned(services, auditor.principal.tenant_id, subscription_id)


@router.delete("/webhooks/{subscription_id}", status_code=204)
async def delete_webhook(
    subscription_id: str,
    services: ServicesDep,
    body: RemoveIn | None = None,
    auditor: Auditor = allowed(Permission.MANAGE_WEBHOOKS),
) -> Response:
    """Stop sending: deliveries not yet made are abandoned."""
    before = await anyio.to_thread.run_sync(_owned, services, auditor.principal.tenant_id, subscription_id)
    await _record(services, auditor, webhook.Unsubscribe(subscription_id, (body or RemoveIn()).reason))
    await anyio.to_thread.run_sync(
        lambda: auditor.record(
            "webhook.delete", "webhook", subscription_id, previous={"url": before["url"]}, status=204
        )
    )
    return Response(status_code=204)


@router.post("/webhooks/{subscription_id}/secret")
async def rotate_secret(
    subscription_id: str, services: ServicesDep, auditor: Auditor = allowed(Permission.MANAGE_WEBHOOKS)
) -> dict[str, Any]:
    """A new secret, shown only now; deliveries sent from now on are signed with it."""
    tenant = auditor.principal.tenant_id
    _active(await anyio.to_thread.run_sync(_owned, services, tenant, subscription_id))
    secret = new_secret()
    command = webhook.RotateSecret(subscription_id, encrypt_secret(secret, _server_secrets(services)))
    await _record(services, auditor, command)
    row = await anyio.to_thread.run_sync(_owned, services, tenant, subscription_id)
    await anyio.to_thread.run_sync(lambda: auditor.record("webhook.rotate_secret", "webhook", subscription_id))
    return {**row, "secret": secret}


@router.post("/webhooks/{subscription_id}/test", status_code=202)
async def test_webhook(
    subscription_id: str, services: ServicesDep, auditor: Auditor = allowed(Permission.MANAGE_WEBHOOKS)
) -> dict[str, Any]:
    """Queue a signed `ping` delivery; its attempts show in the delivery log like any other."""
    row = await anyio.to_thread.run_sync(_owned, services, auditor.principal.tenant_id, subscription_id)
    _active(row)
    now = datetime.now(UTC)
    data = {"subscription_id": subscription_id, "project_id": row["project_id"], "message": "a test delivery"}
    delivery_id = str(uuid.uuid4())
    body = webhook.payload(webhook.PING, now.isoformat(), data)
    await _record(services, auditor, webhook.QueueDelivery(delivery_id, subscription_id, webhook.PING, "", body, now))
    await anyio.to_thread.run_sync(lambda: auditor.record("webhook.test", "webhook", subscription_id, status=202))
    return {"delivery_id": delivery_id, "subscription_id": subscription_id, "status": "queued"}


@router.get("/webhooks/{subscription_id}/deliveries")
def list_deliveries(
    subscription_id: str,
    services: ServicesDep,
    auditor: Auditor = allowed(Permission.MANAGE_WEBHOOKS),
    status: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> PageOut:
    """The delivery log, oldest first: each delivery's payload, status and `attempt_log` (every attempt's
    status code, error and time, and when the next one is due)."""
    tenant = auditor.principal.tenant_id
    _owned(services, tenant, subscription_id)
    if status is not None and status not in DELIVERY_STATUSES:
        raise Problem(400, "Bad Request", f"status must be one of {', '.join(DELIVERY_STATUSES)}, not {status!r}")
    page = webhooks.list_deliveries(services.db, tenant, subscription_id, status=status, cursor=cursor, limit=limit)
    return page_out(page)


@router.get("/webhooks/{subscription_id}/deliveries/{delivery_id}")
def get_delivery(
    subscription_id: str,
    delivery_id: str,
    services: ServicesDep,
    auditor: Auditor = allowed(Permission.MANAGE_WEBHOOKS),
) -> dict[str, Any]:
    tenant = auditor.principal.tenant_id
    _owned(services, tenant, subscription_id)
    row = webhooks.get_delivery(services.db, tenant, delivery_id)
    if row is None or row["subscription_id"] != subscription_id:
        services.projector.catch_up()
        row = webhooks.get_delivery(services.db, tenant, delivery_id)
    if row is None or row["subscription_id"] != subscription_id:
        raise not_found("delivery", delivery_id, f"list them with GET /api/v1/webhooks/{subscription_id}/deliveries")
    return row
