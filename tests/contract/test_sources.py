"""One contract for every data-source backend: files (CSV, Parquet), SQLite, DuckDB, PostgreSQL, MySQL/MariaDB.

Each backend holds the same 50-row table; the same calls must give the same
answers, the same refusals and the same limits (rows, bytes, time).
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from processors.sources import (
    Backend,
    QueryTimeout,
    RejectedQuery,
    SourceError,
    SourcePolicy,
    load_table,
    open_backend,
    parse,
)
from tests.conftest import POSTGRES_URL

ROWS = [(i, f"name-{i}", i * 1.5) for i in range(50)]
FRAME = pl.DataFrame(ROWS, schema=["id", "name", "amount"], orient="row")
MYSQL = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}


def _mysql_reachable() -> bool:
    try:
        import pymysql

        pymysql.connect(**MYSQL, connect_timeout=2).close()  # type: ignore[arg-type]
        return True
    except Exception:
        return False


@contextlib.contextmanager
def _postgres() -> Iterator[tuple[str, str]]:
    import psycopg

    table = f"afep_src_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {table} (id INTEGER, name TEXT, amount DOUBLE PRECISION)")
        with conn.cursor() as cursor:
            cursor.executemany(f"INSERT INTO {table} VALUES (%s, %s, %s)", ROWS)
    try:
        yield POSTGRES_URL, table
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}")


@contextlib.contextmanager
def _mysql() -> Iterator[tuple[str, str]]:
    import pymysql

    database = f"afep_src_{uuid.uuid4().hex[:10]}"
    conn = pymysql.connect(**MYSQL, autocommit=True)  # type: ignore[arg-type]
    try:
        with conn.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE {database}")
            cursor.execute(f"CREATE TABLE {database}.items (id INTEGER, name TEXT, amount DOUBLE)")
            cursor.executemany(f"INSERT INTO {database}.items VALUES (%s, %s, %s)", ROWS)
        yield f"mysql://root@127.0.0.1:3306/{database}", "items"
    finally:
        with conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {database}")
        conn.close()


@pytest.fixture(
    params=[
        "csv",
        "parquet",
        "sqlite",
        "duckdb",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param(
            "mysql",
            marks=pytest.mark.skipif(not _mysql_reachable(), reason="no MySQL/MariaDB at 127.0.0.1:3306"),
        ),
    ]
)
def source(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Backend, str, str]]:
    """(backend, its table, the source string that names it)."""
    kind = str(request.param)
    if kind == "csv":
        FRAME.write_csv(tmp_path / "items.csv")
        uri, table = str(tmp_path / "items.csv"), "data"
    elif kind == "parquet":
        FRAME.write_parquet(tmp_path / "items.parquet")
        uri, table = str(tmp_path / "items.parquet"), "data"
    elif kind == "sqlite":
        with sqlite3.connect(tmp_path / "items.db") as conn:
            conn.execute("CREATE TABLE items (id INTEGER, name TEXT, amount REAL)")
            conn.executemany("INSERT INTO items VALUES (?, ?, ?)", ROWS)
        uri, table = f"sqlite:///{tmp_path / 'items.db'}", "items"
    elif kind == "duckdb":
        import duckdb

        with duckdb.connect(str(tmp_path / "items.duckdb")) as conn:
            conn.execute("CREATE TABLE items AS SELECT * FROM FRAME")
        uri, table = f"duckdb:///{tmp_path / 'items.duckdb'}", "items"
    else:
        with _postgres() if kind == "postgresql" else _mysql() as (uri, table):
            yield open_backend(SourcePolicy.local().admit(uri, "t")), table, uri
        return
    yield open_backend(SourcePolicy.local().admit(uri, "t")), table, uri


def test_load_gives_the_whole_table(source: tuple[Backend, str, str]) -> None:
    backend, table, uri = source
    df = backend.load(table)
    assert df.columns == ["id", "name", "amount"] and df.height == 50
    assert sorted(df["id"].to_list()) == list(range(50))
    assert load_table(uri, None if backend.kind in ("csv", "parquet") else table).height == 50


def test_run_caps_rows_and_says_so(source: tuple[Backend, str, str]) -> None:
    backend, table, _ = source
    result = backend.run(f"SELECT id, name FROM {table} ORDER BY id", max_rows=10, max_bytes=10**6, timeout=30)
    assert result.columns == ["id", "name"]
    assert [r[0] for r in result.rows] == list(range(10)) and result.truncated is True
    whole = backend.run(f"SELECT id FROM {table}", max_rows=100, max_bytes=10**6, timeout=30)
    assert len(whole.rows) == 50 and whole.truncated is False


def test_run_caps_bytes_and_says_so(source: tuple[Backend, str, str]) -> None:
    backend, table, _ = source
    result = backend.run(f"SELECT id, name FROM {table} ORDER BY id", max_rows=1000, max_bytes=200, timeout=30)
    assert 0 < len(result.rows) < 50 and result.truncated is True
    assert sum(len(str(v)) for row in result.rows for v in row) <= 200


@pytest.mark.parametrize(
    "sql",
    [
        "DELETE FROM {t}",
        "SELECT 1; SELECT 2",
        "SELECT * FROM read_parquet('/etc/passwd')",
        "SELECT pg_read_file('/etc/passwd')",
        "SELECT load_file('/etc/passwd')",
        "SELECT * FROM sqlite_master",
        "SELECT * FROM pg_catalog.pg_authid",
        "SELECT * FROM information_schema.tables",
        "SELECT * FROM mysql.user",
        "SELECT * FROM '/etc/passwd.csv'",
        "SELECT lo_import('/etc/passwd')",
        "SELECT dblink('host=x', 'select 1')",
        "SELECT \"pg_read_file\"('/etc/passwd')",
        "SELECT `LOAD_FILE`('/etc/passwd')",
        "SELECT * FROM ts_stat('select 1')",
        "SELECT query_to_xml('select 1', true, true, '')",
        "SELECT * FROM query('select 1')",
        "SELECT * FROM duckdb_settings()",
        "SELECT " + "(" * 5000 + "1" + ")" * 5000,
    ],
)
def test_run_refuses_what_is_not_a_plain_select_of_its_tables(source: tuple[Backend, str, str], sql: str) -> None:
    backend, table, _ = source
    with pytest.raises(RejectedQuery):
        backend.run(sql.replace("{t}", table), max_rows=10, max_bytes=10**6, timeout=10)


def test_run_is_read_only_on_the_session_too(source: tuple[Backend, str, str]) -> None:
    """A write that slipped past the validator would still fail: the data stays as it was."""
    backend, table, _ = source
    assert backend.load(table).height == 50
    with pytest.raises(SourceError):
        backend.run(f"SELECT * FROM {table} WHERE id = (DELETE FROM {table})", max_rows=1, max_bytes=10**6, timeout=5)
    assert backend.load(table).height == 50


def test_schema_lists_the_table_and_no_catalog(source: tuple[Backend, str, str]) -> None:
    backend, table, _ = source
    tables = backend.schema()
    assert [c["name"] for c in tables[table]] == ["id", "name", "amount"]
    assert not any(name.lower().startswith(("pg_", "sqlite_", "innodb")) for name in tables)


def test_load_refuses_system_catalogs_as_a_table(source: tuple[Backend, str, str]) -> None:
    backend, _, _ = source
    if backend.kind in ("csv", "parquet"):
        pytest.skip("a file has one table")
    for table in ("sqlite_master", "pg_catalog.pg_authid", "pg_authid", "information_schema.tables", "mysql.user"):
        with pytest.raises(SourceError):
            backend.load(table)


def test_timeout_holds_on_the_executing_connection(source: tuple[Backend, str, str]) -> None:
    backend, table, _ = source
    cross = ", ".join(f"{table} t{i}" for i in range(8))  # 50^8 rows: hours, unless interrupted
    started = time.monotonic()
    with pytest.raises(QueryTimeout):
        backend.run(f"SELECT count(*) AS n FROM {cross}", max_rows=1, max_bytes=10**6, timeout=1)
    assert time.monotonic() - started < 20


def test_same_uri_means_the_same_thing_everywhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse("sqlite:///shop.db").path == "shop.db"
    assert parse("sqlite:////abs/shop.db").path == "/abs/shop.db"
    assert parse("duckdb:///a%20b.duckdb").path == "a b.duckdb"
    mysql = parse("mysql://us%40er:p%3Aw%2Fd@db.example:3307/sh%2Dop")
    assert (mysql.user, mysql.password, mysql.host, mysql.port, mysql.database) == (
        "us@er",
        "p:w/d",
        "db.example",
        3307,
        "sh-op",
    )
    pg = parse("postgresql://us%40er:p%3Aw@db.example/wh")
    assert (pg.user, pg.password, pg.port, pg.database) == ("us@er", "p:w", None, "wh")
    with sqlite3.connect(tmp_path / "shop.db") as conn:
        conn.execute("CREATE TABLE orders (id INTEGER)")
        conn.execute("INSERT INTO orders VALUES (1)")
    monkeypatch.chdir(tmp_path)
    relative = load_table("sqlite:///shop.db", "orders")
    absolute = load_table(f"sqlite:///{tmp_path / 'shop.db'}", "orders")  # sqlite:////tmp/...
    assert relative.equals(absolute) and relative.height == 1
    for hostile in ("postgresql://h/db?host=/var/run/postgresql", "postgresql://h/db?sslkey=/etc/x", "ftp://x/y"):
        with pytest.raises(SourceError):
            parse(hostile)


def test_csv_header_quotes_follow_the_csv_standard(tmp_path: Path) -> None:
    path = tmp_path / "quoted.csv"
    path.write_text('id,"Amt""x","a,b"\n1,2,3\n')
    assert load_table(str(path)).columns == ["id", 'Amt"x', "a,b"]


@pytest.mark.parametrize(
    "kind",
    [
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param(
            "mysql", marks=pytest.mark.skipif(not _mysql_reachable(), reason="no MySQL/MariaDB at 127.0.0.1:3306")
        ),
    ],
)
def test_a_tenant_session_refuses_a_role_that_reads_server_files(kind: str) -> None:
    """Admitted by a tenant's policy (not the CLI's), a superuser / FILE-privileged role is refused on open."""
    with _postgres() if kind == "postgresql" else _mysql() as (uri, table):
        tenant = SourcePolicy(hosts=("127.0.0.1",)).admit(uri, "t")
        for call in (lambda b: b.load(table), lambda b: b.schema(), lambda b: b.run("SELECT 1", **LIMITS)):
            with pytest.raises(SourceError, match="can read server files"):
                call(open_backend(tenant))
        assert open_backend(SourcePolicy.local().admit(uri, "t")).load(table).height == 50


LIMITS = {"max_rows": 1, "max_bytes": 10**6, "timeout": 10.0}
