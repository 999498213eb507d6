"""The HTTP API end to end: real SQLite store and read models, real chdb, real auth."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from commands.recorder_store import SqliteEventStore
from commands.unit_of_work import execute
from domain import feature
from domain.envelope import Context
from gateway.app import create_app
from gateway.auth import create_api_key, issue_token, key_id_of
from gateway.settings import Settings
from projections import directory

pytestmark = pytest.mark.clickhouse


class Wakeable:
    def __init__(self) -> None:
        self.wakes = 0

    def wake(self) -> None:
        self.wakes += 1


@dataclass
class Api:
    client: TestClient
    settings: Settings
    store: SqliteEventStore
    runtime: Wakeable

    def tables(self, tenant: str) -> None:
        """Put the tables the tests name (data.csv, d.csv) in `tenant`'s upload area."""
        from processors.sources.policy import tenant_folder

        area = self.settings.data_dir / "uploads" / tenant_folder(tenant)
        area.mkdir(parents=True, exist_ok=True)
        for name in ("data.csv", "d.csv"):
            (area / name).write_text("a,y\n1,0\n2,1\n")

    def key(self, tenant: str, role: str) -> dict[str, str]:
        self.tables(tenant)
        return {"Authorization": f"Bearer {create_api_key(self.settings, tenant, role)}"}


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    settings = Settings(data_dir=tmp_path, secret_key="test-secret-key-please-change-it-now", source_hosts="db:5432")
    store = SqliteEventStore(settings.event_db_path)
    runtime = Wakeable()
    with TestClient(create_app(settings, store=store, runtime=runtime)) as client:
        yield Api(client, settings, store, runtime)
    store.close()


def project(api: Api, headers: dict[str, str], project_id: str = "p1") -> None:
    r = api.client.post("/api/v1/projects", json={"name": "Churn", "id": project_id}, headers=headers)
    assert r.status_code == 201, r.text


def new_job(api: Api, headers: dict[str, str], **extra: object) -> dict[str, object]:
    r = api.client.post(
        "/api/v1/jobs", json={"project_id": "p1", "source": "data.csv", "target": "y", **extra}, headers=headers
    )
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def select_feature(api: Api, job_id: str, feature_id: str, tenant: str) -> None:
    """What the agents would do: propose, generate, execute, evaluate and select a feature."""
    at = Context(at=datetime.now(UTC), actor="evaluator", tenant_id=tenant, causation_id="cause-1")
    execute(
        api.store,
        [
            (
                feature.ProposeFeature(
                    feature_id, job_id, 1, "ratio_a_b", "a/b", "why", "{}", ("a", "b"), 0.1, "ideation", ()
                ),
                at,
            ),
            (feature.RecordCode(feature_id, "code", "polars", "h", None, None, False), at),
            (feature.RecordExecution(feature_id, True, None, None, 1.0, None, 0.0, 5), at),
            (feature.RecordEvaluation(feature_id, 1, "confirm", "auc", 0.1, 0.02, 0.01, 0.03, 0.01, 1, "ok"), at),
            (feature.SelectFeature(feature_id, 1, "significant"), at),
        ],
    )


def test_openapi_and_problem_json(api: Api) -> None:
    assert api.client.get("/api/v1/openapi.json").json()["info"]["title"] == "AFEP API"
    r = api.client.get("/api/v1/jobs")
    assert r.status_code == 401 and r.headers["content-type"] == "application/problem+json"
    assert "Authorization: Bearer" in r.json()["detail"]


def test_create_list_paginate_and_get_jobs(api: Api) -> None:
    admin = api.key("acme", "admin")
    project(api, admin)
    created = [new_job(api, admin)["id"] for _ in range(5)]
    assert api.runtime.wakes == 5
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.client.get("/api/v1/jobs", params=params, headers=admin).json()
        seen += [j["id"] for j in page["items"]]
        if not (cursor := page["next_cursor"]):
            break
    assert seen == created[::-1]
    got = api.client.get(f"/api/v1/jobs/{created[0]}", headers=admin).json()
    assert got["status"] == "requested" and got["tenant_id"] == "acme" and got["requested_by"].startswith("key:")
    bad = api.client.get("/api/v1/jobs", params={"cursor": "nope"}, headers=admin)
    assert bad.status_code == 400 and "next_cursor" in bad.json()["detail"]


