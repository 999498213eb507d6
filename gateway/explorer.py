"""Read-only exploratory SQL over a connection or a job's dataset.

Read-only for real, in three layers: sqlglot admits exactly one SELECT (no DDL,
DML, PRAGMA, COPY, ATTACH...); the query runs on a read-only connection
(DuckDB `read_only` / external access off, SQLite `mode=ro` + `query_only`,
PostgreSQL `default_transaction_read_only`, MySQL `TRANSACTION READ ONLY`); and
rows and time are capped (the result is wrapped in a LIMIT; a timer interrupts).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import sqlglot
from sqlglot import exp

SOURCE_VIEW = "data"  # files and job datasets are exposed as this table
_DIALECTS = {
    "csv": "duckdb",
    "parquet": "duckdb",
    "duckdb": "duckdb",
    "sqlite": "sqlite",
    "postgresql": "postgres",
    "mysql": "mysql",
}
_FORBIDDEN = (
    exp.Insert,
    exp.Update,
    exp.Delete,
    exp.Create,
    exp.Drop,
    exp.Alter,
    exp.Command,
    exp.Merge,
    exp.Into,
    exp.Copy,
    exp.Pragma,
    exp.Set,
    exp.Transaction,
    exp.Commit,
    exp.Rollback,
    exp.Use,
)
_FILE_FUNCTIONS = {
    "read_csv",
    "read_csv_auto",
    "read_parquet",
    "parquet_scan",
    "read_json",
    "read_json_auto",
    "read_text",
    "read_blob",
    "glob",
    "sqlite_scan",
    "postgres_scan",
    "mysql_scan",
    "load_extension",
}


class RejectedQuery(ValueError):
    """The SQL is not a single read-only SELECT; the message says what to change."""


class QueryTimeout(TimeoutError):
    """The query ran past its time limit."""


@dataclass(frozen=True)
class Source:
    kind: str  # csv | parquet | duckdb | sqlite | postgresql | mysql
    uri: str  # a path for files, the full URI (with credentials) otherwise


@dataclass(frozen=True)
class Result:
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool
    elapsed_ms: float


def validate(sql: str, kind: str) -> str:
    """The single SELECT in `sql`, re-rendered for the source's dialect, or RejectedQuery."""
    dialect = _DIALECTS[kind]
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    except (sqlglot.errors.ParseError, sqlglot.errors.TokenError) as error:
        raise RejectedQuery(f"the SQL does not parse as {dialect}: {str(error).splitlines()[0]}") from None
    if len(statements) != 1:
        raise RejectedQuery(f"send exactly one SELECT statement (got {len(statements)})")
    [statement] = statements
    if not isinstance(statement, exp.Query):
        raise RejectedQuery(f"only SELECT queries are allowed here, not {statement.key.upper()}")
    for node in statement.walk():
        if isinstance(node, _FORBIDDEN):
            raise RejectedQuery(f"{node.key.upper()} is not allowed in an exploratory query; use a plain SELECT")
        if isinstance(node, exp.Func) and node.sql_name().lower() in _FILE_FUNCTIONS:
            raise RejectedQuery(f"{node.sql_name()}() reads outside the connection; query the `{SOURCE_VIEW}` table")
        if isinstance(node, exp.Anonymous) and str(node.this).lower() in _FILE_FUNCTIONS:
            raise RejectedQuery(f"{node.this}() reads outside the connection; query the `{SOURCE_VIEW}` table")
    return statement.sql(dialect=dialect)


def _file_path(uri: str) -> str:
    """sqlite:///relative.db or sqlite:////absolute.db (the SQLAlchemy convention)."""
    return unquote(uri.split(":///", 1)[1]) if ":///" in uri else unquote(urlsplit(uri).path)


@contextmanager
def _connect(source: Source, timeout: float) -> Iterator[tuple[Any, Any]]:
    """(DB-API connection, interrupt callable) opened read-only."""
    conn: Any
    if source.kind in ("csv", "parquet", "duckdb"):
        import duckdb

        if source.kind == "duckdb":
            conn = duckdb.connect(_file_path(source.uri), read_only=True)
        else:
            conn = duckdb.connect(":memory:")
            reader = "read_parquet" if source.kind == "parquet" else "read_csv_auto"
            path = source.uri.replace("'", "''")
            conn.execute(f"CREATE VIEW {SOURCE_VIEW} AS SELECT * FROM {reader}('{path}')")
            conn.execute(f"SET allowed_paths = ['{path}']")  # the view's file only, nothing else
        conn.execute("SET enable_external_access = false")
        conn.execute("SET lock_configuration = true")
        try:
            yield conn, conn.interrupt
        finally:
            conn.close()
    elif source.kind == "sqlite":
        path = _file_path(source.uri)
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
        conn.execute("PRAGMA query_only = 1")
        try:
            yield conn, conn.interrupt
        finally:
            conn.close()
    elif source.kind == "postgresql":
        import psycopg

        ms = int(timeout * 1000)
        conn = psycopg.connect(
            source.uri, autocommit=True, options=f"-c default_transaction_read_only=on -c statement_timeout={ms}"
        )
        try:
            yield conn, conn.cancel
        finally:
            conn.close()
    elif source.kind == "mysql":
        import pymysql

        parts = urlsplit(source.uri)
        conn = pymysql.connect(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 3306,
            user=unquote(parts.username or "root"),
            password=unquote(parts.password or ""),
            database=parts.path.lstrip("/") or None,
            read_timeout=int(timeout) + 1,
        )
        with conn.cursor() as cursor:
            cursor.execute(f"SET SESSION MAX_EXECUTION_TIME = {int(timeout * 1000)}")
            cursor.execute("START TRANSACTION READ ONLY")
        try:
            yield conn, lambda: None
        finally:
            conn.close()
    else:
        raise RejectedQuery(f"cannot explore a {source.kind!r} source")


