"""Backends that reach a database server: PostgreSQL and MySQL/MariaDB.

Sessions are read-only on the server's side (PostgreSQL
`default_transaction_read_only`, MySQL `START TRANSACTION READ ONLY`) and carry
the time limit there too (`statement_timeout`, `MAX_EXECUTION_TIME` or MariaDB's
`max_statement_time`), besides the client's timer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import polars as pl

from processors.sources.base import Result, Schema, Session, frame, run_query, table_sql
from processors.sources.errors import SourceUnavailable
from processors.sources.sql import SYSTEM_SCHEMAS
from processors.sources.uri import Location

CONNECT_SECONDS = 10
_NOT_SYSTEM = "table_schema NOT IN (" + ", ".join(f"'{s}'" for s in sorted(SYSTEM_SCHEMAS)) + ")"
_COLUMNS = (
    "SELECT table_name, column_name, data_type FROM information_schema.columns "
    f"WHERE {_NOT_SYSTEM} ORDER BY table_name, ordinal_position"
)


def _tables(rows: list[Any]) -> Schema:
    out: Schema = {}
    for table, column, kind in rows:
        out.setdefault(str(table), []).append({"name": str(column), "type": str(kind)})
    return out


class _PostgresSession:
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def execute(self, sql: str) -> Any:
        cursor = self.conn.cursor(name="afep_explore")  # server-side: rows arrive as they are fetched
        cursor.execute(sql)
        return cursor

    def interrupt(self) -> None:
        self.conn.cancel()


@dataclass(frozen=True)
class PostgresSource:
    location: Location
    label: str  # what the user gave, for messages (no password)
    kind: str = "postgresql"

    @contextmanager
    def _session(self, timeout: float) -> Iterator[Session]:
        import psycopg

        where = self.location
        libpq: dict[str, Any] = {k: v for k, v in where.options if k in ("sslmode", "application_name")}
        options = "-c default_transaction_read_only=on"
        if timeout > 0:
            options += f" -c statement_timeout={max(1, int(timeout * 1000))}"
        try:
            conn = psycopg.connect(
                host=where.host or None,
                port=where.port,
                user=where.user or None,
                password=where.password or None,
                dbname=where.database or None,
                options=options,
                connect_timeout=CONNECT_SECONDS,
                **libpq,
            )
        except psycopg.Error:
            raise SourceUnavailable(self.label) from None
        try:
            conn.read_only = True
            yield _PostgresSession(conn)
        finally:
            conn.close()

    def load(self, table: str | None) -> pl.DataFrame:
        query = table_sql(table, self.kind)
        with self._session(0) as session:
            return frame(session.execute(query))

    def run(self, sql: str, *, max_rows: int, max_bytes: int, timeout: float) -> Result:
        return run_query(self._session, self.kind, sql, max_rows=max_rows, max_bytes=max_bytes, timeout=timeout)

    def schema(self) -> Schema:
        with self._session(10.0) as session:
            return _tables(session.execute(_COLUMNS).fetchall())


class _MysqlSession:
    def __init__(self, conn: Any, connect: Any) -> None:
        self.conn = conn
        self.connect = connect
        self.cursors: list[Any] = []

    def execute(self, sql: str) -> Any:
        cursor = self.conn.cursor()
        self.cursors.append(cursor)
        cursor.execute(sql)
        return cursor

    def abandon(self) -> None:
        """Drop unread rows with the connection instead of draining them (a truncated result may be huge)."""
        for cursor in self.cursors:
            result = getattr(cursor, "_result", None)
            if result is not None:
                result.unbuffered_active = False

    def interrupt(self) -> None:
        with contextlib.suppress(Exception), contextlib.closing(self.connect(None)) as other:
            other.cursor().execute(f"KILL QUERY {int(self.conn.thread_id())}")


@dataclass(frozen=True)
class MysqlSource:
    location: Location
    label: str
    kind: str = "mysql"

    def _connect(self, timeout: float | None) -> Any:
        import pymysql
        import pymysql.cursors

        where = self.location
        return pymysql.connect(
            host=where.host or "localhost",
            port=where.port or 3306,
            user=where.user or "root",
            password=where.password,
            database=where.database or None,
            connect_timeout=CONNECT_SECONDS,
            read_timeout=int(timeout) + 5 if timeout else None,
            cursorclass=pymysql.cursors.SSCursor,
            charset=dict(where.options).get("charset", "utf8mb4"),
        )

    @contextmanager
    def _session(self, timeout: float) -> Iterator[Session]:
        import pymysql

        try:
            conn = self._connect(timeout)
        except pymysql.Error:
            raise SourceUnavailable(self.label) from None
        try:
            with conn.cursor() as cursor:
                if timeout > 0:
                    try:
                        cursor.execute(f"SET SESSION MAX_EXECUTION_TIME = {max(1, int(timeout * 1000))}")
                    except pymysql.Error:  # MariaDB names it differently, in seconds
                        cursor.execute(f"SET SESSION max_statement_time = {timeout:.3f}")
                cursor.execute("START TRANSACTION READ ONLY")
            session = _MysqlSession(conn, self._connect)
            try:
                yield session
            finally:
                session.abandon()
        finally:
            conn.close()

    def load(self, table: str | None) -> pl.DataFrame:
        query = table_sql(table, self.kind)
        with self._session(0) as session:
            return frame(session.execute(query))

    def run(self, sql: str, *, max_rows: int, max_bytes: int, timeout: float) -> Result:
        return run_query(self._session, self.kind, sql, max_rows=max_rows, max_bytes=max_bytes, timeout=timeout)

    def schema(self) -> Schema:
        with self._session(10.0) as session:
            return _tables(session.execute(_COLUMNS).fetchall())
