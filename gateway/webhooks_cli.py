"""`afep webhooks add | list | deliveries | remove`: the API's webhook management, for a local operator.

They act on the data dir directly (no data-dir lock: `afep serve` may be running, and it is the
process that sends). Jobs run with `afep run` belong to tenant `default`, project `default`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from click import UsageError  # not gateway.cli's: under `python -m gateway.cli` that class is __main__'s

webhooks_app = typer.Typer(no_args_is_help=True, help="Webhooks: subscribe URLs to a project's events.")
DataDir = Annotated[Path | None, typer.Option("--data-dir", help="all local state (default ./.afep or AFEP_DATA_DIR)")]
Tenant = Annotated[str, typer.Option(help="the tenant whose project it is (`default` for `afep run` jobs)")]


@contextmanager
def _opened(data_dir: Path | None) -> Iterator[tuple[Any, Any, Any]]:
    """(settings, event store, read-model database), the read models caught up with the log."""
    from gateway.cli import _settings
    from gateway.runtime_wiring import build_store
    from projections.database import Database
    from projections.projector import Projector

    settings = _settings(data_dir)
    store = build_store(settings)
    db = Database(settings.database_url or settings.readmodel_db_path)
    try:
        projector = Projector(db, store)
        projector.create_tables()
        projector.catch_up()
        yield settings, store, db
    finally:
        db.close()
        store.close()


def _subscription(db: Any, tenant: str, subscription_id: str) -> dict[str, Any]:
    from projections import webhooks

    row = webhooks.get_subscription(db, tenant, subscription_id)
    if row is None:
        raise UsageError(f"no webhook {subscription_id!r} in tenant {tenant!r}; see `afep webhooks list PROJECT`")
    return row


@webhooks_app.command("add")
def add(
    project: Annotated[str, typer.Argument(help="project id")],
    url: Annotated[str, typer.Argument(help="https:// URL of the receiver")],
    tenant: Tenant = "default",
    event: Annotated[list[str] | None, typer.Option(help="an event to send (repeatable; default all)")] = None,
    data_dir: DataDir = None,
) -> None:
    """Subscribe URL to the project's events; prints the webhook id, then its secret (shown only now)."""
    from commands.unit_of_work import execute
    from domain import webhook
    from domain.envelope import Context
    from gateway.cli import _actor
    from processors.webhooks.signing import encrypt_secret, new_secret
    from processors.webhooks.targets import TargetRefused, check_url_host

    with _opened(data_dir) as (settings, store, _db):
        if not settings.connection_secrets:
            raise UsageError("webhook secrets are stored encrypted; set AFEP_SECRET_KEY (the server's) first")
        try:
            check_url_host(url, allow_private=settings.webhook_private_targets)
        except TargetRefused as error:
            raise UsageError(str(error)) from None
        secret = new_secret()
        subscription_id = str(uuid.uuid4())
        events = tuple(event or webhook.SUPPORTED_EVENTS)
        command = webhook.Subscribe(
            subscription_id, tenant, project, url, events, encrypt_secret(secret, settings.connection_secrets)
        )
        execute(store, [(command, Context(at=datetime.now(UTC), actor=_actor(), tenant_id=tenant))])
    print(subscription_id)
    print(secret)


@webhooks_app.command("list")
def list_(
    project: Annotated[str, typer.Argument(help="project id")],
    tenant: Tenant = "default",
    removed: Annotated[bool, typer.Option("--removed", help="removed ones too")] = False,
    data_dir: DataDir = None,
) -> None:
    """The project's webhooks as JSON lines (never their secret)."""
    from projections import webhooks

    with _opened(data_dir) as (_, _, db):
        page = webhooks.list_subscriptions(db, tenant, project, include_removed=removed, limit=500)
    for row in page.items:
        print(json.dumps({k: v for k, v in row.items() if k != "seq"}))


@webhooks_app.command("deliveries")
def deliveries(
    webhook_id: Annotated[str, typer.Argument(help="webhook id")],
    tenant: Tenant = "default",
    data_dir: DataDir = None,
) -> None:
    """The webhook's deliveries as JSON lines, each with every attempt (`attempt_log`)."""
    from projections import webhooks

    with _opened(data_dir) as (_, _, db):
        _subscription(db, tenant, webhook_id)
        cursor = None
        while True:
            page = webhooks.list_deliveries(db, tenant, webhook_id, cursor=cursor, limit=500)
            for row in page.items:
                print(json.dumps({k: v for k, v in row.items() if k != "seq"}))
            if page.next_cursor is None:
                return
            cursor = page.next_cursor


@webhooks_app.command("remove")
def remove(
    webhook_id: Annotated[str, typer.Argument(help="webhook id")],
    tenant: Tenant = "default",
    data_dir: DataDir = None,
) -> None:
    """Stop sending to the webhook; its pending deliveries are abandoned."""
    from commands.unit_of_work import execute
    from domain.envelope import Context
    from domain.webhook import Unsubscribe
    from gateway.cli import _actor

    with _opened(data_dir) as (_, store, db):
        _subscription(db, tenant, webhook_id)
        ctx = Context(at=datetime.now(UTC), actor=_actor(), tenant_id=tenant)
        execute(store, [(Unsubscribe(webhook_id, "removed with `afep webhooks remove`"), ctx)])


def register(app: typer.Typer) -> None:
    app.add_typer(webhooks_app, name="webhooks")
