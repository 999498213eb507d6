"""The one interface every backend implements, and the query loop they share.

A backend opens a read-only `Session` per call; `run_query` executes on that
session's own connection (the one a timer can interrupt), fetches in growing
batches and stops at `max_rows` rows or `max_bytes` of cell text.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import polars as pl
import sqlglot
from sqlglot import exp

from processors.sources.errors import QueryTimeout, RejectedQuery, SourceError
from processors.sources.sql import DIALECTS, is_system_table, limited, validate

Schema = dict[str, list[dict[str, str]]]


@dataclass(frozen=True)
class Result:
    columns: list[str]
    rows: list[list[Any]]
    truncated: bool
    elapsed_ms: float


class Session(Protocol):
    """An open read-only connection: `execute` returns a DB-API cursor; `interrupt` stops it from another thread."""

    def execute(self, sql: str) -> Any: ...

    def interrupt(self) -> None: ...


class Backend(Protocol):
    """One data source: a file, or a database reached through its URI."""

    @property
    def kind(self) -> str:
        """csv | parquet | sqlite | duckdb | postgresql | mysql"""
        ...

    def load(self, table: str | None) -> pl.DataFrame:
        """The whole table (files: the file) as a DataFrame, for a job."""
        ...

    def run(self, sql: str, *, max_rows: int, max_bytes: int, timeout: float) -> Result:
        """One validated read-only SELECT, limited in rows, bytes and time."""
        ...

    def schema(self) -> Schema:
        """{table: [{name, type}]}, system catalogs left out."""
        ...


def table_sql(table: str | None, kind: str) -> str:
    """`SELECT * FROM <table>` for a database source; refuses system catalogs and non-names."""
    if not table:
        raise SourceError("a database source needs a table: give `table` (CLI: --table)")
    dialect = DIALECTS[kind]
    try:
        parsed = exp.to_table(table, dialect=dialect)
    except (sqlglot.errors.SqlglotError, RecursionError):
        raise SourceError(f"not a table name: {table[:200]!r}") from None
    if not isinstance(parsed, exp.Table) or not parsed.name or is_system_table(parsed.name, parsed.db):
        raise SourceError(f"table {table[:200]!r} is not a table of this source; name one of its own tables")
    return exp.select("*").from_(parsed).sql(dialect=dialect)


def frame(cursor: Any) -> pl.DataFrame:
    names = [d[0] for d in cursor.description or []]
    return pl.DataFrame(list(cursor.fetchall()), schema=names, orient="row", infer_schema_length=None)


def _cell(value: Any) -> Any:
    return value if value is None or isinstance(value, (int, float, str, bool)) else str(value)


def _size(row: list[Any]) -> int:
    return sum(len(v) if isinstance(v, str) else 8 for v in row) + 2 * len(row)


def run_query(
    open_session: Callable[[float], AbstractContextManager[Session]],
    kind: str,
    sql: str,
    *,
    max_rows: int,
    max_bytes: int,
    timeout: float,
) -> Result:
    query = limited(validate(sql, kind), kind, max_rows + 1)
    started = time.perf_counter()
    timed_out = threading.Event()
    try:
        with open_session(timeout) as session:

            def stop() -> None:
                timed_out.set()
                session.interrupt()

            timer = threading.Timer(timeout, stop)
            timer.daemon = True
            timer.start()
            try:
                cursor = session.execute(query)
                columns = [str(d[0]) for d in cursor.description or []]
                rows, truncated = _fetch(cursor, max_rows, max_bytes)
            finally:
                timer.cancel()
    except SourceError:
        raise
    except Exception as error:  # noqa: BLE001 - five drivers, no common base: report, don't crash
        if timed_out.is_set() or time.perf_counter() - started >= timeout:
            raise QueryTimeout(f"the query ran past {timeout:g} s; add filters or a LIMIT") from None
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        raise RejectedQuery(f"the database refused the query: {first}") from None
    if timed_out.is_set():
        raise QueryTimeout(f"the query ran past {timeout:g} s; add filters or a LIMIT")
    return Result(columns, rows, truncated, round((time.perf_counter() - started) * 1000, 2))


def _fetch(cursor: Any, max_rows: int, max_bytes: int) -> tuple[list[list[Any]], bool]:
    rows: list[list[Any]] = []
    used, batch = 0, 1
    while True:
        chunk = cursor.fetchmany(batch)
        if not chunk:
            return rows, False
        for raw in chunk:
            row = [_cell(v) for v in raw]
            used += _size(row)
            if len(rows) >= max_rows or used > max_bytes:
                return rows, True
            rows.append(row)
        batch = min(batch * 2, 256)
