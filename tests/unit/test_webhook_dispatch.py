"""The webhooks agent (who gets what) and the dispatcher (claims, retries, lost attempts), on the in-memory store."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from commands.memory_store import InMemoryEventStore
from commands.unit_of_work import execute
from domain import feature, webhook
from domain.envelope import Context
from processors.agents import webhooks as agent
from processors.runtime import LocalRuntime
from processors.webhooks.dispatcher import Dispatcher
from processors.webhooks.sender import Outcome
from processors.webhooks.signing import encrypt_secret, verify, verify_body_field
from processors.workbench import Workbench
from tests.webhook_receiver import selected_feature

SERVER_KEY = "unit-test-server-key"
SECRET = "whsec_unit"
POLICY = webhook.RetryPolicy(max_attempts=3, base_seconds=1.0, max_seconds=8.0)
T0 = datetime(2026, 1, 2, tzinfo=UTC)


def subscribe(
    store: Any, sid: str, *, tenant: str = "acme", project: str = "risk", events: tuple[str, ...] = ()
) -> None:
    command = webhook.Subscribe(
        sid,
        tenant,
        project,
        f"https://{sid}.example.com/hook",
        events or webhook.SUPPORTED_EVENTS,
        encrypt_secret(SECRET, SERVER_KEY),
    )
    execute(store, [(command, Context(at=T0, actor="key:admin", tenant_id=tenant))])


def runtime(store: Any, tmp_path: Path) -> LocalRuntime:
    bench = Workbench(datasets_dir=tmp_path / "d", artifacts_dir=tmp_path / "a", clock=lambda: T0)
    return LocalRuntime(store, bench, agents=[agent])


def approve(store: Any, feature_id: str = "f1", actor: str = "key:boss", tenant: str = "acme") -> None:
    ctx = Context(at=T0, actor=actor, tenant_id=tenant, correlation_id="j1")
    execute(store, [(feature.ApproveFeature(feature_id, "ship it"), ctx)])


def queued(store: Any) -> list[webhook.WebhookQueued]:
    return [e.event for e in store.read_all(types=["WebhookQueued"])]


def test_each_subscription_of_the_jobs_tenant_and_project_gets_the_events_it_wants(tmp_path: Path) -> None:
    store = InMemoryEventStore()
    subscribe(store, "all")
    subscribe(store, "approvals", events=("feature.approved",))
    subscribe(store, "other-project", project="fraud")
    subscribe(store, "other-tenant", tenant="globex")  # the same project id, another tenant
    selected_feature(store)
    approve(store)
    rt = runtime(store, tmp_path)
    rt.run_until_idle()
    rt.run_until_idle()
    got = sorted((q.subscription_id, q.event) for q in queued(store))
    assert got == [
        ("all", "feature.approved"),
        ("all", "feature.generated"),
        ("all", "job.started"),
        ("approvals", "feature.approved"),
    ]
    approved = next(q for q in queued(store) if q.event == "feature.approved")
    body = json.loads(approved.body)
    assert body["event"] == "feature.approved" and set(body) == {"event", "timestamp", "data"}
    assert body["data"] == {
        "feature_id": "f1",
        "feature_name": "dti_f1",
        "project_id": "risk",
        "job_id": "j1",
        "approved_by": "key:boss",
        "comment": "ship it",
        "feast_feature_view": None,
    }
    deliveries = {e.stream_id for e in store.read_all(types=["WebhookQueued"])}
    assert all(e.tenant_id == "acme" for e in store.read_all(types=["WebhookQueued"])) and len(deliveries) == 4


def test_a_subscription_gets_only_events_after_it_and_before_its_removal(tmp_path: Path) -> None:
    store = InMemoryEventStore()
    selected_feature(store)  # job.started and feature.generated happen before any subscription
    subscribe(store, "late")
    selected_feature(store, feature_id="f2")
    execute(store, [(webhook.Unsubscribe("late"), Context(at=T0, tenant_id="acme"))])
    approve(store, "f2")
    runtime(store, tmp_path).run_until_idle()  # the agent reacts late, after the removal: as of each event
    assert [(q.event, json.loads(q.body)["data"]["feature_id"]) for q in queued(store)] == [("feature.generated", "f2")]


def test_the_feature_store_view_is_in_the_approval_when_it_was_registered_first(tmp_path: Path) -> None:
    store = InMemoryEventStore()
    subscribe(store, "s", events=("feature.approved", "feature.deprecated"))
    selected_feature(store)
    approve(store)
    ctx = Context(at=T0, actor="agent:feature_store", tenant_id="acme", correlation_id="j1")
    register = feature.RecordRegistration("f1", "risk_features_v1", 1, "id", 86400, True, "registered", "h")
    execute(store, [(register, ctx)])
    execute(store, [(feature.DeprecateFeature("f1", "drift"), Context(at=T0, actor="key:boss", tenant_id="acme"))])
    runtime(store, tmp_path).run_until_idle()
    data = {q.event: json.loads(q.body)["data"] for q in queued(store)}
    assert data["feature.approved"]["feast_feature_view"] == "risk_features_v1"
    assert data["feature.deprecated"]["feast_feature_view"] == "risk_features_v1"
    assert data["feature.deprecated"]["reason"] == "drift" and data["feature.deprecated"]["deprecated_by"] == "key:boss"


def test_a_failed_job_tells_its_reason_without_the_data_dir(tmp_path: Path) -> None:
    from domain.job import FailJob

    store = InMemoryEventStore()
    subscribe(store, "s", events=("job.failed",))
    selected_feature(store)
    reason = f"cannot read {tmp_path.resolve()}/datasets/j1.parquet"
    execute(store, [(FailJob("j1", reason, "schema"), Context(at=T0, tenant_id="acme", correlation_id="j1"))])
    runtime(store, tmp_path).run_until_idle()
    (failed,) = queued(store)
    assert json.loads(failed.body)["data"]["reason"] == "cannot read <data dir>/datasets/j1.parquet"


class ScriptedSender:
    def __init__(self, statuses: list[int | None], during: Callable[[], None] | None = None) -> None:
        self.statuses = statuses
        self.sent: list[tuple[str, bytes, dict[str, str]]] = []
        self.during = during

    def send(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
        self.sent.append((url, body, headers))
        if self.during is not None:
            self.during()
        status = self.statuses.pop(0) if self.statuses else 200
        return Outcome(status, "" if status and status < 300 else "refused" if status is None else "", 5.0)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def dispatcher(store: Any, sender: Any, clock: Clock, **kw: Any) -> Dispatcher:
    return Dispatcher(
        store,
        sender,
        server_secrets=[SERVER_KEY],
        policy=POLICY,
        timeout_seconds=1.0,
        clock=clock,
        jitter=lambda: 0.5,
        **kw,
    )


def one_queued(tmp_path: Path) -> InMemoryEventStore:
    store = InMemoryEventStore()
    subscribe(store, "s", events=("feature.approved",))
    selected_feature(store)
    approve(store)
    runtime(store, tmp_path).run_until_idle()
    assert len(queued(store)) == 1
    return store


def attempts(store: Any) -> list[tuple[str, Any, Any]]:
    out = []
    for e in store.read_all(types=["WebhookAttemptFailed", "WebhookDelivered", "WebhookAbandoned"]):
        ev = e.event
        out.append(
            (e.event_type, getattr(ev, "attempt", getattr(ev, "attempts", None)), getattr(ev, "status_code", None))
        )
    return out


def test_retries_back_off_and_the_same_signed_bytes_are_sent_each_time(tmp_path: Path) -> None:
    store = one_queued(tmp_path)
    clock = Clock()
    sender = ScriptedSender([500, None, 200])
    d = dispatcher(store, sender, clock)
    d.run_until_idle()
    assert attempts(store) == [("WebhookAttemptFailed", 1, 500)]
    clock.now += timedelta(seconds=0.99)
    d.run_until_idle()
    assert len(sender.sent) == 1  # not due yet: 1 s after the first failure
    clock.now += timedelta(seconds=0.02)
    d.run_until_idle()
    clock.now += timedelta(seconds=1.9)
    d.run_until_idle()
    assert len(sender.sent) == 2  # the second wait is 2 s
    clock.now += timedelta(seconds=0.2)
    d.run_until_idle()
    assert attempts(store) == [
        ("WebhookAttemptFailed", 1, 500),
        ("WebhookAttemptFailed", 2, None),
        ("WebhookDelivered", 3, 200),
    ]
    bodies = {body for _, body, _ in sender.sent}
    assert len(bodies) == 1
    (body,) = bodies
    for _, _, headers in sender.sent:
        assert verify(SECRET, body, headers["X-AFEP-Signature"])
    assert verify_body_field(SECRET, body)
    assert [h["X-AFEP-Attempt"] for _, _, h in sender.sent] == ["1", "2", "3"]
    assert len({h["X-AFEP-Delivery"] for _, _, h in sender.sent}) == 1
    assert d.book.pending == {}


def test_a_delivery_is_abandoned_after_the_last_attempt(tmp_path: Path) -> None:
    store = one_queued(tmp_path)
    clock = Clock()
    d = dispatcher(store, ScriptedSender([503, 503, 503, 200]), clock)
    for _ in range(6):
        d.run_until_idle()
        clock.now += timedelta(seconds=5)
    assert [a[0] for a in attempts(store)] == ["WebhookAttemptFailed"] * 3 + ["WebhookAbandoned"]


def test_two_dispatchers_never_send_the_same_attempt(tmp_path: Path) -> None:
    store = one_queued(tmp_path)
    clock = Clock()
    second_sender = ScriptedSender([])
    second = dispatcher(store, second_sender, clock)
    stale = second.due()  # both see the delivery due
    outcomes: list[str] = []

    def race() -> None:  # while the first one is sending, the second one tries the same delivery
        outcomes.extend(second.attempt(p) for p in stale)

    first = dispatcher(store, ScriptedSender([200], during=race), clock)
    assert [first.attempt(p) for p in first.due()] == ["delivered"]
    assert outcomes == ["taken"] and second_sender.sent == []  # its claim decided nothing: in flight
    assert second.due() == [] and [a[0] for a in attempts(store)] == ["WebhookDelivered"]


def test_an_attempt_whose_sender_died_is_taken_over_after_its_lease(tmp_path: Path) -> None:
    store = one_queued(tmp_path)
    clock = Clock()
    crashed = dispatcher(store, ScriptedSender([]), clock)
    (pending,) = crashed.due()
    execute(store, [(webhook.StartAttempt(pending.delivery.delivery_id, clock.now, 7.0, POLICY), Context(at=T0))])
    # ... and the process died before sending or recording anything
    fresh = dispatcher(store, ScriptedSender([200]), clock)
    assert fresh.due() == []  # the claim holds for its lease (2 x timeout + 5 s = 7 s)
    clock.now += timedelta(seconds=7)
    fresh.run_until_idle()
    assert attempts(store) == [("WebhookAttemptFailed", 1, None), ("WebhookDelivered", 2, 200)]
    lost = store.read_all(types=["WebhookAttemptFailed"])[0].event
    assert lost.error == webhook.LOST_ATTEMPT


def test_a_removed_webhook_abandons_its_pending_deliveries(tmp_path: Path) -> None:
    store = one_queued(tmp_path)
    execute(store, [(webhook.Unsubscribe("s"), Context(at=T0, tenant_id="acme"))])
    sender = ScriptedSender([])
    dispatcher(store, sender, Clock()).run_until_idle()
    assert sender.sent == [] and [a[0] for a in attempts(store)] == ["WebhookAbandoned"]


def test_a_secret_this_server_cannot_decrypt_is_a_failed_attempt_that_says_why(tmp_path: Path) -> None:
    store = one_queued(tmp_path)
    sender = ScriptedSender([])
    d = Dispatcher(store, sender, server_secrets=["another-key"], policy=POLICY, timeout_seconds=1.0, clock=Clock())
    d.run_until_idle()
    (failed,) = [e.event for e in store.read_all(types=["WebhookAttemptFailed"])]
    assert sender.sent == [] and "AFEP_SECRET_KEYS_OLD" in failed.error


def test_a_webhook_that_cannot_be_described_never_fails_the_job(tmp_path: Path, monkeypatch: Any) -> None:
    from commands.unit_of_work import load_job

    def broken(*args: Any) -> None:
        raise RuntimeError("describing broke")

    monkeypatch.setattr(agent, "describe", broken)
    store = InMemoryEventStore()
    subscribe(store, "s")
    selected_feature(store)
    runtime(store, tmp_path).run_until_idle()
    job = load_job(store, "j1")
    assert job is not None and job.status == "requested" and queued(store) == []
    traces = [e.event.message for e in store.read_all(types=["AgentTraced"])]
    assert traces == [
        "job.started webhooks not queued: RuntimeError: describing broke",
        "feature.generated webhooks not queued: RuntimeError: describing broke",
    ]
