"""Tenancy hygiene as a hostile tenant sees it, over real HTTP on SQLite and PostgreSQL.

Ids are scoped per tenant, a client-chosen job id reveals nothing, tenants are
soft-deleted by the platform only, keys are listed and revoked, connection secrets
rotate, every refusal is audited, and one process owns a data dir.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from gateway.auth import issue_token, key_id_of
from gateway.cli import UsageError
from gateway.cli import app as cli
from projections import directory, jobs
from projections.database import Database

pytestmark = pytest.mark.clickhouse

REPO = Path(__file__).resolve().parents[2]
AFEP = [sys.executable, "-m", "gateway.cli"]


def _db(api: Any) -> Database:
    return Database(api.settings.database_url or api.settings.readmodel_db_path)


def _cli(api: Any, *args: str, **env: str | None) -> Any:
    """`afep ARGS` in-process against the server's data dir and database."""
    environ = {"AFEP_DATABASE_URL": api.settings.database_url, **env}
    return CliRunner().invoke(cli, [*args, "--data-dir", str(api.settings.data_dir)], env=environ)


def _upload(client: httpx.Client) -> str:
    """A small table in the tenant's upload area; its job source."""
    r = client.post("/uploads", files={"file": ("data.csv", b"a,y,z\n1,0,1\n2,1,0\n3,0,1\n4,1,0\n", "text/csv")})
    assert r.status_code == 201, r.text
    return str(r.json()["source"])


def _audit(client: httpx.Client, **params: str) -> list[dict[str, Any]]:
    r = client.get("/audit", params={"limit": "500", **params})
    assert r.status_code == 200, r.text
    return r.json()["items"]  # type: ignore[no-any-return]


def test_project_and_connection_ids_are_per_tenant(hostile: Any) -> None:
    with hostile() as api:
        alice, bob = api.client("alice"), api.client("bob")
        for client in (alice, bob):
            r = client.post("/projects", json={"name": "Risk", "id": "risk"})
            assert r.status_code == 201, r.text
        again = alice.post("/projects", json={"name": "Risk", "id": "risk"})
        assert again.status_code == 409 and "bob" not in again.text
        assert bob.get("/projects/risk").json()["tenant_id"] == "bob"
        assert bob.delete("/projects/risk").status_code == 204
        assert alice.get("/projects/risk").status_code == 200  # bob deleted only his own

        db = _db(api)
        try:
            for tenant in ("alice", "bob"):
                directory.create_connection(
                    db,
                    api.settings.secret_key,
                    tenant,
                    "warehouse",
                    tenant,
                    f"/data/{tenant}.csv",
                    None,
                    datetime.now(UTC),
                    kind="csv",
                    location=f"/data/{tenant}.csv",
                )
            assert directory.connection_uri(db, api.settings.secret_key, "bob", "warehouse") == "/data/bob.csv"
        finally:
            db.close()
        [mine] = alice.get("/connections").json()["items"]
        assert mine["location"] == "/data/alice.csv"
        assert alice.delete("/connections/warehouse").status_code == 204
        assert [c["location"] for c in bob.get("/connections").json()["items"]] == ["/data/bob.csv"]


def test_old_data_dirs_are_migrated_to_per_tenant_ids(hostile: Any) -> None:
    with hostile() as api:
        db = Database(api.settings.database_url or api.settings.data_dir / "old.db", prefix="old_")
        try:
            with db.transaction() as tx:  # the tables as data dirs made before scoping have them
                tx.execute(
                    """CREATE TABLE {projects} (id TEXT PRIMARY KEY, seq BIGINT NOT NULL, tenant_id TEXT NOT NULL,
                    name TEXT NOT NULL, description TEXT NOT NULL, default_connection_id TEXT,
                    settings TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL)"""
                )
                tx.execute(
                    """CREATE TABLE {tenants} (id TEXT PRIMARY KEY, seq BIGINT NOT NULL, name TEXT NOT NULL,
                    slug TEXT NOT NULL UNIQUE, tier TEXT NOT NULL, settings TEXT NOT NULL,
                    created_at TEXT NOT NULL, updated_at TEXT NOT NULL)"""
                )
                tx.execute("INSERT INTO {projects} VALUES ('risk', 1, 'alice', 'Risk', '', NULL, '{}', 't', 't')")
            directory.create_tables(db)
            directory.create_tables(db)  # idempotent
            now = datetime.now(UTC)
            directory.create_project(db, "bob", "risk", "Risk", "", None, now)
            assert directory.get_project(db, "alice", "risk")["name"] == "Risk"  # type: ignore[index]
            assert directory.get_project(db, "bob", "risk")["tenant_id"] == "bob"  # type: ignore[index]
            directory.delete_tenant(db, "alice", now)
            assert directory.is_deleted(db, "alice")
        finally:
            db.close()


