"""Webhooks on the Kafka runtime: `afep worker --agents webhooks` queues the deliveries and sends them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from commands.unit_of_work import execute
from domain import feature, webhook
from domain.envelope import Context
from processors.webhooks.signing import encrypt_secret, new_secret, verify, verify_body_field
from tests.integration.kafka.test_distributed import wait_until
from tests.webhook_receiver import receiver, selected_feature

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
SECRET_KEY = "kafka-webhook-suite-secret-0123456789abcdef"


def test_a_worker_running_the_webhooks_agent_sends_signed_deliveries_with_retries(cluster: Any) -> None:
    cluster.env.update(
        {
            "AFEP_SECRET_KEY": SECRET_KEY,
            "AFEP_WEBHOOK_PRIVATE_TARGETS": "true",
            "AFEP_WEBHOOK_BACKOFF_SECONDS": "0.2",
            "AFEP_WEBHOOK_BACKOFF_MAX_SECONDS": "0.5",
        }
    )
    secret = new_secret()
    with receiver(script=[503]) as hooks:
        store = cluster.open_store()
        try:
            at = datetime.now(UTC)
            subscribe = webhook.Subscribe(
                "s1", "acme", "risk", hooks.url, ("feature.approved",), encrypt_secret(secret, SECRET_KEY)
            )
            execute(store, [(subscribe, Context(at=at, actor="key:admin", tenant_id="acme"))])
            selected_feature(store)
            approve = feature.ApproveFeature("f1", "ok")
            execute(store, [(approve, Context(at=at, actor="key:admin", tenant_id="acme", correlation_id="j1"))])
            cluster.start("relay", "relay")
            cluster.start("worker", "worker", "--agents", "webhooks", "--instance", "hooks")
            wait_until(lambda: any(r.status == 200 for r in hooks.got()), "the webhook", cluster, timeout=300)
            delivered = [e.event for e in store.read_all(limit=100_000, types=["WebhookDelivered"])]
            assert [d.attempt for d in delivered] == [2]
        finally:
            store.close()
        got = hooks.got()
        assert [r.status for r in got] == [503, 200]
        for request in got:
            assert verify(secret, request.body, request.headers["x-afep-signature"])
            assert verify_body_field(secret, request.body)
        body = json.loads(got[-1].body)
        assert body["event"] == "feature.approved" and body["data"]["approved_by"] == "key:admin"