def test_a_target_that_is_not_a_column_of_a_file_source_is_a_422_before_the_log(api: Api) -> None:
    admin = api.key("acme", "admin")
    project(api, admin)
    head = api.store.last_position()
    r = api.client.post("/api/v1/jobs", json={"project_id": "p1", "source": "data.csv", "target": "Y"}, headers=admin)
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == "target 'Y' is not a column of the source; columns: a, y"
    body = {"project_id": "p1", "source": "data.csv", "target": "y", "keep_columns": ["a", "b"]}
    r = api.client.post("/api/v1/jobs", json=body, headers=admin)
    assert r.status_code == 422, r.text
    assert r.json()["detail"] == "keep_columns 'b' is not a column of the source; columns: a, y"
    r = api.client.post("/api/v1/jobs", json={**body, "keep_columns": ["y"]}, headers=admin)
    assert r.status_code == 422 and "is the target 'y'" in r.json()["detail"], r.text
    assert api.store.last_position() == head


def test_same_job_id_is_idempotent_and_cancel_retry(api: Api) -> None:
    ds = api.key("acme", "Data Scientist")
    project(api, ds)
    first = new_job(api, ds, job_id="j-1")
    again = api.client.post(
        "/api/v1/jobs", json={"project_id": "p1", "source": "data.csv", "target": "y", "job_id": "j-1"}, headers=ds
    )
    assert again.status_code == 200 and again.json()["id"] == first["id"]
    assert api.client.post("/api/v1/jobs/j-1/cancel", headers=ds).json()["status"] == "cancelled"
    assert api.client.post("/api/v1/jobs/j-1/retry", headers=ds).json()["status"] == "requested"
    retry_again = api.client.post("/api/v1/jobs/j-1/retry", headers=ds)
    assert retry_again.status_code == 409 and "only failed or cancelled" in retry_again.json()["detail"]


def test_tenant_isolation_is_404(api: Api) -> None:
    acme, other = api.key("acme", "admin"), api.key("globex", "admin")
    project(api, acme)
    job_id = new_job(api, acme)["id"]
    select_feature(api, str(job_id), "f1", "acme")
    for path in (
        f"/api/v1/jobs/{job_id}",
        f"/api/v1/jobs/{job_id}/history",
        "/api/v1/features/f1",
        "/api/v1/features/f1/lineage",
        "/api/v1/projects/p1",
    ):
        r = api.client.get(path, headers=other)
        assert r.status_code == 404, path
    assert api.client.post(f"/api/v1/jobs/{job_id}/cancel", headers=other).status_code == 404
    assert api.client.post("/api/v1/features/f1/approve", headers=other).status_code == 404
    assert api.client.get("/api/v1/jobs", headers=other).json()["items"] == []
    by_stage = {"job_id": job_id, "eval_stage": "confirm"}  # the stage its evaluation reached
    finalists = api.client.get("/api/v1/features", params=by_stage, headers=acme).json()["items"]
    assert [f["id"] for f in finalists] == ["f1"]
    assert api.client.get("/api/v1/features", params=by_stage, headers=other).json()["items"] == []
    typo = api.client.get("/api/v1/features", params={"eval_stage": "final"}, headers=acme)
    assert typo.status_code == 422 and "select" in typo.text
    # a job for another tenant's project is refused too
    r = api.client.post("/api/v1/jobs", json={"project_id": "p1", "source": "d.csv", "target": "y"}, headers=other)
    assert r.status_code == 404


