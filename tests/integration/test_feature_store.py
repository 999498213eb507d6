"""Approved features in Feast, end to end: a real job (LightGBM) on a table with a key column, two
selected features approved, read back online for three keys and historically, equal to what
`afep apply` computes; a deprecated one leaves the online read.

Two backends, one job each (module fixture): embedded (SQLite online store, Parquet offline files,
the job names its --entity) and production (Redis online store, PostgreSQL offline tables, the
entity found as the table's id column).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from commands.unit_of_work import execute, load_feature
from domain.envelope import Context
from domain.feature import ApproveFeature
from gateway.settings import Settings
from tests.conftest import POSTGRES_URL, fresh_postgres_database, reachable
from tests.tables import customers

pytestmark = [pytest.mark.feast, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(REPO), "COLUMNS": "200"}
REDIS_DB = 15  # the tests' own Redis database; its AFEP keys are removed afterwards
SECRET = "a-feature-store-test-secret-that-is-long-enough"


def afep(*args: str, env: dict[str, str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "afep"), *args]  # the installed command, as users run it
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@dataclass
class Setup:
    backend: str
    root: Path
    settings: Settings
    env: dict[str, str]
    job_id: str
    features: list[dict[str, Any]]  # the two approved, best first (features.json records)
    frame: pl.DataFrame
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def out(self) -> Path:
        return self.root / "out"

    @property
    def keys(self) -> list[int]:
        ids = self.frame["customer_id"].to_list()
        return [ids[0], ids[len(ids) // 2], ids[-1]]

    def store(self) -> Any:
        from gateway.runtime_wiring import build_store

        return build_store(self.settings)

    def repository(self) -> Any:
        from gateway.runtime_wiring import feature_store_config
        from processors.featurestore.repository import Repository

        return Repository(feature_store_config(self.settings), "default", "default")

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return afep(*args, "--data-dir", str(self.settings.data_dir), env=self.env, cwd=self.root)


@pytest.fixture(scope="module", params=["embedded", "production"])
def setup(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    backend = request.param
    with ExitStack() as stack:
        options: dict[str, Any] = {}
        if backend == "production":
            if not reachable(6379):
                pytest.skip("Redis is not running at 127.0.0.1:6379; start redis-server to test the production store")
            options = {
                "feast_online_store": "redis",
                "redis_url": f"redis://127.0.0.1:6379/{REDIS_DB}",
                "feast_offline_url": stack.enter_context(fresh_postgres_database("afep_feast")),
            }
        root = tmp_path_factory.mktemp(backend)
        settings = Settings(data_dir=root / "state", secret_key=SECRET, **options)
        env = {**ENV, **{f"AFEP_{k.upper()}": str(v) for k, v in options.items()}}
        frame = customers()
        frame.write_csv(root / "customers.csv")
        started = time.monotonic()
        entity = ["--entity", "customer_id"] if backend == "embedded" else []  # production: the profile's id column
        run = afep(
            *("run", "customers.csv", "--target", "Churn", *entity, "--seed", "0", "--out", "out"),
            *("--data-dir", str(settings.data_dir), "--quiet"),
            env=env,
            cwd=root,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        timings = {"job_s": time.monotonic() - started}
        selected = json.loads((root / "out" / "features.json").read_text())
        assert len(selected) >= 2, f"the job selected {len(selected)} feature(s); the test needs two"
        job_id = json.loads((root / "out" / "result.json").read_text())["job_id"]
        setup = Setup(backend, root, settings, env, job_id, selected[:2], frame, timings)
        if backend == "production":
            stack.callback(_teardown_online_store, setup)

        # the first through the CLI (its own process imports Feast), the second by the agent in this process
        first, second = (f["feature_id"] for f in setup.features)
        started = time.monotonic()
        approved = setup.cli("features", "approve", first, "--comment", "looks right")
        assert approved.returncode == 0, approved.stdout + approved.stderr
        assert "registered in Feast view customers_features v1" in approved.stdout, approved.stdout
        timings["cli_approve_s"] = time.monotonic() - started
        timings["agent_approve_s"] = _approve_here(setup, second)
        yield setup


def _approve_here(setup: Setup, feature_id: str) -> float:
    """Approve as the API does, then run the feature-store agent in this process until it is idle."""
    from gateway.runtime_wiring import build_workbench
    from processors.agents import feature_store
    from processors.runtime import LocalRuntime
    from processors.sources import SourcePolicy

    store = setup.store()
    context = Context(at=datetime.now(UTC), actor="user:test", tenant_id="default", correlation_id=setup.job_id)
    execute(store, [(ApproveFeature(feature_id, "in process"), context)])
    bench = build_workbench(setup.settings, SourcePolicy.local(setup.settings.data_dir))
    runtime = LocalRuntime(store, bench, agents=[feature_store])
    started = time.monotonic()
    try:
        runtime.run_until_idle()
    finally:
        runtime.stop()
        store.close()
    return time.monotonic() - started


def _teardown_online_store(setup: Setup) -> None:
    try:
        setup.repository().feature_store().teardown()  # this project's keys in the tests' Redis database
    except Exception as error:
        print(f"could not tear down the Redis online store: {error}", file=sys.stderr)


def applied(setup: Setup, keys: list[int]) -> pl.DataFrame:
    """What `afep apply` computes for the rows of `keys`, in that order."""
    from processors.apply import apply_features
    from sandbox import Sandbox

    rows = setup.frame.filter(pl.col("customer_id").is_in(keys)).drop("Churn")
    rows = rows.join(pl.DataFrame({"customer_id": keys, "_order": range(len(keys))}), on="customer_id")
    with Sandbox() as sandbox:
        return apply_features(setup.out, rows.sort("_order").drop("_order"), sandbox)


def same(served: list[Any], expected: list[Any]) -> None:
    as_floats = [[np.nan if v is None else float(v) for v in values] for values in (served, expected)]
    np.testing.assert_array_equal(*as_floats)  # exactly equal: the same code on the same rows


def fields(setup: Setup) -> list[str]:
    return [f["name"] for f in setup.features]


def events(setup: Setup, *types: str) -> list[Any]:
    store = setup.store()
    try:
        return [e for e in store.read_all(after=0, limit=100_000, types=types)]
    finally:
        store.close()


# ---------------------------------------------------------------------------------------------


def test_two_approved_features_are_served_online_as_afep_apply_computes_them(setup: Setup) -> None:
    repo = setup.repository()
    online = repo.online("customers_features", fields(setup), [{"customer_id": k} for k in setup.keys])
    expected = applied(setup, setup.keys)
    assert online["customer_id"] == setup.keys
    for name in fields(setup):
        assert all(v is not None for v in online[name]), online
        same(online[name], expected[name].to_list())
    # a key the table does not have: no values, no error
    missing = repo.online("customers_features", fields(setup), [{"customer_id": 1}])
    assert missing[fields(setup)[0]] == [None]
    if setup.backend == "embedded":  # the CLI prints the same values
        first = setup.features[0]
        keys = [arg for k in setup.keys for arg in ("--entity", str(k))]
        shown = setup.cli("features", "serve-online", first["feature_id"], *keys)
        assert shown.returncode == 0, shown.stderr
        assert all(repr(v) in shown.stdout for v in expected[first["name"]].to_list()), shown.stdout
        bad = setup.cli("features", "serve-online", first["feature_id"], "--entity", "abc")
        assert bad.returncode == 2 and "holds integers; 'abc' is not one" in bad.stderr
        absent = setup.cli("features", "serve-online", first["feature_id"], "--entity", "1")
        assert absent.returncode == 0 and "no online value for 1: a key that is not in" in absent.stdout, absent.stdout
    print(f"\n{setup.backend} timings: {json.dumps({k: round(v, 1) for k, v in setup.timings.items()})}")


def test_historical_features_equal_the_applied_values(setup: Setup) -> None:
    import pandas as pd

    entity_df = pd.DataFrame({"customer_id": setup.keys, "event_timestamp": [pd.Timestamp.now(tz="UTC")] * 3})
    store = setup.repository().feature_store()
    refs = [f"customers_features:{name}" for name in fields(setup)]
    history = store.get_historical_features(entity_df=entity_df, features=refs).to_df()
    history = history.set_index("customer_id").loc[setup.keys]
    expected = applied(setup, setup.keys)
    for name in fields(setup):
        same(history[name].tolist(), expected[name].to_list())


def test_the_log_the_repository_and_the_read_models_show_the_registration(setup: Setup) -> None:
    first, second = (f["feature_id"] for f in setup.features)
    registered = [e.event for e in events(setup, "FeatureRegistered")]
    assert [(e.feature_id, e.version, e.status) for e in registered] == [
        (first, 1, "registered"),
        (first, 2, "registered"),
        (second, 2, "registered"),
    ]
    assert {e.entity for e in registered} == {"customer_id"} and {e.feature_view for e in registered} == {
        "customers_features"
    }
    assert all(e.ttl_seconds == 7 * 86400 and e.online for e in registered)
    assert registered[1].definition_hash == registered[2].definition_hash != registered[0].definition_hash
    materialized = [e.event for e in events(setup, "FeatureMaterialized")]
    assert [(e.feature_id, e.version, e.status, e.rows) for e in materialized] == [
        (first, 1, "complete", 800),
        (first, 2, "complete", 800),
        (second, 2, "complete", 800),
    ]
    online = "redis" if setup.backend == "production" else "sqlite"
    assert all(f"into the {online} online store" in e.detail for e in materialized)

    # the repository: features.py defines exactly the objects Feast holds
    repo = setup.repository()
    namespace: dict[str, Any] = {}
    exec(compile((repo.path / "features.py").read_text(), "features.py", "exec"), namespace)
    written = namespace["customers_features"]
    held = repo.feature_store().get_feature_view("customers_features")
    applied_only = held.__copy__()
    applied_only.materialization_intervals = []  # what materializing added to the registry's copy
    assert written == applied_only and namespace["entity_0"] == repo.feature_store().get_entity("customer_id")
    assert held.tags["generated_by"] == "afep" and held.tags["job_id"] == setup.job_id
    assert held.tags["afep_version"] == "2" and held.online and held.ttl.days == 7
    assert [(f.name, f.tags["feature_id"]) for f in held.features] == [
        (n, i) for n, i in zip(fields(setup), (first, second))
    ]
    yaml = (repo.path / "feature_store.yaml").read_text()
    offline = 'type: "postgres"' if setup.backend == "production" else "type: file"
    assert f"type: {online}" in yaml and offline in yaml  # (no password in it: see the unit tests)

    # the read models: the feature's feast_registration block and its lineage
    from projections import features, lineage
    from projections.database import Database
    from projections.projector import Projector

    db = Database(setup.root / "readmodels-check.db")
    store = setup.store()
    try:
        Projector(db, store).rebuild()
        row = features.get_feature(db, "default", second)
        assert row is not None and row["status"] == "approved"
        assert row["feast_registration"] == {
            **row["feast_registration"],
            "feature_view": "customers_features",
            "version": 2,
            "entity": "customer_id",
            "ttl": "7d",
            "online_enabled": True,
            "status": "registered",
            "materialization_status": "COMPLETE",
            "materialized_rows": 800,
        }
        graph = lineage.feature_lineage(db, "default", second)
        relations = {(e["relation"], e["dst_id"]) for e in graph["edges"]}
        assert ("registered_in", "customers_features v2") in relations
        assert ("materialized_to", "customers_features v2") in relations
        listed = features.list_features(db, "default", job_id=setup.job_id, status="approved").items
        assert {r["id"]: r["feast_registration"]["version"] for r in listed} == {first: 2, second: 2}
    finally:
        store.close()
        db.close()


def test_a_redelivered_approval_changes_nothing_and_rebuilds_a_lost_repository(setup: Setup) -> None:
    from gateway.runtime_wiring import build_workbench
    from processors.agents import feature_store
    from processors.sources import SourcePolicy

    store = setup.store()
    bench = build_workbench(setup.settings, SourcePolicy.local(setup.settings.data_dir))
    recorded: list[Any] = []
    bench.emit = recorded.extend
    approvals = events(setup, "FeatureApproved")
    try:
        before = store.last_position()
        for envelope in approvals:
            assert feature_store.react(envelope, store, bench) == []
        assert recorded == [] and store.last_position() == before
        feature = load_feature(store, setup.features[1]["feature_id"])
        assert feature is not None and feature.registration is not None and feature.registration.version == 2
        if setup.backend == "embedded":  # the repository lost (a data dir restored without it): rebuilt from the log
            lost = setup.repository().path
            shutil.rmtree(lost)
            assert feature_store.react(approvals[-1], store, bench) == []
            assert [c.message for c in recorded] == ["restored view customers_features v2 in Feast from the log"]
            assert store.last_position() == before
            served = setup.repository().online("customers_features", fields(setup), [{"customer_id": setup.keys[0]}])
            expected = applied(setup, setup.keys[:1])
            for name in fields(setup):
                same(served[name], expected[name].to_list())
    finally:
        bench.close()
        store.close()
    if setup.backend == "embedded":  # online values lost, the registry intact: an explicit sync puts them back
        online_db = setup.repository().path / "online_store.db"
        with sqlite3.connect(online_db) as conn:
            for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
                conn.execute(f'DELETE FROM "{table}"')
        gone = setup.repository().online("customers_features", fields(setup), [{"customer_id": setup.keys[0]}])
        assert all(gone[name][0] is None for name in fields(setup))
        done = setup.cli("features", "sync", setup.features[0]["feature_id"])
        assert done.returncode == 0 and "in line with the log" not in done.stdout + done.stderr, (
            done.stdout + done.stderr
        )
        served = setup.repository().online("customers_features", fields(setup), [{"customer_id": setup.keys[0]}])
        expected = applied(setup, setup.keys[:1])
        for name in fields(setup):
            same(served[name], expected[name].to_list())
        again = setup.cli("features", "sync", setup.features[0]["feature_id"])
        assert again.returncode == 0 and "in line with the log" in again.stdout + again.stderr, again.stdout


@pytest.mark.clickhouse
def test_online_values_over_the_api_are_role_checked_and_tenant_scoped(setup: Setup, serve: Any) -> None:
    import httpx

    from gateway.app import create_app
    from gateway.auth import create_api_key

    first = setup.features[0]
    store = setup.store()
    try:
        with serve(create_app(setup.settings, store=store)) as url:
            viewer = {"Authorization": f"Bearer {create_api_key(setup.settings, 'default', 'viewer')}"}
            stranger = {"Authorization": f"Bearer {create_api_key(setup.settings, 'globex', 'admin')}"}
            route = f"{url}/features/{first['feature_id']}/online"
            params = [("entity", str(k)) for k in setup.keys]
            reply = httpx.get(route, params=params, headers=viewer, timeout=120)
            assert reply.status_code == 200, reply.text
            body = reply.json()
            assert body["feature_view"] == "customers_features" and body["entity"] == "customer_id"
            assert [v["entity"] for v in body["values"]] == setup.keys
            same([v["value"] for v in body["values"]], applied(setup, setup.keys)[first["name"]].to_list())
            assert httpx.get(route, params=params, headers=stranger).status_code == 404
            assert httpx.get(route, headers=viewer).status_code == 422  # no key
            bad = httpx.get(route, params=[("entity", "abc")], headers=viewer)
            assert bad.status_code == 422 and "is not one" in bad.json()["detail"]
            shown = httpx.get(f"{url}/features/{first['feature_id']}", headers=viewer).json()
            assert shown["feast_registration"]["feature_view"] == "customers_features"
            # the job's live feed (it replays, then ends: the job is complete) and its history
            kinds = "feature_registered,feature_materialized"
            feed = httpx.get(f"{url}/jobs/{setup.job_id}/events", params={"event_types": kinds}, headers=viewer)
            sent = [json.loads(line[5:]) for line in feed.text.splitlines() if line.startswith("data:")]
            types = [m["type"] for m in sent if m["type"] != "end"]
            assert types.count("feature_registered") == 3 and types.count("feature_materialized") == 3
            assert {m["data"]["feature_view"] for m in sent if m["type"] != "end"} == {"customers_features"}
            assert all(m["agent_type"] == "agent:feature_store" for m in sent if m["type"] != "end")
            history = httpx.get(f"{url}/jobs/{setup.job_id}/history", params={"as_of": "999999"}, headers=viewer).json()
            state = {f["feature_id"]: f for f in history["state"]["features"]}
            assert state[first["feature_id"]]["registration"]["version"] == 2
            assert state[first["feature_id"]]["materialization"]["status"] == "complete"
            others = httpx.get(f"{url}/features", params={"job_id": setup.job_id, "status": "rejected"}, headers=viewer)
            rejected = others.json()["items"][0]["id"]
            refused = httpx.get(f"{url}/features/{rejected}/online", params=params, headers=viewer)
            assert refused.status_code == 409 and "was never approved" in refused.json()["detail"]
    finally:
        store.close()


def test_deprecating_a_feature_removes_it_from_online_reads(setup: Setup) -> None:
    first, second = setup.features
    gone = setup.cli("features", "deprecate", first["feature_id"], "--reason", "superseded")
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert "removed from Feast view customers_features v3" in gone.stdout
    repo = setup.repository()
    with pytest.raises(Exception, match=first["name"]):
        repo.online("customers_features", [first["name"]], [{"customer_id": setup.keys[0]}])
    kept = repo.online("customers_features", [second["name"]], [{"customer_id": k} for k in setup.keys])
    same(kept[second["name"]], applied(setup, setup.keys)[second["name"]].to_list())
    last = {e.event.feature_id: e.event for e in events(setup, "FeatureRegistered")}
    assert (last[first["feature_id"]].version, last[first["feature_id"]].status) == (3, "removed")
    assert (last[second["feature_id"]].version, last[second["feature_id"]].status) == (3, "registered")
    if setup.backend == "embedded":  # its stale values are gone from the online store too
        table = f"{repo.feature_store().project}_customers_features"
        with sqlite3.connect(repo.path / "online_store.db") as conn:
            names = {r[0] for r in conn.execute(f"SELECT DISTINCT feature_name FROM {table}")}
        assert names == {second["name"]}
    read = setup.cli("features", "serve-online", first["feature_id"], "--entity", str(setup.keys[0]))
    assert read.returncode == 2 and "was deprecated and removed from view customers_features at v3" in read.stderr


def test_the_postgres_url_is_the_tests_server(setup: Setup) -> None:
    """The production backend really used PostgreSQL: the views' value tables are there."""
    if setup.backend != "production":
        pytest.skip("the embedded backend keeps its values in Parquet files")
    import psycopg

    assert setup.settings.feast_offline_url and setup.settings.feast_offline_url.startswith(
        POSTGRES_URL.rsplit("/", 1)[0]
    )
    with psycopg.connect(setup.settings.feast_offline_url) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'afep_feast'")}
    assert len(tables) == 3 and all(t.startswith("customers_features_") for t in tables)