def test_a_client_job_id_used_by_another_tenant_reveals_nothing(hostile: Any) -> None:
    with hostile() as api:
        alice, bob = api.client("alice", "data_scientist"), api.client("bob", "data_scientist")
        for client in (alice, bob):
            api.project(client)
        request = {"project_id": "p1", "source": _upload(alice), "target": "y", "job_id": "nightly"}
        assert _upload(bob) == request["source"]  # the same name, each in its own tenant's area
        first = alice.post("/jobs", json=request)
        assert first.status_code == 201, first.text
        assert first.json()["id"] == "nightly"
        theirs = bob.post("/jobs", json={**request, "target": "z"})
        assert theirs.status_code == 201, theirs.text
        bob_job = theirs.json()
        assert bob_job["id"] != "nightly" and bob_job["tenant_id"] == "bob" and bob_job["target"] == "z"
        assert theirs.headers["Location"].endswith(bob_job["id"])
        assert "alice" not in theirs.text and "taken" not in theirs.text
        repeat = bob.post("/jobs", json={**request, "target": "z"})
        assert repeat.status_code == 200 and repeat.json()["id"] == bob_job["id"]  # idempotent, as for alice
        assert alice.post("/jobs", json=request).status_code == 200
        assert bob.get("/jobs/nightly").status_code == 404
        assert alice.get("/jobs/nightly").json()["target"] == "y"
        assert [j["id"] for j in bob.get("/jobs").json()["items"]] == [bob_job["id"]]


def test_only_the_platform_deletes_a_tenant_softly(hostile: Any) -> None:
    with hostile() as api:
        alice = api.client("alice")
        operator = api.client("platform")
        api.project(alice)
        job = alice.post("/jobs", json={"project_id": "p1", "source": _upload(alice), "target": "y"})
        assert job.status_code == 201, job.text
        own = alice.delete("/tenants/alice")
        assert own.status_code == 403 and "platform" in own.json()["detail"]
        assert alice.get("/jobs").status_code == 200  # nothing happened

        token = issue_token(api.settings, "alice@example.com", "alice", "admin")
        assert operator.delete("/tenants/nobody-here").status_code == 404
        assert operator.delete("/tenants/alice").status_code == 204
        for headers in ({}, {"Authorization": f"Bearer {token}"}):
            r = alice.get("/jobs", headers=headers)
            assert r.status_code == 401 and "deleted" in r.json()["detail"], r.text

        db = _db(api)
        try:  # the records stay for the audit trail; the keys are revoked, not removed
            assert jobs.get_job(db, "alice", job.json()["id"]) is not None
            assert directory.get_project(db, "alice", "p1") is not None
            keys = directory.list_api_keys(db, "alice")
            assert keys and all(k["revoked_at"] for k in keys)
            with pytest.raises(directory.TenantDeleted):
                api.key("alice")
        finally:
            db.close()
        refused = operator.post("/keys", json={"tenant": "alice", "role": "admin"})
        assert refused.status_code == 409 and "deleted" in refused.json()["detail"]
        cli_refused = _cli(api, "keys", "create", "--tenant", "alice", "--role", "admin")
        assert isinstance(cli_refused.exception, UsageError) and "was deleted" in str(cli_refused.exception)
        assert operator.post("/tenants", json={"name": "alice"}).status_code == 409  # no silent revival
        deletions = _audit(operator, action="tenant.delete")
        assert [a["resource_id"] for a in deletions] == ["alice"]
        trail = _audit(operator, tenant="alice", action="job.create")  # the deleted tenant's trail stays
        assert [a["resource_id"] for a in trail] == [job.json()["id"]]
        bob = api.client("bob")
        assert bob.get("/audit", params={"tenant": "alice"}).status_code == 403
        assert operator.get("/tenants/alice").json()["deleted_at"]


