"""Hostile sources: a tenant points jobs, connections and the explorer at the server itself.

Every hostile source ends in a 4xx with one neutral message, nothing read, and
nothing stored in the event log; the explorer's limits (functions, depth, bytes,
time) hold; an uploaded file and an operator-allowed host still work.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from processors.sources import SourceError, SourcePolicy
from tests.conftest import POSTGRES_URL

pytestmark = pytest.mark.clickhouse
NEUTRAL = "is not available to your tenant"
SECRETS = ("root:x:", "api_keys", "key_hash", "PATH=", "AFEP_", "rolpassword", "gAAAAA")


def hostile_sources(data_dir: Path) -> list[tuple[str, str | None]]:
    """(source, table): each must be refused for tenant `alice`, whose upload area holds mine.csv."""
    d = os.path.realpath(data_dir)
    return [
        (f"sqlite:///{d}/readmodels.db", "api_keys"),  # sqlite:////abs
        (f"sqlite:///{d}/events.db", "stored_events"),
        (f"{d}/readmodels.db", None),
        (f"sqlite:///{d}/uploads/alice/../../readmodels.db", "connections"),
        (f"{d}/uploads/alice/../bob/bobs.csv", None),
        ("upload://../bob/bobs.csv", None),
        ("upload://..%2Fbob%2Fbobs.csv", None),
        ("upload://link.csv", None),  # a symlink out of the upload area
        ("upload://passwd.csv", None),  # a symlink to /etc/passwd
        ("upload://dir.csv", None),  # a directory
        ("upload://missing.csv", None),
        ("../bob/bobs.csv", None),
        ("../../readmodels.db.csv", None),
        (f"{d}/datasets/snapshot.parquet", None),
        ("/etc/passwd.csv", None),
        ("/proc/self/environ.csv", None),
        (f"duckdb:///{d}/datasets/other.duckdb", "t"),
        ("postgresql://postgres@127.0.0.1/postgres", "pg_authid"),
        ("postgresql://postgres@127.0.0.1:5432/test", "items"),
        ("postgresql://127.0.0.1:1/x", "t"),  # a port probe
        ("postgresql://postgres@localhost/postgres?host=/var/run/postgresql", "t"),
        ("mysql://root@127.0.0.1/mysql", "user"),
        ("file:///etc/passwd", None),
        ("ftp://evil/x.csv", None),
        ("mine.csv\x00.csv", None),
    ]


def _layout(data_dir: Path) -> None:
    """What a hostile tenant finds around: another tenant's upload, snapshots, symlinks out."""
    mine, bob = data_dir / "uploads" / "alice", data_dir / "uploads" / "bob"
    mine.mkdir(parents=True, exist_ok=True)
    bob.mkdir(parents=True, exist_ok=True)
    (bob / "bobs.csv").write_text("secret,y\n1,0\n")
    (data_dir / "datasets").mkdir(parents=True, exist_ok=True)
    (data_dir / "datasets" / "snapshot.parquet").write_bytes(b"PAR1")
    (mine / "dir.csv").mkdir(exist_ok=True)
    for name, target in (("link.csv", data_dir / "readmodels.db"), ("passwd.csv", Path("/etc/passwd"))):
        if not (mine / name).is_symlink():
            (mine / name).symlink_to(target)


@pytest.mark.parametrize("case", range(len(hostile_sources(Path("/srv/afep")))))
def test_the_policy_refuses_each_hostile_source(case: int, tmp_path: Path) -> None:
    data_dir = tmp_path / "afep"
    _layout(data_dir)
    source, table = hostile_sources(data_dir)[case]
    policy = SourcePolicy(data_dir=data_dir, roots=(str(tmp_path),), hosts=())
    with pytest.raises(SourceError) as refused:
        policy.admit(source, "alice", table)
    assert not any(secret in str(refused.value) for secret in SECRETS)


def _upload(client: httpx.Client, name: str, body: str) -> str:
    r = client.post("/uploads", files={"file": (name, body.encode(), "text/csv")})
    assert r.status_code == 201, r.text
    return str(r.json()["source"])


def _refused(r: httpx.Response) -> None:
    assert 400 <= r.status_code < 500, r.text
    assert not any(secret in r.text for secret in SECRETS), r.text