def test_with_a_server_running_the_cli_waits_for_its_agent_and_the_last_deprecation_deletes_the_view(
    setup: Setup,
) -> None:
    if setup.backend != "embedded":
        pytest.skip("one backend is enough for the CLI's waiting")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**setup.env, "AFEP_SECRET_KEY": SECRET}
    command = [str(Path(sys.executable).parent / "afep"), "serve", "--port", str(port)]
    server = subprocess.Popen(
        [*command, "--data-dir", str(setup.settings.data_dir)], cwd=setup.root, env=env, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 120
        while not reachable(port):
            assert server.poll() is None and time.monotonic() < deadline, "afep serve did not start"
            time.sleep(0.2)
        second = setup.features[1]
        gone = setup.cli("features", "deprecate", second["feature_id"], "--reason", "retired")
        assert gone.returncode == 0, gone.stdout + gone.stderr
        assert "in use by a server; waiting for its feature-store agent" in gone.stdout
        assert "removed from Feast view customers_features v4" in gone.stdout
    finally:
        server.terminate()
        server.wait(timeout=60)
    repo = setup.repository()  # a fresh one: the registry as the server left it
    assert repo.feature_store().list_feature_views() == [] and repo.specs() == []
    assert "FeatureView(" not in (repo.path / "features.py").read_text()