def test_keys_are_listed_created_and_revoked_within_a_tenant(hostile: Any) -> None:
    with hostile() as api:
        alice, bob = api.client("alice"), api.client("bob")
        created = alice.post("/keys", json={"role": "viewer"})
        assert created.status_code == 201, created.text
        key, key_id = created.json()["key"], created.json()["key_id"]
        assert key_id_of(key) == key_id and created.json()["tenant_id"] == "alice"
        viewer = httpx.Client(base_url=api.url, headers={"Authorization": f"Bearer {key}"})
        try:
            assert viewer.get("/jobs").status_code == 200
            assert viewer.get("/keys").status_code == 403

            listed = alice.get("/keys").json()["items"]
            assert key_id in [k["key_id"] for k in listed] and {k["tenant_id"] for k in listed} == {"alice"}
            assert all("hash" not in name for k in listed for name in k) and key not in alice.get("/keys").text
            assert key_id not in bob.get("/keys").text
            assert bob.delete(f"/keys/{key_id}").status_code == 404
            assert bob.post("/keys", json={"role": "admin", "tenant": "alice"}).status_code == 403
            assert viewer.get("/jobs").status_code == 200

            assert alice.delete(f"/keys/{key_id}").status_code == 204
            revoked = viewer.get("/jobs")
            assert revoked.status_code == 401 and "revoked" in revoked.json()["detail"]
            assert [
                k["revoked_at"] is not None for k in alice.get("/keys").json()["items"] if k["key_id"] == key_id
            ] == [True]

            operator = api.client("platform")
            assert {k["tenant_id"] for k in operator.get("/keys").json()["items"]} >= {"alice", "bob", "platform"}
            made = operator.post("/keys", json={"tenant": "bob", "role": "api_client"})
            assert made.status_code == 201 and made.json()["tenant_id"] == "bob"

            actions = {a["action"] for a in _audit(alice)}
            assert {"key.create", "key.revoke"} <= actions
        finally:
            viewer.close()

        cli_key = api.key("carol", "viewer")
        listed_cli = _cli(api, "keys", "list", "--tenant", "carol")
        assert listed_cli.exit_code == 0, listed_cli.output
        assert key_id_of(cli_key) in listed_cli.output and cli_key not in listed_cli.output
        assert _cli(api, "keys", "revoke", key_id_of(cli_key)).exit_code == 0
        carol = httpx.Client(base_url=api.url, headers={"X-API-Key": cli_key})
        try:
            assert carol.get("/jobs").status_code == 401
        finally:
            carol.close()
        unknown = _cli(api, "keys", "revoke", "feedfacecafe")
        assert isinstance(unknown.exception, UsageError) and "afep keys list" in str(unknown.exception)


def test_key_and_tier_changes_at_the_command_line_are_audited_once(hostile: Any) -> None:
    with hostile() as api:
        alice = api.client("alice")
        made = _cli(api, "keys", "create", "--tenant", "alice", "--role", "viewer", USER="carol")
        assert made.exit_code == 0, made.output
        key = made.stdout.split()[0]
        assert _cli(api, "keys", "revoke", key_id_of(key), USER="carol").exit_code == 0
        assert _cli(api, "tenants", "set-tier", "alice", "enterprise", USER="carol").exit_code == 0
        deadline = time.monotonic() + 30  # the server copies the directory's audit outbox in the background
        while len(_audit(alice, actor="user:carol")) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.5)  # another drain or two: still one row each
        rows = _audit(alice, actor="user:carol")
        assert [(r["action"], r["resource_id"]) for r in rows] == [
            ("tenant.set_tier", "alice"),
            ("key.revoke", key_id_of(key)),
            ("key.create", key_id_of(key)),
        ]
        assert json.loads(rows[0]["new_state"])["tier"] == "enterprise"
        assert key not in str(rows) and directory.hash_key(key) not in str(rows)
        db = _db(api)
        try:
            assert directory.audit_outbox(db) == []
        finally:
            db.close()


def test_refusals_are_audited(hostile: Any) -> None:
    with hostile() as api:
        alice = api.client("alice")
        api.project(alice, "dup")
        assert alice.post("/projects", json={"name": "dup", "id": "dup"}).status_code == 409
        assert alice.post("/projects", json={"id": "no-name"}).status_code == 422
        assert (
            alice.post("/projects", content=b"{not json", headers={"content-type": "application/json"}).status_code
            == 422
        )
        assert alice.get("/projects/missing").status_code == 404
        assert alice.get("/no-such-route").status_code == 404
        refusals = _audit(alice, action="request.refused")
        seen = {(a["status_code"], a["resource_id"]) for a in refusals}
        assert {(409, "/api/v1/projects"), (422, "/api/v1/projects"), (404, "/api/v1/projects/missing")} <= seen
        assert (404, "/api/v1/no-such-route") in seen
        assert all(a["actor"].startswith("key:") and a["tenant_id"] == "alice" for a in refusals)
        assert len([a for a in refusals if a["status_code"] == 422]) == 2

        viewer = api.client("alice", "viewer")
        assert viewer.get("/audit").status_code == 403  # audited once, by the permission check
        denied = _audit(alice, action="denied.view_audit")
        assert len(denied) == 1 and not [a for a in _audit(alice, action="request.refused") if a["status_code"] == 403]

        stranger = httpx.Client(base_url=api.url, headers={"Authorization": "Bearer afep_000000000000_forged"})
        try:
            assert stranger.get("/jobs").status_code == 401
        finally:
            stranger.close()
        operator = api.client("platform")
        anonymous = [a for a in _audit(operator, action="request.refused") if a["status_code"] == 401]
        assert [a["actor"] for a in anonymous] == ["anonymous"]
        assert not [a for a in _audit(alice) if a["status_code"] == 401]


