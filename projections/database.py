"""One SQL layer for SQLite (embedded default) and PostgreSQL: a tiny dialect shim, no ORM.

SQL is written once, with `?` placeholders and `{table}` names. The shim turns
`?` into `%s` for psycopg and prefixes table names (tests give each run its
own prefix so parallel runs never clash). Both engines speak
`INSERT ... ON CONFLICT (...) DO UPDATE`, so upserts need no translation.
Timestamps are stored as ISO-8601 UTC text (sortable and identical on both).
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

Dialect = Literal["sqlite", "postgres"]
Row = dict[str, Any]

_TABLE = re.compile(r"\{([a-z_]+)\}")


class IntegrityViolation(Exception):
    """A unique or primary key constraint refused the write (the same error on both engines)."""


class UnstorableText(ValueError):
    """A parameter holds a NUL byte, which PostgreSQL text cannot store (SQLite simply finds no row)."""


def _has_nul(params: Sequence[Any]) -> bool:
    return any(isinstance(p, str) and "\x00" in p for p in params)


class Tx:
    """A transaction: the only way projections and queries touch the database."""

    def __init__(self, cursor: Any, db: Database) -> None:
        self._cursor = cursor
        self._db = db

    @property
    def dialect(self) -> Dialect:
        return self._db.dialect

    def _run(self, sql: str, params: Sequence[Any]) -> None:
        try:
            self._cursor.execute(self._db.render(sql), tuple(params))
        except Exception as error:
            if type(error).__name__ == "DataError" and _has_nul(params):
                raise UnstorableText("a value holds a NUL byte (\\x00); remove it and retry") from error
            raise

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        try:
            self._run(sql, params)
        except sqlite3.IntegrityError as error:
            raise IntegrityViolation(str(error)) from error
        except Exception as error:
            if type(error).__name__ in ("UniqueViolation", "IntegrityError"):
                raise IntegrityViolation(str(error)) from error
            raise
        return int(self._cursor.rowcount or 0)

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        self._run(sql, params)
        if self._cursor.description is None:
            return []
        names = [d[0] for d in self._cursor.description]
        return [dict(zip(names, row, strict=True)) for row in self._cursor.fetchall()]

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        rows = self.all(sql, params)
        return rows[0] if rows else None

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.one(sql, params)
        return None if row is None else next(iter(row.values()))


class Database:
    """Connections to the read-model database; `transaction()` is the unit of work."""

    def __init__(self, target: str | Path, *, prefix: str = "") -> None:
        if not re.fullmatch(r"[a-z0-9_]*", prefix):
            raise ValueError(f"table prefix {prefix!r} may only hold a-z, 0-9 and _")
        self.prefix = prefix
        text = str(target)
        self.dialect: Dialect = "postgres" if text.startswith(("postgresql://", "postgres://")) else "sqlite"
        self._pool: Any = None
        self._path = ""
        self._lock = threading.Lock()
        if self.dialect == "postgres":
            from psycopg_pool import ConnectionPool

            self._pool = ConnectionPool(text, min_size=1, max_size=8, open=True, kwargs={"autocommit": False})
        else:
            self._path = text.removeprefix("sqlite:///")
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
            with self._sqlite() as conn:
                conn.execute("PRAGMA journal_mode=WAL")

    def table(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def render(self, sql: str) -> str:
        sql = _TABLE.sub(lambda m: self.table(m.group(1)), sql)
        return sql.replace("?", "%s") if self.dialect == "postgres" else sql

    def _sqlite(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, timeout=30, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    @contextmanager
    def transaction(self, *, write: bool = True) -> Iterator[Tx]:
        """Commit on success, roll back on error. SQLite writers take the lock up front."""
        if self.dialect == "postgres":
            with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cursor:
                yield Tx(cursor, self)
            return
        conn = self._sqlite()
        try:
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            cursor = conn.cursor()
            try:
                yield Tx(cursor, self)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    def run_script(self, statements: Sequence[str]) -> None:
        with self._lock, self.transaction() as tx:
            for statement in statements:
                tx.execute(statement)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()


def add_columns(tx: Tx, table: str, columns: Sequence[tuple[str, str]]) -> None:
    """Add the (name, SQL type) columns that `table` lacks: read models made by an older release get them."""
    if tx.dialect == "postgres":
        for name, kind in columns:
            tx.execute(f"ALTER TABLE {{{table}}} ADD COLUMN IF NOT EXISTS {name} {kind}")
        return
    present = {row["name"] for row in tx.all(f"PRAGMA table_info({{{table}}})")}
    for name, kind in columns:
        if name not in present:
            tx.execute(f"ALTER TABLE {{{table}}} ADD COLUMN {name} {kind}")


def lock_row(tx: Tx) -> str:
    """`FOR UPDATE` where the engine has row locks (SQLite's BEGIN IMMEDIATE already serialises writers)."""
    return " FOR UPDATE" if tx.dialect == "postgres" else ""