def test_hostile_sources_are_refused_before_the_log(hostile: Any) -> None:
    with hostile() as api:
        alice, bob = api.client("alice", "data_scientist"), api.client("bob", "data_scientist")
        api.project(alice)
        _upload(bob, "bobs.csv", "secret,y\n1,0\n")
        mine = _upload(alice, "mine.csv", "x,y\n1,0\n2,1\n")
        _layout(api.settings.data_dir)
        cases = hostile_sources(api.settings.data_dir)
        assert len(cases) >= 20
        for source, table in cases:
            before = api.store.last_position()
            job = alice.post("/jobs", json={"project_id": "p1", "source": source, "table": table, "target": "y"})
            _refused(job)
            assert api.store.last_position() == before, (source, "a refused job reached the log")
            _refused(alice.post("/connections", json={"name": "x", "uri": source}))
        # one message whether the path exists or not, whether the port is open or not
        d = os.path.realpath(api.settings.data_dir)
        details = {
            s: alice.post("/jobs", json={"project_id": "p1", "source": s, "table": "t", "target": "y"}).json()["detail"]
            for s in (f"sqlite:///{d}/readmodels.db", f"sqlite:///{d}/nope.db", "postgresql://127.0.0.1:1/x")
        }
        assert len({detail.replace(repr(s), "SOURCE") for s, detail in details.items()}) == 1, details
        assert all(NEUTRAL in detail for detail in details.values())
        # the tenant's own upload works, and the response shows no server path
        created = alice.post("/jobs", json={"project_id": "p1", "source": mine, "target": "y"})
        assert created.status_code == 201, created.text
        assert str(api.settings.data_dir) not in created.text and d not in created.text


def test_explorer_limits_hold(hostile: Any) -> None:
    with hostile(explorer_max_bytes=50_000) as api:
        alice = api.client("alice", "data_scientist")
        source = _upload(alice, "big.csv", "id,note\n" + "".join(f"{i},{'x' * 40}\n" for i in range(3000)))
        conn = alice.post("/connections", json={"name": "big", "uri": source})
        assert conn.status_code == 201, conn.text
        conn_id = conn.json()["id"]

        def ask(sql: str, **extra: Any) -> httpx.Response:
            body = {"connection_id": conn_id, "sql": sql, **extra}
            return alice.post("/explorer/query", json=body)  # type: ignore[no-any-return]

        ok = ask("SELECT count(*) AS n FROM data")
        assert ok.status_code == 200 and ok.json()["rows"] == [[3000]], ok.text
        datasets = os.path.realpath(api.settings.datasets_dir)
        for sql in (
            "SELECT pg_read_file('/etc/passwd')",
            f"SELECT * FROM read_parquet('{datasets}/*.parquet')",
            "SELECT * FROM '/etc/passwd'",
            "SELECT * FROM sqlite_master",
            "SELECT " + "(" * 5000 + "1" + ")" * 5000,
            "ATTACH '/etc/passwd' AS p",
        ):
            r = ask(sql)
            assert r.status_code == 422, (sql[:80], r.text)
            _refused(r)
        bomb = ask("SELECT repeat('x', 20000000) AS s FROM data LIMIT 3")
        assert bomb.status_code == 200 and bomb.json()["truncated"] is True and len(bomb.content) < 100_000
        wide = ask("SELECT * FROM data", max_rows=10_000).json()
        assert wide["truncated"] is True and len(wide["rows"]) < 3000
        slow = ask("SELECT count(*) FROM data a, data b, data c, data d", timeout_seconds=1)
        assert slow.status_code == 408, slow.text
        alice.post("/explorer/profile", json={"connection_id": conn_id, "columns": ["id"]})
        alice.get(f"/explorer/schema/{conn_id}")
        trail = api.client("alice", "admin").get("/audit", params={"limit": 500}).json()["items"]
        statuses = {(row["action"], row["status_code"]) for row in trail}
        assert {("explorer.query", 422), ("explorer.query", 408), ("explorer.query", 200)} <= statuses, statuses
        assert {("explorer.profile", 200), ("explorer.schema", 200)} <= statuses, statuses