def test_role_matrix_and_audit_of_approval(api: Api) -> None:
    admin, ds, viewer = api.key("acme", "admin"), api.key("acme", "data_scientist"), api.key("acme", "viewer")
    client_key = api.key("acme", "api_client")
    project(api, admin)
    job_id = str(new_job(api, client_key)["id"])
    assert (
        api.client.post(
            "/api/v1/jobs", json={"project_id": "p1", "source": "d.csv", "target": "y"}, headers=viewer
        ).status_code
        == 403
    )
    assert api.client.get(f"/api/v1/jobs/{job_id}", headers=viewer).status_code == 200
    select_feature(api, job_id, "f1", "acme")
    denied = api.client.post("/api/v1/features/f1/approve", headers=ds)
    assert denied.status_code == 403 and denied.headers["content-type"] == "application/problem+json"
    assert api.client.post("/api/v1/features/f1/approve", headers=client_key).status_code == 403
    approved = api.client.post("/api/v1/features/f1/approve", json={"comment": "ship"}, headers=admin)
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    assert api.client.get("/api/v1/audit", headers=ds).status_code == 403
    audit = api.client.get("/api/v1/audit", params={"action": "feature.approve"}, headers=admin).json()["items"]
    assert len(audit) == 1
    row = audit[0]
    assert (row["resource_type"], row["resource_id"], row["previous_state"], row["new_state"]) == (
        "feature",
        "f1",
        "selected",
        "approved",
    )
    assert row["actor"].startswith("key:") and row["role"] == "admin" and row["user_agent"] == "testclient"
    assert row["source_ip"] == "testclient"
    denials = api.client.get("/api/v1/audit", params={"action": "denied.approve_feature"}, headers=admin).json()
    assert len(denials["items"]) == 2


def test_a_feature_store_sync_is_for_approvers_and_approved_features(api: Api) -> None:
    admin, ds = api.key("acme", "admin"), api.key("acme", "data_scientist")
    project(api, admin)
    job_id = str(new_job(api, admin)["id"])
    select_feature(api, job_id, "f1", "acme")
    early = api.client.post("/api/v1/features/f1/sync", headers=admin)
    assert early.status_code == 409 and "only approved or deprecated" in early.json()["detail"]
    assert api.client.post("/api/v1/features/f1/approve", headers=admin).status_code == 200
    assert api.client.post("/api/v1/features/f1/sync", headers=ds).status_code == 403
    assert api.client.post("/api/v1/features/f1/sync", headers=api.key("other", "admin")).status_code == 404
    synced = api.client.post("/api/v1/features/f1/sync", json={"reason": "redis is back"}, headers=admin)
    assert synced.status_code == 202 and synced.json()["status"] == "approved"
    audit = api.client.get("/api/v1/audit", params={"action": "feature.sync"}, headers=admin).json()["items"]
    assert [(r["resource_id"], r["previous_state"], r["new_state"]) for r in audit] == [("f1", "approved", "approved")]


def carol(api: Api) -> Callable[..., subprocess.CompletedProcess[str]]:
    """`afep ARGS` as user carol, in another process, on the API's data dir (and secret)."""
    env = {
        **os.environ,
        "USER": "carol",
        "AFEP_SECRET_KEY": api.settings.secret_key,
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }

    def afep(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "gateway.cli", *args, "--data-dir", str(api.settings.data_dir)]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)

    return afep


