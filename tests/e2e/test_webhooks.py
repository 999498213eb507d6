"""Webhooks over real HTTP: the API on uvicorn, the agents' loop and the dispatcher as `afep serve`
runs them, and receivers on loopback ports that verify every signature.

Jobs are recorded straight into the store (a job with selected features, no LightGBM), then
approved through the API, as a person would.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO, fresh_postgres_database, running
from tests.webhook_receiver import Receiver, free_url, receiver, selected_feature

SECRET_KEY = "webhook-suite-secret-key-0123456789abcdef"
FAST = {"webhook_backoff_seconds": 0.05, "webhook_backoff_max_seconds": 0.2, "webhook_timeout_seconds": 3.0}


@dataclass
class Api:
    url: str
    settings: Any
    store: Any
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self, tenant: str, role: str = "admin") -> httpx.Client:
        from gateway.auth import create_api_key

        key = create_api_key(self.settings, tenant, role)
        client = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        self.clients.append(client)
        return client


@contextlib.contextmanager
def webhook_api(tmp_path: Path, backend: str = "sqlite", **overrides: Any) -> Iterator[Api]:
    """The API with the webhooks agent and the dispatcher in the background, wired as `afep serve` wires them."""
    from gateway.app import create_app
    from gateway.runtime_wiring import ServerRuntime, build_dispatcher, build_store, build_workbench
    from gateway.settings import Settings
    from processors.agents import webhooks as webhooks_agent
    from processors.runtime import LocalRuntime

    with contextlib.ExitStack() as stack:
        database_url = stack.enter_context(fresh_postgres_database("afep_hooks")) if backend == "postgres" else None
        settings = Settings(
            data_dir=tmp_path / "afep",
            secret_key=SECRET_KEY,
            database_url=database_url,
            **{"webhook_private_targets": True, **FAST, **overrides},
        )
        store = build_store(settings)
        stack.callback(store.close)
        bench = build_workbench(settings)
        bench.warm_up = lambda: None  # type: ignore[method-assign]  # no LightGBM pool, no sandbox: only webhooks run
        dispatcher = build_dispatcher(settings, store)
        agents = LocalRuntime(store, bench, agents=[webhooks_agent], observers=[dispatcher.observe])
        runtime = ServerRuntime(agents, dispatcher)
        runtime.start(poll_seconds=0.05)
        stack.callback(runtime.stop)
        url = stack.enter_context(running(create_app(settings, store=store, runtime=runtime)))
        api = Api(url, settings, store)
        try:
            yield api
        finally:
            for client in api.clients:
                client.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def wait_for(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


def subscribe(client: httpx.Client, url: str, events: list[str], project: str = "risk") -> dict[str, Any]:
    assert client.post("/projects", json={"name": project, "id": project}).status_code in (201, 409)
    created = client.post(f"/projects/{project}/webhooks", json={"url": url, "events": events})
    assert created.status_code == 201, created.text
    return created.json()  # type: ignore[no-any-return]


def verified(secret: str, got: Receiver) -> list[dict[str, Any]]:
    """Every request's body, parsed, after checking both signatures with the receiver's copy of the secret."""
    from processors.webhooks.signing import verify, verify_body_field

    out = []
    for request in got.got():
        assert verify(secret, request.body, request.headers["x-afep-signature"]), request.headers
        assert verify_body_field(secret, request.body)
        assert request.headers["content-type"] == "application/json" and request.headers["x-afep-timestamp"].isdigit()
        out.append(json.loads(request.body))
    return out


def deliveries(client: httpx.Client, subscription_id: str) -> list[dict[str, Any]]:
    answer = client.get(f"/webhooks/{subscription_id}/deliveries")
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]  # type: ignore[no-any-return]


def test_signed_feature_approved_webhooks_arrive_and_verify(tmp_path: Path, backend: str) -> None:
    with webhook_api(tmp_path, backend) as api, receiver() as first, receiver() as second:
        admin = api.client("acme")
        one = subscribe(admin, first.url, ["feature.approved"])
        two = subscribe(admin, second.url, ["feature.approved", "feature.deprecated"])
        assert one["secret"] != two["secret"]
        for feature_id in ("f1", "f2"):
            selected_feature(api.store, feature_id=feature_id)
            answer = admin.post(f"/features/{feature_id}/approve", json={"comment": f"ok {feature_id}"})
            assert answer.status_code == 200, answer.text
        wait_for(lambda: len(first.got()) == 2 and len(second.got()) == 2, what="two approvals at each receiver")
        for got, subscription in ((first, one), (second, two)):
            bodies = verified(subscription["secret"], got)
            assert sorted(b["data"]["feature_id"] for b in bodies) == ["f1", "f2"]
            for body in bodies:
                assert body["event"] == "feature.approved" and body["signature"].startswith("sha256=")
                data = body["data"]
                assert data["project_id"] == "risk" and data["feature_name"] == f"dti_{data['feature_id']}"
                assert data["approved_by"].startswith("key:") and data["feast_feature_view"] is None
            assert {r.headers["x-afep-event"] for r in got.got()} == {"feature.approved"}
        # a receiver holding the other subscription's secret cannot verify these
        from processors.webhooks.signing import verify

        request = first.got()[0]
        assert not verify(two["secret"], request.body, request.headers["x-afep-signature"])
        log = wait_for(
            lambda: [d for d in deliveries(admin, one["id"]) if d["status"] == "delivered"] or None,
            what="the delivery log",
        )
        assert log[0]["attempt_log"][0]["outcome"] == "delivered"


def test_a_receiver_failing_twice_gets_exactly_one_accepted_delivery_and_the_log_shows_both_failures(
    tmp_path: Path, backend: str
) -> None:
    with webhook_api(tmp_path, backend) as api, receiver(script=[500, 500]) as flaky:
        admin = api.client("acme")
        hook = subscribe(admin, flaky.url, ["feature.approved"])
        selected_feature(api.store)
        assert admin.post("/features/f1/approve", json={}).status_code == 200
        (delivery,) = wait_for(
            lambda: [d for d in deliveries(admin, hook["id"]) if d["status"] == "delivered"] or None,
            what="the delivery to succeed",
        )
        got = flaky.got()
        assert [r.status for r in got] == [500, 500, 200]  # exactly one accepted
        assert len({r.headers["x-afep-delivery"] for r in got}) == 1 and len({r.body for r in got}) == 1
        assert [r.headers["x-afep-attempt"] for r in got] == ["1", "2", "3"]
        verified(hook["secret"], flaky)
        assert delivery["event"] == "feature.approved" and delivery["attempts"] == 3
        assert delivery["id"] == got[0].headers["x-afep-delivery"]
        log = delivery["attempt_log"]
        assert [(a["attempt"], a["outcome"], a["status_code"]) for a in log] == [
            (1, "failed", 500),
            (2, "failed", 500),
            (3, "delivered", 200),
        ]
        assert all("HTTP 500" in a["error"] and a["next_attempt_at"] for a in log[:2])
        assert log[1]["next_attempt_at"] > log[0]["next_attempt_at"]
        one = admin.get(f"/webhooks/{hook['id']}/deliveries/{delivery['id']}")
        assert one.status_code == 200 and one.json()["attempt_log"] == log
        assert admin.get(f"/webhooks/{hook['id']}/deliveries", params={"status": "abandoned"}).json()["items"] == []


def test_tenants_are_isolated_and_the_secret_is_never_returned(tmp_path: Path) -> None:
    from schemas.codec import envelope_to_json

    with webhook_api(tmp_path) as api, receiver() as ours, receiver() as theirs:
        acme, globex = api.client("acme"), api.client("globex")
        mine = subscribe(acme, ours.url, ["feature.approved", "job.started"])
        other = subscribe(globex, theirs.url, ["feature.approved", "job.started"])  # same project id "risk"
        selected_feature(api.store)
        assert globex.post("/features/f1/approve", json={}).status_code == 404
        assert acme.post("/features/f1/approve", json={}).status_code == 200
        wait_for(lambda: len(ours.got()) == 2, what="acme's job.started and feature.approved")
        time.sleep(0.5)  # the dispatcher is idle: anything for globex would have been sent by now
        assert theirs.got() == [] and deliveries(globex, other["id"]) == []
        assert {b["event"] for b in verified(mine["secret"], ours)} == {"job.started", "feature.approved"}
        for method, path in (
            ("GET", f"/webhooks/{mine['id']}"),
            ("GET", f"/webhooks/{mine['id']}/deliveries"),
            ("POST", f"/webhooks/{mine['id']}/test"),
            ("POST", f"/webhooks/{mine['id']}/secret"),
            ("DELETE", f"/webhooks/{mine['id']}"),
        ):
            assert globex.request(method, path).status_code == 404, (method, path)
        assert [h["id"] for h in globex.get("/projects/risk/webhooks").json()["items"]] == [other["id"]]
        # the secret: returned once, by the POST; never by a read, never in the log or the read models
        listed = acme.get("/projects/risk/webhooks")
        shown = acme.get(f"/webhooks/{mine['id']}")
        for answer in (listed, shown):
            assert answer.status_code == 200 and mine["secret"] not in answer.text and 'secret"' not in answer.text
        assert shown.json()["url"] == ours.url and shown.json()["events"] == ["feature.approved", "job.started"]
        log = b"".join(envelope_to_json(e) for e in api.store.read_all(limit=100_000))
        assert b"secret_ciphertext" in log and mine["secret"].encode() not in log
        assert mine["secret"].encode() not in (api.settings.readmodel_db_path).read_bytes()
        # only admins manage webhooks
        for role in ("data_scientist", "viewer", "api_client"):
            assert api.client("acme", role).get("/projects/risk/webhooks").status_code == 403
        # a rotated secret signs what is sent from then on; the old one no longer verifies
        rotated = acme.post(f"/webhooks/{mine['id']}/secret")
        assert rotated.status_code == 200 and rotated.json()["secret"] not in (mine["secret"], "")
        ping = acme.post(f"/webhooks/{mine['id']}/test")
        assert ping.status_code == 202
        request = wait_for(lambda: len(ours.got()) == 3 and ours.got()[2], what="the ping")
        assert request.headers["x-afep-event"] == "ping"
        from processors.webhooks.signing import verify

        assert verify(rotated.json()["secret"], request.body, request.headers["x-afep-signature"])
        assert not verify(mine["secret"], request.body, request.headers["x-afep-signature"])
        # removed: no more deliveries; it stays listable with include_removed
        assert acme.delete(f"/webhooks/{mine['id']}").status_code == 204
        assert acme.get("/projects/risk/webhooks").json()["items"] == []
        removed = acme.get("/projects/risk/webhooks", params={"include_removed": True}).json()["items"]
        assert [h["status"] for h in removed] == ["removed"]
        assert acme.post(f"/webhooks/{mine['id']}/test").status_code == 409


def test_bad_subscriptions_are_refused_with_a_reason(tmp_path: Path) -> None:
    with webhook_api(tmp_path, webhook_private_targets=False) as api:
        admin = api.client("acme")
        assert admin.post("/projects", json={"name": "risk", "id": "risk"}).status_code == 201
        cases = [
            ({"url": "http://127.0.0.1:9/hook"}, 422, "AFEP_WEBHOOK_PRIVATE_TARGETS"),
            ({"url": "http://169.254.169.254/latest"}, 422, "link-local"),
            ({"url": "https://user:pw@hooks.example.com/"}, 422, "credentials"),
            ({"url": "ftp://hooks.example.com/"}, 422, "https://"),
            ({"url": "https://hooks.example.com/", "events": ["feature.created"]}, 422, "not supported"),
            ({"url": "https://hooks.example.com/", "events": []}, 422, "events"),
        ]
        for body, status, says in cases:
            answer = admin.post("/projects/risk/webhooks", json=body)
            assert answer.status_code == status and says in answer.json()["detail"], (body, answer.text)
            assert answer.headers["content-type"] == "application/problem+json"
        assert admin.post("/projects/nope/webhooks", json={"url": "https://hooks.example.com/"}).status_code == 404
        created = admin.post("/projects/risk/webhooks", json={"url": "https://hooks.example.com/x"})
        assert created.status_code == 201 and created.json()["events"] == [
            "job.started",
            "job.completed",
            "job.failed",
            "feature.generated",
            "feature.approved",
            "feature.deprecated",
        ]
        assert admin.get("/webhooks/x/deliveries", params={"status": "lost"}).status_code == 404
        hook = created.json()["id"]
        assert admin.get(f"/webhooks/{hook}/deliveries", params={"status": "lost"}).status_code == 400
        audit = admin.get("/audit", params={"resource_type": "webhook"})
        assert audit.status_code == 200 and any(r["action"] == "webhook.create" for r in audit.json()["items"])


# ------------------------------------------------------------ `afep serve`, killed and restarted


@contextlib.contextmanager
def afep_serve(data_dir: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "AFEP_DATA_DIR": str(data_dir),
        "AFEP_SECRET_KEY": SECRET_KEY,
        "AFEP_WEBHOOK_PRIVATE_TARGETS": "true",
        "AFEP_WEBHOOK_BACKOFF_SECONDS": "0.5",
        "AFEP_WEBHOOK_BACKOFF_MAX_SECONDS": "1",
        "AFEP_WEBHOOK_MAX_ATTEMPTS": "100",
        "AFEP_ENGINE_WORKERS": "0",
        "OMP_WAIT_POLICY": "PASSIVE",
        "PYTHONPATH": str(REPO),
    }
    command = [sys.executable, "-m", "gateway.cli", "serve", "--port", str(port)]
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: _healthy(port) or process.poll() is not None, timeout=90, what="afep serve")
        assert process.poll() is None, process.stderr.read().decode()[-3000:] if process.stderr else ""
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_a_delivery_pending_when_afep_serve_is_killed_is_delivered_after_the_restart(tmp_path: Path) -> None:
    from commands.recorder_store import SqliteEventStore
    from gateway.auth import create_api_key
    from gateway.settings import Settings

    data_dir = tmp_path / "afep"
    settings = Settings(data_dir=data_dir, secret_key=SECRET_KEY)
    store = SqliteEventStore(settings.event_db_path)
    selected_feature(store)
    store.close()
    key = create_api_key(settings, "acme", "admin")
    target = free_url()  # nothing listens there yet: every attempt is refused
    port = _port()
    api = httpx.Client(
        base_url=f"http://127.0.0.1:{port}/api/v1", headers={"Authorization": f"Bearer {key}"}, timeout=30
    )
    with afep_serve(data_dir, port) as first:
        hook = subscribe(api, target, ["feature.approved"])
        assert api.post("/features/f1/approve", json={}).status_code == 200
        wait_for(
            lambda: any(a["outcome"] == "failed" for d in deliveries(api, hook["id"]) for a in d["attempt_log"]),
            what="a refused attempt",
        )
        first.send_signal(signal.SIGKILL)  # no goodbye: whatever was in flight stays in flight
        first.wait(timeout=30)
    port_of_target = int(target.rsplit(":", 1)[1].split("/", 1)[0])
    with receiver(port=port_of_target) as up, afep_serve(data_dir, port):
        wait_for(lambda: up.got(), timeout=60, what="the delivery after the restart")
        (delivery,) = wait_for(
            lambda: [d for d in deliveries(api, hook["id"]) if d["status"] == "delivered"] or None,
            what="the delivery log",
        )
        assert [r.status for r in up.got()] == [200]
        (body,) = verified(hook["secret"], up)
        assert body["data"]["feature_id"] == "f1"
        outcomes = [a["outcome"] for a in delivery["attempt_log"]]
        assert outcomes[-1] == "delivered" and set(outcomes[:-1]) == {"failed"} and len(outcomes) >= 2
    api.close()


@pytest.mark.slow
def test_the_cli_adds_lists_and_removes_webhooks(tmp_path: Path) -> None:
    env = {**os.environ, "AFEP_SECRET_KEY": SECRET_KEY, "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(REPO)}

    def afep(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "gateway.cli", "webhooks", *args, "--data-dir", str(tmp_path / "afep")]
        return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)

    added = afep("add", "default", "https://hooks.example.com/afep", "--event", "job.failed")
    assert added.returncode == 0, added.stderr
    hook, secret = added.stdout.split()
    assert secret.startswith("whsec_")
    listed = afep("list", "default")
    (row,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert row["id"] == hook and row["events"] == ["job.failed"] and secret not in listed.stdout
    assert afep("list", "default", "--tenant", "globex").stdout == ""
    bad = afep("add", "default", "https://user:pw@hooks.example.com/")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "credentials" in bad.stderr
    private = afep("add", "default", "http://10.0.0.8/hook")
    assert private.returncode == 2 and "AFEP_WEBHOOK_PRIVATE_TARGETS" in private.stderr
    assert afep("deliveries", "nope").returncode == 2
    assert afep("remove", hook).returncode == 0
    (row,) = [json.loads(line) for line in afep("list", "default", "--removed").stdout.splitlines()]
    assert row["status"] == "removed"