# Bypasses the validator once let through: quoted or schema-qualified names, functions that run SQL strings.
POSTGRES_BYPASSES = [
    "select pg_catalog.\"pg_read_file\"('/etc/hostname')",
    "select \"pg_read_file\"('/etc/hostname')",
    "select pg_catalog.\"pg_ls_dir\"('.')",
    "select \"pg_ls_dir\"('.')",
    "select pg_catalog.\"pg_read_binary_file\"('/etc/hostname')",
    "select pg_catalog.\"query_to_xml\"('select rolname from pg_authid', true, true, '')",
    "select query_to_xml('select rolname from pg_authid', true, true, '')",
    "select query_to_xmlschema('select 1', true, true, '')",
    "select cursor_to_xml('c', 1, true, true, '')",
    "select table_to_xml('pg_authid', true, true, '')",
    "select * from ts_stat('select to_tsvector(rolname) from pg_authid')",
    "select * from public.ts_stat('select to_tsvector(rolname) from pg_authid')",
    "select * from (select * from ts_stat('select to_tsvector(rolname) from pg_authid')) s",
    "with w as (select * from ts_stat('select 1')) select * from w",
    "select ts_rewrite('a'::tsquery, 'select 1')",
    "select current_setting('data_directory')",
    "select * from rows from (pg_ls_dir('.'))",
]
DUCKDB_BYPASSES = [
    "select * from query('select current_setting(''allowed_paths'')')",
    "select * from query_table('data')",
    "select * from duckdb_settings()",
    'select * from "duckdb_settings"()',
    "select current_setting('allowed_paths')",
    "select getvariable('x')",
    "select * from data, lateral (select * from query('select 1')) q",
]


@contextlib.contextmanager
def _plain_postgres_role(table: str) -> Iterator[str]:
    """A LOGIN role with SELECT on `table` only (no superuser, no file roles); its URI."""
    import psycopg

    role = f"afep_ro_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"GRANT SELECT ON {table} TO {role}")
    try:
        yield POSTGRES_URL.replace("postgres@", f"{role}@", 1)
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f"REVOKE ALL ON {table} FROM {role}")
            conn.execute(f"DROP ROLE IF EXISTS {role}")


@pytest.mark.postgres
def test_an_operator_allowed_host_works_and_catalogs_stay_closed(hostile: Any) -> None:
    import psycopg

    table = f"afep_allowed_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} AS SELECT g AS x, g % 2 AS y FROM generate_series(1, 40) g")
    try:
        with _plain_postgres_role(table) as plain, hostile(source_hosts="127.0.0.1") as api:
            alice = api.client("alice", "data_scientist")
            api.project(alice)
            conn = alice.post("/connections", json={"name": "wh", "uri": plain})
            assert conn.status_code == 201, conn.text
            conn_id = conn.json()["id"]
            r = alice.post("/explorer/query", json={"connection_id": conn_id, "sql": f"SELECT sum(x) FROM {table}"})
            assert r.status_code == 200 and r.json()["rows"] == [[820]], r.text
            for sql in (
                "SELECT rolpassword FROM pg_authid",
                "SELECT pg_read_file('/etc/passwd')",
                "SELECT 1 INTO t2",
                *POSTGRES_BYPASSES,
            ):
                refused = alice.post("/explorer/query", json={"connection_id": conn_id, "sql": sql})
                assert refused.status_code == 422, (sql, refused.text)
                _refused(refused)
                assert "rejected-query" in refused.json()["type"], (sql, refused.text)
            write = alice.post(
                "/explorer/query", json={"connection_id": conn_id, "sql": f"SELECT * FROM {table} FOR UPDATE"}
            )
            assert write.status_code == 422, write.text
            job = alice.post(
                "/jobs", json={"project_id": "p1", "connection_id": conn_id, "table": table, "target": "y"}
            )
            assert job.status_code == 201, job.text
            before = api.store.last_position()
            catalog = alice.post(
                "/jobs", json={"project_id": "p1", "connection_id": conn_id, "table": "pg_authid", "target": "y"}
            )
            _refused(catalog)
            if api.backend == "postgres":  # AFEP's own database stays closed even on an allowed host
                own = alice.post("/connections", json={"name": "own", "uri": api.settings.database_url})
                _refused(own)
            assert api.store.last_position() == before
            # a superuser connection, on an allowed host, is refused before any query runs
            root = alice.post("/connections", json={"name": "root", "uri": POSTGRES_URL})
            assert root.status_code == 201, root.text
            root_id = root.json()["id"]
            for answer in (
                alice.post("/explorer/query", json={"connection_id": root_id, "sql": f"SELECT sum(x) FROM {table}"}),
                alice.get(f"/explorer/schema/{root_id}"),
            ):
                assert answer.status_code == 422, answer.text
                assert "can read server files" in answer.json()["detail"], answer.text
                _refused(answer)
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}")


