"""Read the user's table: CSV/Parquet paths and sqlite/duckdb/postgresql/mysql URIs.

Every failure is a `SourceError` whose message says what to do.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from urllib.parse import urlparse

import polars as pl

from processors.profiling import InputError

URI_SCHEMES = ("sqlite", "duckdb", "postgresql", "postgres", "mysql", "mysql+pymysql")


class SourceError(InputError):
    """The data source cannot be read."""


def is_uri(source: str) -> bool:
    return "://" in source and urlparse(source).scheme in URI_SCHEMES


def check_source(source: str, table: str | None) -> None:
    """Cheap checks that need no loading: the file exists, a URI names a table."""
    if is_uri(source):
        if not table:
            raise SourceError(f"{source} is a database URI: name the table with --table")
        scheme = urlparse(source).scheme
        if scheme in ("sqlite", "duckdb"):
            path = Path(_local_db_path(source))
            if not path.exists():
                raise SourceError(f"database file not found: {path}")
        return
    path = Path(source)
    if not path.exists():
        raise SourceError(f"file not found: {source} (give a CSV or Parquet path, or a database URI with --table)")
    if path.is_dir():
        raise SourceError(f"{source} is a directory; give a CSV or Parquet file")
    if path.suffix.lower() not in (".csv", ".parquet", ".pq", ".tsv", ".txt"):
        raise SourceError(f"unsupported file type {path.suffix!r}: use .csv or .parquet")


def load_table(source: str, table: str | None = None) -> pl.DataFrame:
    check_source(source, table)
    try:
        if is_uri(source):
            return _load_uri(source, table or "")
        path = Path(source)
        if path.suffix.lower() in (".parquet", ".pq"):
            return pl.read_parquet(path)
        separator = "\t" if path.suffix.lower() == ".tsv" else ","
        return pl.read_csv(path, separator=separator, infer_schema_length=10000, null_values=["NA", ""])
    except SourceError:
        raise
    except Exception as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise SourceError(f"cannot read {source}: {first}") from error


def _local_db_path(uri: str) -> str:
    parsed = urlparse(uri)
    return (parsed.netloc + parsed.path) if parsed.netloc else parsed.path


def _safe_identifier(table: str) -> str:
    import sqlglot

    try:
        parsed = sqlglot.exp.to_table(table)
    except Exception as error:
        raise SourceError(f"not a table name: {table!r}") from error
    return parsed.sql()


def _load_uri(uri: str, table: str) -> pl.DataFrame:
    scheme = urlparse(uri).scheme
    query = f"SELECT * FROM {_safe_identifier(table)}"
    if scheme == "sqlite":
        import sqlite3

        with sqlite3.connect(f"file:{_local_db_path(uri)}?mode=ro", uri=True) as conn:
            cursor = conn.execute(query)
            names = [d[0] for d in cursor.description]
            return pl.DataFrame(cursor.fetchall(), schema=names, orient="row", infer_schema_length=None)
    if scheme == "duckdb":
        import duckdb

        with duckdb.connect(_local_db_path(uri), read_only=True) as conn:
            return pl.from_arrow(conn.execute(query).to_arrow_table())  # type: ignore[return-value]
    if scheme in ("postgresql", "postgres"):
        import psycopg

        with psycopg.connect(uri, autocommit=True) as conn:
            conn.read_only = True
            cursor = conn.execute(query)
            names = [d.name for d in cursor.description or []]
            return pl.DataFrame(cursor.fetchall(), schema=names, orient="row", infer_schema_length=None)
    import pymysql

    parsed = urlparse(uri)
    conn = pymysql.connect(
        host=parsed.hostname or "127.0.0.1",
        port=parsed.port or 3306,
        user=parsed.username or "root",
        password=parsed.password or "",
        database=parsed.path.lstrip("/"),
    )
    try:
        with conn.cursor() as cursor:
            cursor.execute(query.replace('"', "`"))
            names = [d[0] for d in cursor.description]
            return pl.DataFrame(list(cursor.fetchall()), schema=names, orient="row", infer_schema_length=None)
    finally:
        conn.close()


def snapshot(df: pl.DataFrame, directory: Path) -> tuple[Path, str]:
    """Freeze the job's input as Parquet, named by content hash, so every agent sees the same rows."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".tmp-{id(df)}.parquet"
    df.write_parquet(tmp, statistics=False)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    path = directory / f"{digest[:16]}.parquet"
    tmp.replace(path)
    return path, digest