def test_rate_limit_names_the_tier_and_how_to_raise_it(hostile: Any) -> None:
    with hostile() as api:
        viewer = api.client("tiny", "viewer")
        codes = [viewer.get("/projects").status_code for _ in range(101)]
        assert codes[-1] == 429
        r = viewer.get("/projects")
        assert r.status_code == 429 and r.json()["tier"] == "free"
        assert "'free' tier" in r.json()["detail"] and "afep tenants set-tier tiny pro" in r.json()["detail"]
        assert _cli(api, "tenants", "set-tier", "tiny", "pro").exit_code == 0
        db = _db(api)
        try:
            assert directory.tenant_tier(db, "tiny") == "pro"
        finally:
            db.close()


def test_connection_secrets_rotate_and_a_lost_secret_is_a_clean_4xx(hostile: Any) -> None:
    old, new = "the-old-secret-0123456789abcdef", "the-new-secret-0123456789abcdef"
    with hostile() as api:
        alice = api.client("alice", "data_scientist")
        db = _db(api)
        try:
            at = datetime.now(UTC)
            directory.create_connection(
                db, old, "alice", "legacy", "legacy", "/data/a.csv", None, at, kind="csv", location="/data/a.csv"
            )
            directory.create_connection(
                db,
                "a-secret-nobody-has-any-more",
                "alice",
                "lost",
                "lost",
                "/d.csv",
                None,
                at,
                kind="csv",
                location="/d.csv",
            )
            with pytest.raises(directory.UndecryptableConnection):
                directory.connection_uri(db, [new], "alice", "legacy")
            assert directory.connection_uri(db, [new, old], "alice", "legacy") == "/data/a.csv"

            rotated = _cli(api, "keys", "rotate-secret", AFEP_SECRET_KEY=new, AFEP_SECRET_KEYS_OLD=f"x,{old}")
            assert "re-encrypted 1 connection(s)" in rotated.output
            assert isinstance(rotated.exception, UsageError) and "alice/lost" in str(rotated.exception)
            assert directory.connection_uri(db, new, "alice", "legacy") == "/data/a.csv"
            with pytest.raises(directory.UndecryptableConnection, match="AFEP_SECRET_KEYS_OLD"):
                directory.connection_uri(db, old, "alice", "legacy")  # now only the new secret opens it
        finally:
            db.close()
        r = alice.post("/explorer/query", json={"connection_id": "lost", "sql": "select 1"})
        assert r.status_code in (409, 422), r.text
        assert "no longer has" in r.json()["detail"] and "AFEP_SECRET_KEYS_OLD" in r.json()["detail"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_second_process_on_a_data_dir_is_refused_with_the_owner(tmp_path: Path) -> None:
    data_dir = tmp_path / "state"
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(REPO)}
    env.pop("AFEP_DATABASE_URL", None)
    owner = subprocess.Popen(
        [*AFEP, "serve", "--port", str(_free_port()), "--data-dir", str(data_dir)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        lock = data_dir / "afep.lock"
        deadline = time.monotonic() + 120
        while not (lock.exists() and lock.read_text().startswith(str(owner.pid))):
            assert owner.poll() is None and time.monotonic() < deadline, "afep serve did not start"
            time.sleep(0.2)
        csv = tmp_path / "d.csv"
        csv.write_text("a,y\n1,0\n2,1\n")

        def afep(*args: str) -> subprocess.CompletedProcess[str]:
            command = [*AFEP, *args, "--data-dir", str(data_dir)]
            return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)

        expected = f"data dir {data_dir} is in use by PID {owner.pid} (afep serve); stop it or use --data-dir"
        for args in (("serve", "--port", str(_free_port())), ("run", str(csv), "--target", "y")):
            second = afep(*args)
            assert second.returncode == 2, second.stderr
            assert second.stderr.strip().splitlines() == [f"afep: {expected}"]
        keys = afep("keys", "create", "--tenant", "acme", "--role", "viewer")  # the read models only: allowed
        assert keys.returncode == 0 and keys.stdout.strip().startswith("afep_"), keys.stderr
        assert "'free' tier" in keys.stderr
    finally:
        owner.terminate()
        owner.wait(timeout=60)