def run(source: Source, sql: str, *, max_rows: int = 1000, timeout: float = 10.0) -> Result:
    dialect = _DIALECTS[source.kind]
    inner = validate(sql, source.kind)
    wrapped = exp.select("*").from_(exp.paren(sqlglot.parse_one(inner, read=dialect)).as_("q")).limit(max_rows + 1)
    started = time.perf_counter()
    try:
        with _connect(source, timeout) as (conn, interrupt):
            timer = threading.Timer(timeout, interrupt)
            timer.start()
            try:
                cursor = conn.cursor()
                cursor.execute(wrapped.sql(dialect=dialect))
                rows = [list(r) for r in cursor.fetchmany(max_rows + 1)]
                columns = [d[0] for d in cursor.description or []]
            finally:
                timer.cancel()
    except RejectedQuery:
        raise
    except Exception as error:  # noqa: BLE001 - four drivers, no common base: report, don't crash
        if time.perf_counter() - started >= timeout:
            raise QueryTimeout(f"the query ran past {timeout:.0f} s; add filters or a LIMIT") from None
        raise RejectedQuery(f"the database refused the query: {str(error).splitlines()[0]}") from None
    return Result(
        columns,
        [[_json(v) for v in r] for r in rows[:max_rows]],
        len(rows) > max_rows,
        round((time.perf_counter() - started) * 1000, 2),
    )


def _json(value: Any) -> Any:
    return value if value is None or isinstance(value, (int, float, str, bool)) else str(value)


def schema(source: Source) -> dict[str, list[dict[str, str]]]:
    """{table: [{name, type}]} for the source."""
    if source.kind in ("csv", "parquet", "duckdb"):
        query = (
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "ORDER BY table_name, ordinal_position"
        )
    elif source.kind == "sqlite":
        query = (
            "SELECT m.name, p.name, p.type FROM sqlite_master m, pragma_table_info(m.name) p "
            "WHERE m.type IN ('table', 'view') ORDER BY m.name, p.cid"
        )
    else:
        where = "table_schema NOT IN ('pg_catalog', 'information_schema', 'mysql', 'performance_schema', 'sys')"
        query = (
            f"SELECT table_name, column_name, data_type FROM information_schema.columns WHERE {where} "
            "ORDER BY table_name, ordinal_position"
        )
    out: dict[str, list[dict[str, str]]] = {}
    try:
        with _connect(source, 10.0) as (conn, _):
            cursor = conn.cursor()
            cursor.execute(query)
            rows = cursor.fetchall()
    except RejectedQuery:
        raise
    except Exception as error:  # noqa: BLE001 - four drivers, no common base: report, don't crash
        raise RejectedQuery(f"could not read the source's schema: {str(error).splitlines()[0]}") from None
    for table, column, kind in rows:
        out.setdefault(str(table), []).append({"name": str(column), "type": str(kind)})
    return out


def profile(source: Source, table: str, columns: list[str] | None, *, timeout: float = 30.0) -> dict[str, Any]:
    """Row count, and per column: nulls, distinct values, min and max."""
    known = schema(source).get(table)
    if known is None:
        raise RejectedQuery(f"no table {table!r}; GET /api/v1/explorer/schema lists the tables")
    names = [c["name"] for c in known]
    chosen = columns or names
    missing = [c for c in chosen if c not in names]
    if missing:
        raise RejectedQuery(f"no column(s) {', '.join(missing)} in {table}; columns: {', '.join(names)}")
    dialect = _DIALECTS[source.kind]
    parts = [exp.func("count", exp.Star()).as_("n_rows")]
    for i, name in enumerate(chosen):
        col = exp.column(name, quoted=True)
        parts += [
            exp.func("count", col).as_(f"c{i}_n"),
            exp.Count(this=exp.Distinct(expressions=[col])).as_(f"c{i}_d"),
            exp.func("min", col).as_(f"c{i}_min"),
            exp.func("max", col).as_(f"c{i}_max"),
        ]
    query = exp.select(*parts).from_(exp.to_table(table, quoted=True)).sql(dialect=dialect)
    result = run(source, query, max_rows=1, timeout=timeout)
    row = dict(zip(result.columns, result.rows[0], strict=True))
    n = int(row["n_rows"])
    return {
        "table": table,
        "n_rows": n,
        "columns": [
            {
                "name": name,
                "nulls": n - int(row[f"c{i}_n"]),
                "distinct": int(row[f"c{i}_d"]),
                "min": row[f"c{i}_min"],
                "max": row[f"c{i}_max"],
            }
            for i, name in enumerate(chosen)
        ],
    }
