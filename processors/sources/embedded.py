"""Backends that read a local file: CSV/Parquet files, SQLite and DuckDB databases."""

from __future__ import annotations

import csv
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from processors.sources.base import Result, Schema, Session, frame, run_query, table_sql
from processors.sources.sql import SOURCE_VIEW

EXPLORER_MEMORY = "1GB"  # DuckDB's own cap for one exploratory query


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _lockdown(conn: Any, allowed: list[str]) -> None:
    if allowed:
        conn.execute(f"SET allowed_paths = [{', '.join(_quoted(p) for p in allowed)}]")
    conn.execute("SET enable_external_access = false")
    conn.execute(f"SET memory_limit = '{EXPLORER_MEMORY}'")
    conn.execute("SET lock_configuration = true")


@contextmanager
def _duckdb_session(path: str | None, view: tuple[str, str] | None = None) -> Iterator[Session]:
    """A read-only DuckDB connection, used directly (a `.cursor()` would escape `interrupt`)."""
    import duckdb

    conn = duckdb.connect(path, read_only=True) if path else duckdb.connect(":memory:")
    try:
        allowed: list[str] = []
        if view is not None:
            reader, file = view
            conn.execute(f"CREATE VIEW {SOURCE_VIEW} AS SELECT * FROM {reader}({_quoted(file)})")
            allowed.append(file)
        _lockdown(conn, allowed)
        yield conn  # DuckDBPyConnection: .execute() runs on it, .interrupt() stops it
    finally:
        conn.close()


SEPARATORS = (",", "\t", ";", "|")  # in this order when a header has as many of two
_COMMA_DECIMAL = re.compile(r"^-?\d+,\d+$")
_THOUSANDS = re.compile(r"^-?\d{1,3}(,\d{3})+$")  # 1,234 or 12,500,000: grouping as likely as a decimal
_DOT_DECIMAL = re.compile(r"^-?\d*\.\d+$")


def csv_format(path: Path) -> tuple[str, bool]:
    """(separator, decimal comma) of a CSV file, from its first lines.

    Tab for .tsv, else the separator the header line uses most, so a header `a;b;y` (the
    usual CSV of a decimal-comma locale) or `a|b|y` is split on that character instead of
    read as one column named `a;b;y`. With a separator other than a comma, numbers written
    `1,5` in more cells than `1.5` are read as decimals.
    """
    try:
        with path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
            lines = [handle.readline(1 << 20) for _ in range(51)]
    except OSError:
        return ",", False
    if path.suffix.lower() == ".tsv":
        separator = "\t"
    else:
        unquoted = "".join(lines[0].split('"')[::2])  # separators inside quoted names do not count
        counts = {sep: unquoted.count(sep) for sep in SEPARATORS}
        best = max(SEPARATORS, key=lambda sep: counts[sep])  # the first of a tie
        separator = best if counts[best] else ","
    if separator == ",":
        return separator, False
    cells = [cell.strip().strip('"') for line in lines[1:] for cell in line.split(separator)]
    comma = sum(1 for c in cells if _COMMA_DECIMAL.match(c) and not _THOUSANDS.match(c))
    dot = sum(1 for c in cells if _DOT_DECIMAL.match(c))
    return separator, comma > dot


def csv_header(path: Path) -> list[str] | None:
    """The header row as the CSV standard reads it (`"Amt""x"` is `Amt"x`)."""
    delimiter, _ = csv_format(path)
    try:
        with path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
            return next(csv.reader(handle, delimiter=delimiter), None)
    except (OSError, csv.Error):
        return None


@dataclass(frozen=True)
class FileSource:
    """A CSV or Parquet file, explored as the table `data`."""

    path: Path
    kind: str  # csv | parquet

    def load(self, table: str | None = None) -> pl.DataFrame:
        if self.kind == "parquet":
            return pl.read_parquet(self.path)
        separator, decimal_comma = csv_format(self.path)
        df = pl.read_csv(
            self.path,
            separator=separator,
            decimal_comma=decimal_comma,
            infer_schema_length=10000,
            null_values=["NA", ""],
        )
        header = csv_header(self.path)
        # polars keeps a quoted header's doubled quotes ("Amt""x" -> Amt""x); the csv module does not
        if header and len(header) == df.width and len(set(header)) == len(header) and header != df.columns:
            df = df.rename(dict(zip(df.columns, header, strict=True)))
        return df

    def _session(self, timeout: float) -> Any:
        reader = "read_parquet" if self.kind == "parquet" else "read_csv_auto"
        return _duckdb_session(None, (reader, str(self.path)))

    def run(self, sql: str, *, max_rows: int, max_bytes: int, timeout: float) -> Result:
        return run_query(self._session, self.kind, sql, max_rows=max_rows, max_bytes=max_bytes, timeout=timeout)

    def schema(self) -> Schema:
        with self._session(10.0) as session:
            rows = session.execute(f"DESCRIBE {SOURCE_VIEW}").fetchall()
        return {SOURCE_VIEW: [{"name": str(r[0]), "type": str(r[1])} for r in rows]}


@dataclass(frozen=True)
class DuckdbSource:
    """A DuckDB database file, opened read-only with external access off."""

    path: Path
    kind: str = "duckdb"

    def _session(self, timeout: float) -> Any:
        return _duckdb_session(str(self.path))

    def load(self, table: str | None) -> pl.DataFrame:
        with self._session(0) as conn:  # a DuckDBPyConnection: a relation's Arrow table is not copied
            return pl.from_arrow(conn.sql(table_sql(table, self.kind)).to_arrow_table())  # type: ignore[return-value]

    def run(self, sql: str, *, max_rows: int, max_bytes: int, timeout: float) -> Result:
        return run_query(self._session, self.kind, sql, max_rows=max_rows, max_bytes=max_bytes, timeout=timeout)

    def schema(self) -> Schema:
        query = (
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema NOT IN ('information_schema', 'pg_catalog') ORDER BY table_name, ordinal_position"
        )
        with self._session(10.0) as session:
            return _tables(session.execute(query).fetchall())


class _SqliteSession:
    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, check_same_thread=False)
        self.conn.execute("PRAGMA query_only = 1")

    def execute(self, sql: str) -> Any:
        return self.conn.execute(sql)

    def interrupt(self) -> None:
        self.conn.interrupt()


@dataclass(frozen=True)
class SqliteSource:
    """A SQLite database file, opened `mode=ro` with `query_only`."""

    path: Path
    kind: str = "sqlite"

    @contextmanager
    def _session(self, timeout: float) -> Iterator[Session]:
        session = _SqliteSession(self.path)
        try:
            yield session
        finally:
            session.conn.close()

    def load(self, table: str | None) -> pl.DataFrame:
        with self._session(0) as session:
            return frame(session.execute(table_sql(table, self.kind)))

    def run(self, sql: str, *, max_rows: int, max_bytes: int, timeout: float) -> Result:
        return run_query(self._session, self.kind, sql, max_rows=max_rows, max_bytes=max_bytes, timeout=timeout)

    def schema(self) -> Schema:
        query = (
            "SELECT m.name, p.name, p.type FROM sqlite_master m, pragma_table_info(m.name) p "
            "WHERE m.type IN ('table', 'view') AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.cid"
        )
        with self._session(10.0) as session:
            return _tables(session.execute(query).fetchall())


def _tables(rows: list[Any]) -> Schema:
    out: Schema = {}
    for table, column, kind in rows:
        out.setdefault(str(table), []).append({"name": str(column), "type": str(kind)})
    return out
