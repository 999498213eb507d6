"""Backends that reach a database server: PostgreSQL and MySQL/MariaDB.

Sessions are read-only on the server's side (PostgreSQL
`default_transaction_read_only`, MySQL `START TRANSACTION READ ONLY`) and carry
the time limit there too (`statement_timeout`, `MAX_EXECUTION_TIME` or MariaDB's
`max_statement_time`), besides the client's timer.

A tenant's session (any Location not admitted by the local policy, see
`policy.LOCAL_USER`) is also refused when its role can read the server's files:
a PostgreSQL superuser or member of `pg_read_server_files`,
`pg_write_server_files` or `pg_execute_server_program`; a MySQL/MariaDB account
with `FILE`, `SUPER` or `ALL PRIVILEGES` on `*.*`. The SQL validator refuses
file functions; this holds should one slip past it.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

import polars as pl

from processors.sources.base import Result, Schema, Session, frame, run_query, table_sql
from processors.sources.errors import SourceError, SourceUnavailable
from processors.sources.policy import LOCAL_USER
from processors.sources.sql import SYSTEM_SCHEMAS
from processors.sources.uri import Location

CONNECT_SECONDS = 10
_NOT_SYSTEM = "table_schema NOT IN (" + ", ".join(f"'{s}'" for s in sorted(SYSTEM_SCHEMAS)) + ")"
_COLUMNS = (
    "SELECT table_name, column_name, data_type FROM information_schema.columns "
    f"WHERE {_NOT_SYSTEM} ORDER BY table_name, ordinal_position"
)


FILE_ROLE = (
    "the connection's database role can read server files (superuser / FILE privilege); connect as a role without it"
)
_PG_FILE_ROLE = (
    "SELECT r.rolsuper OR EXISTS (SELECT 1 FROM pg_roles g WHERE g.rolname IN "
    "('pg_read_server_files', 'pg_write_server_files', 'pg_execute_server_program') "
    "AND pg_has_role(current_user, g.oid, 'MEMBER')) FROM pg_roles r WHERE r.rolname = current_user"
)
_MYSQL_FILE_PRIVILEGES = re.compile(r"\b(ALL PRIVILEGES|ALL|FILE|SUPER)\b")


class FileRole(SourceError):
    """The connection's role can read the database server's files: refused for a tenant."""

    def __init__(self) -> None:
        super().__init__(FILE_ROLE)


def _for_tenant(location: Location) -> bool:
    return LOCAL_USER not in location.options


def mysql_grants_read_files(grants: list[str]) -> bool:
    """Whether `SHOW GRANTS` lines give FILE, SUPER or ALL PRIVILEGES on `*.*` (the server's files)."""
    for grant in grants:
        upper = " ".join(grant.upper().split())
        if not upper.startswith("GRANT ") or " ON *.* " not in upper:
            continue
        privileges = upper.removeprefix("GRANT ").split(" ON *.* ", 1)[0]
        if _MYSQL_FILE_PRIVILEGES.search(privileges):
            return True
    return False


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


class _ServerSource:
    """What a database server source does with a session; subclasses open the session."""

    kind: str

    def _session(self, timeout: float) -> AbstractContextManager[Session]:
        raise NotImplementedError

    def load(self, table: str | None) -> pl.DataFrame:
        query = table_sql(table, self.kind)
        with self._session(0) as session:
            return frame(session.execute(query))

    def run(self, sql: str, *, max_rows: int, max_bytes: int, timeout: float) -> Result:
        return run_query(self._session, self.kind, sql, max_rows=max_rows, max_bytes=max_bytes, timeout=timeout)

    def schema(self) -> Schema:
        with self._session(10.0) as session:
            return _tables(session.execute(_COLUMNS).fetchall())


@dataclass(frozen=True)
class PostgresSource(_ServerSource):
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
            if _for_tenant(where):
                with conn.cursor() as cursor:
                    row = cursor.execute(_PG_FILE_ROLE).fetchone()
                conn.rollback()
                if row is None or row[0] is not False:
                    raise FileRole()
            yield _PostgresSession(conn)
        finally:
            conn.close()


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
class MysqlSource(_ServerSource):
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
                if _for_tenant(self.location):
                    cursor.execute("SHOW GRANTS")
                    if mysql_grants_read_files([str(row[0]) for row in cursor.fetchall()]):
                        raise FileRole()
                cursor.execute("START TRANSACTION READ ONLY")
            session = _MysqlSession(conn, self._connect)
            try:
                yield session
            finally:
                session.abandon()
        finally:
            conn.close()