def test_command_line_approvals_and_deprecations_are_in_the_audit_trail_once(api: Api) -> None:
    admin = api.key("acme", "admin")
    project(api, admin)
    job_id = str(new_job(api, admin)["id"])
    select_feature(api, job_id, "f1", "acme")
    select_feature(api, job_id, "f2", "acme")
    afep = carol(api)

    # the feature store then says the job has no dataset to serve (its agents never ran): the approval stands
    approved = afep("features", "approve", "f1", "--comment", "ship")
    assert "feature f1 'ratio_a_b' approved" in approved.stdout, approved.stdout + approved.stderr
    deprecated = afep("features", "deprecate", "f1", "--reason", "leaks the target")
    assert deprecated.returncode == 0, deprecated.stdout + deprecated.stderr
    assert api.client.post("/api/v1/features/f2/approve", headers=admin).status_code == 200
    at = {e.event_type: e.occurred_at for e in api.store.read_all(after=0, limit=1000) if e.actor == "user:carol"}
    approved_at, deprecated_at = (
        at[t].replace(microsecond=at[t].microsecond // 1000 * 1000) for t in ("FeatureApproved", "FeatureDeprecated")
    )  # ClickHouse keeps milliseconds

    def trail() -> list[tuple[str, str, str, str, str, int, datetime]]:
        rows = api.client.get("/api/v1/audit", params={"resource_type": "feature"}, headers=admin).json()["items"]
        fields = ("actor", "action", "resource_id", "previous_state", "new_state", "status_code")
        assert all(r["time"].endswith("+00:00") for r in rows)  # times say they are UTC
        return [(*(r[f] for f in fields), datetime.fromisoformat(r["time"])) for r in rows]

    deadline = time.monotonic() + 30  # the server projects the log in the background
    while not any(row[1] == "feature.deprecate" for row in trail()) and time.monotonic() < deadline:
        time.sleep(0.1)
    (key_actor, *_, api_at), *_ = trail()
    assert key_actor.startswith("key:") and api_at > deprecated_at > approved_at
    expected = [
        (key_actor, "feature.approve", "f2", "selected", "approved", 200, api_at),
        ("user:carol", "feature.deprecate", "f1", "", "deprecated", 0, deprecated_at),
        ("user:carol", "feature.approve", "f1", "", "approved", 0, approved_at),
    ]
    assert trail() == expected
    # projected twice (`afep projections rebuild` replays the whole log): still one row each
    services = api.client.app.state.services  # type: ignore[attr-defined]
    services.events_projection.rebuild()
    assert trail() == expected
    assert services.clickhouse.rows("SELECT count() AS n FROM audit WHERE actor = 'user:carol'")[0]["n"] == 2


def test_command_line_key_and_tier_changes_are_in_the_audit_trail_once(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    afep = carol(api)
    admin, operator = api.key("acme", "admin"), api.key("platform", "admin")
    # a crash after the copy into the trail, before the delete: every drain copies the outbox again
    monkeypatch.setattr(directory, "forget_audit", lambda db, ids: None)
    key = afep("keys", "create", "--tenant", "acme", "--role", "admin").stdout.strip()
    key_id = key_id_of(key)
    for done in (
        afep("keys", "revoke", key_id),
        afep("tenants", "set-tier", "acme", "pro"),
        afep("keys", "rotate-secret"),
    ):
        assert done.returncode == 0, done.stdout + done.stderr
    made = api.client.post("/api/v1/keys", json={"role": "viewer"}, headers=admin)  # the API's own row, to compare
    assert made.status_code == 201, made.text

    def trail(headers: dict[str, str]) -> list[dict[str, Any]]:
        r = api.client.get("/api/v1/audit", params={"actor": "user:carol"}, headers=headers)
        return r.json()["items"]  # type: ignore[no-any-return]

    deadline = time.monotonic() + 30  # the server drains the outbox in the background
    while len(trail(admin)) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    services = api.client.app.state.services  # type: ignore[attr-defined]
    assert services.audit.drain(services.db) == 4 and services.audit.drain(services.db) == 4
    rows = trail(admin)
    assert [(r["action"], r["resource_type"], r["resource_id"]) for r in rows] == [
        ("tenant.set_tier", "tenant", "acme"),
        ("key.revoke", "api_key", key_id),
        ("key.create", "api_key", key_id),
    ]
    assert {(r["tenant_id"], r["role"], r["status_code"], r["source_ip"]) for r in rows} == {("acme", "", 0, "")}
    tier, revoke, create = ({k: json.loads(r[k] or "null") for k in ("previous_state", "new_state")} for r in rows)
    by_api = api.client.get("/api/v1/audit", params={"action": "key.create"}, headers=admin).json()["items"]
    api_state = json.loads(next(r for r in by_api if r["actor"].startswith("key:"))["new_state"])
    assert create["previous_state"] is None and create["new_state"].keys() == api_state.keys()
    assert create["new_state"] | {"created_at": None} == {
        "key_id": key_id,
        "tenant_id": "acme",
        "role": "admin",
        "created_at": None,
        "revoked_at": None,
    }
    assert revoke["previous_state"]["revoked_at"] is None and revoke["new_state"]["revoked_at"]
    assert tier["new_state"]["tier"] == "pro"
    (rotation,) = trail(operator)
    assert (rotation["tenant_id"], rotation["action"]) == ("platform", "connection.rotate_secret")
    assert json.loads(rotation["new_state"]) == {"reencrypted": 0, "undecryptable": []}
    everything = str(services.clickhouse.rows("SELECT * FROM audit"))
    assert key not in everything and directory.hash_key(key) not in everything  # neither the key nor its hash
    assert services.clickhouse.rows("SELECT count() AS n FROM audit WHERE actor = 'user:carol'")[0]["n"] == 4
    monkeypatch.undo()
    services.audit.drain(services.db)
    assert directory.audit_outbox(services.db) == [] and len(trail(admin)) == 3


def test_jwt_hs256_and_bad_tokens(api: Api) -> None:
    token = issue_token(api.settings, "alice@acme", "acme", "Admin")
    bearer = {"Authorization": f"Bearer {token}"}
    api.tables("acme")
    project(api, bearer)
    assert new_job(api, bearer)["requested_by"] == "alice@acme"
    forged = issue_token(
        Settings(data_dir=api.settings.data_dir, secret_key="another-secret-key-that-is-long-enough"),
        "eve",
        "acme",
        "admin",
    )
    r = api.client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401 and "rejected" in r.json()["detail"]
    # a subject that names a command-line user, an agent or an API key would pass for one in the log
    for subject in ("user:carol", "agent:evaluation", "key:0123abcd"):
        spoof = issue_token(api.settings, subject, "acme", "Admin")
        r = api.client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {spoof}"})
        assert r.status_code == 401 and "issue it for another subject" in r.json()["detail"], r.json()


def test_history_and_as_of(api: Api) -> None:
    admin = api.key("acme", "admin")
    project(api, admin)
    job_id = str(new_job(api, admin)["id"])
    select_feature(api, job_id, "f1", "acme")
    timeline = api.client.get(f"/api/v1/jobs/{job_id}/history", headers=admin).json()["timeline"]
    assert [t["event_type"] for t in timeline][:2] == ["JobRequested", "FeatureProposed"]
    proposed_at = timeline[1]["position"]
    then = api.client.get(f"/api/v1/jobs/{job_id}", params={"as_of": proposed_at}, headers=admin).json()
    assert then["job"]["status"] == "requested" and [f["status"] for f in then["features"]] == ["proposed"]
    now = api.client.get(
        f"/api/v1/jobs/{job_id}", params={"as_of": datetime.now(UTC).isoformat()}, headers=admin
    ).json()
    assert [f["status"] for f in now["features"]] == ["selected"]
    bad = api.client.get(f"/api/v1/jobs/{job_id}", params={"as_of": "yesterday"}, headers=admin)
    assert bad.status_code == 400
    # the history endpoint takes the same as_of: the timeline up to it, and the job as it was then
    past = api.client.get(f"/api/v1/jobs/{job_id}/history", params={"as_of": proposed_at}, headers=admin).json()
    assert [t["event_type"] for t in past["timeline"]] == ["JobRequested", "FeatureProposed"]
    assert past["state"]["job"]["status"] == "requested"
    bad = api.client.get(f"/api/v1/jobs/{job_id}/history", params={"as_of": "yesterday"}, headers=admin)
    assert bad.status_code == 400


def test_connections_encrypt_credentials_and_never_return_them(api: Api) -> None:
    ds = api.key("acme", "data_scientist")
    r = api.client.post(
        "/api/v1/connections", json={"name": "wh", "uri": "postgresql://bob:hunter2@db:5432/wh"}, headers=ds
    )
    assert r.status_code == 201, r.text
    assert "hunter2" not in r.text and r.json()["location"] == "postgresql://bob@db:5432/wh"
    listed = api.client.get("/api/v1/connections", headers=ds)
    assert "hunter2" not in listed.text and len(listed.json()["items"]) == 1
    assert b"hunter2" not in api.settings.readmodel_db_path.read_bytes()
    assert api.client.get("/api/v1/connections", headers=api.key("acme", "viewer")).status_code == 403
    unsupported = api.client.post("/api/v1/connections", json={"name": "x", "uri": "ftp://x"}, headers=ds)
    assert unsupported.status_code == 422 and "sqlite:///" in unsupported.json()["detail"], unsupported.text
    conn_id = r.json()["id"]
    assert api.client.delete(f"/api/v1/connections/{conn_id}", headers=ds).status_code == 204


def test_rate_limit_answers_429_with_retry_after(api: Api) -> None:
    viewer = api.key("tiny", "viewer")  # an unregistered tenant is on the free tier: 100 requests/hour
    codes = [api.client.get("/api/v1/jobs", headers=viewer).status_code for _ in range(101)]
    assert codes[:100] == [200] * 100 and codes[100] == 429
    r = api.client.get("/api/v1/jobs", headers=viewer)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1


def test_tenants_platform_admin(api: Api) -> None:
    operator = api.key("platform", "admin")
    r = api.client.post("/api/v1/tenants", json={"name": "Acme Corp", "tier": "pro"}, headers=operator)
    assert r.status_code == 201 and r.json()["slug"] == "acme-corp"
    acme_admin = api.key("acme-corp", "admin")
    assert api.client.post("/api/v1/tenants", json={"name": "X"}, headers=acme_admin).status_code == 403
    assert [t["id"] for t in api.client.get("/api/v1/tenants", headers=acme_admin).json()["items"]] == ["acme-corp"]
    assert api.client.get("/api/v1/tenants/acme-corp", headers=api.key("other", "admin")).status_code == 404
    assert api.client.delete("/api/v1/tenants/acme-corp", headers=operator).status_code == 204


def test_jwt_rs256_checks_issuer_and_audience(tmp_path: Path) -> None:
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    settings = Settings(data_dir=tmp_path, jwt_public_key=public_pem, jwt_issuer="https://idp", jwt_audience="afep")
    now = datetime.now(UTC)

    def token(**claims: object) -> dict[str, str]:
        base = {
            "sub": "carol",
            "tenant": "acme",
            "roles": ["viewer"],
            "iss": "https://idp",
            "aud": "afep",
            "exp": now.timestamp() + 60,
        }
        return {"Authorization": f"Bearer {jwt.encode({**base, **claims}, private, algorithm='RS256')}"}

    with TestClient(create_app(settings)) as client:
        assert client.get("/api/v1/jobs", headers=token()).status_code == 200
        assert client.get("/api/v1/jobs", headers=token(iss="https://evil")).status_code == 401
        assert client.get("/api/v1/jobs", headers=token(aud="other")).status_code == 401
        assert (
            client.post(
                "/api/v1/jobs", json={"project_id": "p", "source": "d.csv", "target": "y"}, headers=token()
            ).status_code
            == 403
        )


# --- from an adversarial pass over the API (each was a 500, a leak or a lock-out) ---


def test_a_password_in_a_job_source_is_refused_and_never_stored(api: Api) -> None:
    admin = api.key("acme", "admin")
    project(api, admin)
    r = api.client.post(
        "/api/v1/jobs",
        json={"project_id": "p1", "source": "postgresql://alice:S3cretPw@db:5432/shop", "table": "t", "target": "y"},
        headers=admin,
    )
    assert r.status_code == 422 and "connection_id" in r.json()["detail"] and "S3cretPw" not in r.text
    assert api.client.get("/api/v1/jobs", headers=admin).json()["items"] == []
    assert not [e for e in api.store.read_all(after=0, limit=1000) if "S3cretPw" in repr(e.event)]


def test_a_password_already_in_the_log_is_never_shown(api: Api) -> None:
    from domain import job

    admin = api.key("acme", "admin")
    at = Context(at=datetime.now(UTC), actor="user:local", tenant_id="acme", causation_id="cli")
    source = "postgresql://alice:S3cretPw@db:5432/shop"  # as `afep run` against a shared store may have logged it
    execute(api.store, [(job.RequestJob("j-cli", "p1", source, "orders", "y", "auto", 60.0, 0, 1, 10), at)])
    shown = [api.client.get(path, headers=admin) for path in ("/api/v1/jobs/j-cli", "/api/v1/jobs/j-cli/history")]
    assert all(r.status_code == 200 for r in shown) and "alice:***@db" in shown[0].text
    assert not [r for r in shown if "S3cretPw" in r.text]


def test_keys_need_a_real_tenant_and_the_platform_tenant_cannot_be_deleted(api: Api) -> None:
    operator = api.key("platform", "admin")
    for tenant in ("", " acme ", "../../x"):
        r = api.client.post("/api/v1/keys", json={"role": "admin", "tenant": tenant}, headers=operator)
        assert r.status_code == 422, (tenant, r.text)
    r = api.client.delete("/api/v1/tenants/platform", headers=operator)
    assert r.status_code == 409 and "cannot be deleted" in r.json()["detail"]
    assert api.client.get("/api/v1/tenants", headers=operator).status_code == 200  # still an operator


def test_deleting_a_tenant_whose_id_is_another_tenants_slug_revokes_its_keys(api: Api) -> None:
    operator = api.key("platform", "admin")
    r = api.client.post(
        "/api/v1/tenants", json={"name": "Globex", "id": "globex-corp", "slug": "globex"}, headers=operator
    )
    assert r.status_code == 201, r.text
    assert (
        api.client.post("/api/v1/keys", json={"role": "admin", "tenant": "globex"}, headers=operator).status_code == 201
    )
    assert api.client.delete("/api/v1/tenants/globex", headers=operator).status_code == 204
    keys = api.client.get("/api/v1/keys", params={"tenant": "globex"}, headers=operator).json()["items"]
    assert keys and all(k["revoked_at"] for k in keys)
    assert api.client.get("/api/v1/tenants/globex-corp", headers=operator).json()["slug"] == "globex"


def test_a_tenant_cannot_take_the_id_another_tenants_job_id_would_get(api: Api) -> None:
    import uuid

    from gateway.routes.jobs import JOB_IDS

    mallory, bob = api.key("mallory", "admin"), api.key("bob", "admin")
    project(api, mallory)
    project(api, bob)
    new_job(api, mallory, job_id="nightly")
    new_job(api, mallory, job_id=str(uuid.uuid5(JOB_IDS, "bob\0nightly")), target="a")
    first = new_job(api, bob, job_id="nightly")
    again = api.client.post(
        "/api/v1/jobs", json={"project_id": "p1", "source": "data.csv", "target": "y", "job_id": "nightly"}, headers=bob
    )
    assert again.status_code == 200 and again.json()["id"] == first["id"]  # a repeat finds bob's job again
    assert api.client.get(f"/api/v1/jobs/{first['id']}", headers=mallory).status_code == 404


def test_a_project_with_jobs_or_webhooks_is_not_deleted(api: Api) -> None:
    admin = api.key("acme", "admin")
    project(api, admin)
    r = api.client.post("/api/v1/projects/p1/webhooks", json={"url": "https://example.com/hook"}, headers=admin)
    assert r.status_code == 201, r.text
    refused = api.client.delete("/api/v1/projects/p1", headers=admin)
    assert refused.status_code == 409 and "webhook" in refused.json()["detail"]
    assert api.client.delete(f"/api/v1/webhooks/{r.json()['id']}", headers=admin).status_code == 204
    new_job(api, admin)
    refused = api.client.delete("/api/v1/projects/p1", headers=admin)
    assert refused.status_code == 409 and "1 job(s)" in refused.json()["detail"]
    project(api, admin, "empty")
    assert api.client.delete("/api/v1/projects/empty", headers=admin).status_code == 204


def test_odd_numbers_and_characters_are_4xx_not_500(api: Api) -> None:
    import base64

    admin = api.key("acme", "admin")
    project(api, admin)
    job_id = new_job(api, admin)["id"]
    huge = base64.urlsafe_b64encode(b"s:" + b"9" * 30).decode().rstrip("=")
    for path in ("/api/v1/jobs", "/api/v1/features", "/api/v1/projects"):
        assert api.client.get(path, params={"cursor": huge}, headers=admin).status_code == 400, path
    for as_of in ("\u00b2", "9" * 5000):
        assert api.client.get(f"/api/v1/jobs/{job_id}", params={"as_of": as_of}, headers=admin).status_code == 400
    feed = api.client.get("/api/v1/projects/p1/events", headers={**admin, "Last-Event-ID": "9" * 5000})
    assert feed.status_code == 400
    for uri in ("postgresql://u:p@[::1/db", "postgresql://u:p@[zz]:5432/db"):
        r = api.client.post("/api/v1/connections", json={"name": "c", "uri": uri}, headers=admin)
        assert r.status_code == 422 and "host" in r.json()["detail"], r.text
    as_json = {**admin, "content-type": "application/json"}
    r = api.client.post("/api/v1/explorer/query", content='{"job_id": "\\ud800", "sql": "select 1"}', headers=as_json)
    assert r.status_code == 422, r.text
    r = api.client.post("/api/v1/explorer/profile", content='{"job_id": "x", "columns": ["\\ud800"]}', headers=as_json)
    assert r.status_code == 422, r.text


def test_uploads_need_a_readable_table_and_may_have_any_utf8_name(api: Api) -> None:
    admin = api.key("acme", "admin")

    def upload(name: str, data: bytes) -> object:
        return api.client.post("/api/v1/uploads", files={"file": (name, data, "text/csv")}, headers=admin)

    for name, data in (
        ("empty.csv", b""),
        ("blank.csv", b"\n\n"),
        ("header.csv", b"a,y\n\n"),
        ("fake.parquet", b"PAR1PAR1"),
    ):
        r = upload(name, data)
        assert r.status_code == 422 and "upload" in r.json()["detail"], (name, r.text)  # type: ignore[attr-defined]
    r = upload("данные.csv", b"a,y\n1,0\n")
    assert r.status_code == 201, r.text  # type: ignore[attr-defined]


def test_job_requests_refuse_unknown_fields_and_projects_unknown_connections(api: Api) -> None:
    admin = api.key("acme", "admin")
    project(api, admin)
    r = api.client.post(
        "/api/v1/jobs", json={"project_id": "p1", "source": "data.csv", "target": "y", "budget": 60}, headers=admin
    )
    assert r.status_code == 422 and "budget" in r.text
    r = api.client.post("/api/v1/projects", json={"name": "x", "descripton": "typo"}, headers=admin)
    assert r.status_code == 422 and "descripton" in r.text
    r = api.client.post("/api/v1/projects", json={"name": "x", "default_connection_id": "ghost"}, headers=admin)
    assert r.status_code == 422 and "ghost" in r.json()["detail"]
    r = api.client.post("/api/v1/projects/p1/webhooks", json={"url": "https://example.com:0/h"}, headers=admin)
    assert r.status_code == 422 and "port" in r.json()["detail"]
    for url in ("http://127.1/h", "http://0x7f000001/h", "http://2130706433/h"):  # 127.0.0.1 spelt otherwise
        r = api.client.post("/api/v1/projects/p1/webhooks", json={"url": url}, headers=admin)
        assert r.status_code == 422 and "loopback" in r.json()["detail"], (url, r.text)