def test_duckdb_functions_that_run_sql_are_refused(hostile: Any) -> None:
    with hostile() as api:
        alice = api.client("alice", "data_scientist")
        conn = alice.post("/connections", json={"name": "csv", "uri": _upload(alice, "mine.csv", "x,y\n1,0\n")})
        assert conn.status_code == 201, conn.text
        conn_id = conn.json()["id"]
        for sql in DUCKDB_BYPASSES:
            r = alice.post("/explorer/query", json={"connection_id": conn_id, "sql": sql})
            assert r.status_code == 422, (sql, r.text)
            assert "rejected-query" in r.json()["type"] and "allowed_paths" not in r.text, (sql, r.text)
            _refused(r)
        ok = alice.post("/explorer/query", json={"connection_id": conn_id, "sql": "select sum(x) from data"})
        assert ok.status_code == 200 and ok.json()["rows"] == [[1]], ok.text


def _mysql_root() -> Any:
    import pymysql

    return pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", connect_timeout=2, autocommit=True)


def _mysql_reachable() -> bool:
    try:
        _mysql_root().close()
        return True
    except Exception:
        return False


@pytest.mark.skipif(not _mysql_reachable(), reason="no MySQL/MariaDB at 127.0.0.1:3306")
def test_mysql_backticked_functions_and_file_privileged_accounts_are_refused(hostile: Any) -> None:
    tag = uuid.uuid4().hex[:10]
    database, user = f"afep_sec_{tag}", f"afep_ro_{tag}"
    root = _mysql_root()
    with root.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {database}")
        cursor.execute(f"CREATE TABLE {database}.items (x INTEGER)")
        cursor.execute(f"INSERT INTO {database}.items VALUES (1), (2)")
        cursor.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'pw-{tag}'")
        cursor.execute(f"GRANT SELECT ON {database}.* TO '{user}'@'%'")
    try:
        with hostile(source_hosts="127.0.0.1") as api:
            alice = api.client("alice", "data_scientist")
            plain = alice.post(
                "/connections", json={"name": "my", "uri": f"mysql://{user}:pw-{tag}@127.0.0.1:3306/{database}"}
            )
            assert plain.status_code == 201, plain.text
            plain_id = plain.json()["id"]
            ok = alice.post("/explorer/query", json={"connection_id": plain_id, "sql": "select count(*) from items"})
            assert ok.status_code == 200 and ok.json()["rows"] == [[2]], ok.text
            for sql in (
                "select `LOAD_FILE`('/etc/passwd')",
                "select `load_file`('/etc/passwd')",
                "select LOAD_FILE('/etc/passwd')",
                "select x from items where x = (select `sys_exec`('id'))",
                "select @@datadir",
            ):
                r = alice.post("/explorer/query", json={"connection_id": plain_id, "sql": sql})
                assert r.status_code == 422 and "rejected-query" in r.json()["type"], (sql, r.text)
                _refused(r)
            admin = alice.post("/connections", json={"name": "root", "uri": f"mysql://root@127.0.0.1:3306/{database}"})
            assert admin.status_code == 201, admin.text
            r = alice.post(
                "/explorer/query", json={"connection_id": admin.json()["id"], "sql": "select sum(x) from items"}
            )
            assert r.status_code == 422 and "can read server files" in r.json()["detail"], r.text
    finally:
        with root.cursor() as cursor:
            cursor.execute(f"DROP USER IF EXISTS '{user}'@'%'")
            cursor.execute(f"DROP DATABASE IF EXISTS {database}")
        root.close()
