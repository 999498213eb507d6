"""Read the user's table: one package for jobs, connections, the explorer and the CLI.

`parse` gives a source string its one meaning (see `uri.py`); `SourcePolicy`
says whether a tenant may read it; `open_backend` gives the one `Backend`
(files, SQLite, DuckDB, PostgreSQL, MySQL) that loads a table for a job and
runs an explorer query with row, byte and time limits. Every failure is a
`SourceError` whose message says what to do.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import polars as pl

from processors.sources.base import Backend, Result, Schema
from processors.sources.embedded import DuckdbSource, FileSource, SqliteSource, csv_header
from processors.sources.errors import QueryTimeout, RejectedQuery, SourceError, SourceUnavailable
from processors.sources.policy import SourcePolicy, tenant_folder, upload_name
from processors.sources.servers import MysqlSource, PostgresSource
from processors.sources.sql import SOURCE_VIEW, validate
from processors.sources.uri import Location, UnsupportedSource, as_source, is_uri, parse, public_location, redact

__all__ = [
    "SOURCE_VIEW",
    "Backend",
    "Location",
    "QueryTimeout",
    "RejectedQuery",
    "Result",
    "Schema",
    "SourceError",
    "SourcePolicy",
    "SourceUnavailable",
    "UnsupportedSource",
    "as_source",
    "check_source",
    "column_problem",
    "file_columns",
    "is_uri",
    "load_table",
    "open_backend",
    "parse",
    "public_location",
    "redact",
    "snapshot",
    "tenant_folder",
    "upload_name",
    "validate",
]
LOCAL = SourcePolicy.local()


def open_backend(location: Location, label: str = "") -> Backend:
    """The backend for an admitted location (file paths absolute)."""
    label = label or redact(location.path or location.host)
    if location.kind in ("csv", "parquet"):
        return FileSource(Path(location.path), location.kind)
    if location.kind == "sqlite":
        return SqliteSource(Path(location.path))
    if location.kind == "duckdb":
        return DuckdbSource(Path(location.path))
    if location.kind == "postgresql":
        return PostgresSource(location, label)
    if location.kind == "mysql":
        return MysqlSource(location, label)
    raise UnsupportedSource(f"cannot open a {location.kind!r} source")


def check_source(source: str, table: str | None, *, policy: SourcePolicy = LOCAL, tenant: str = "") -> Location:
    """Cheap checks that need no loading: allowed, the file exists, a database source names a table."""
    location = policy.admit(source, tenant, table)
    if location.is_server or location.kind in ("sqlite", "duckdb"):
        if not table:
            raise SourceError(f"{redact(source)} is a database URI: name the table with --table (API: `table`)")
        from processors.sources.base import table_sql

        table_sql(table, location.kind)
    if location.is_file:
        path = Path(location.path)
        if not path.exists() and location.kind in ("sqlite", "duckdb"):
            raise SourceError(f"database file not found: {path}")
        if not path.exists():
            raise SourceError(f"file not found: {source} (give a CSV or Parquet path, or a database URI with --table)")
        if path.is_dir():
            raise SourceError(f"{source} is a directory; give a CSV or Parquet file")
    return location


def load_table(
    source: str, table: str | None = None, *, policy: SourcePolicy = LOCAL, tenant: str = ""
) -> pl.DataFrame:
    location = check_source(source, table, policy=policy, tenant=tenant)
    try:
        return checked_columns(open_backend(location, redact(source)).load(table))
    except SourceError:
        raise
    except Exception as error:
        if not policy.unrestricted:
            raise SourceUnavailable(redact(source)) from None
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise SourceError(f"cannot read {redact(source)}: {first}") from error


MAX_COLUMN_NAME = 1024


def file_columns(location: Location) -> list[str] | None:
    """A CSV or Parquet file's column names, read from its header or footer only; None for other sources."""
    path = Path(location.path)
    try:
        if location.kind == "csv":
            header = csv_header(path)
            return None if header is None else loaded_names(header)
        if location.kind == "parquet":
            return loaded_names(list(pl.read_parquet_schema(path)))
    except Exception:  # noqa: BLE001 - a file we cannot read is reported when the job loads it
        return None
    return None


def loaded_names(header: list[str]) -> list[str]:
    """The column names a load gives a file with this header: a repeated name as Polars reads it
    (`a`, `a_duplicated_0`, ...), then an empty one as `checked_columns` names it."""
    names: list[str] = []
    repeats: dict[str, int] = {}
    for name in header:
        if name in names:
            names.append(f"{name}_duplicated_{repeats.get(name, 0)}")
            repeats[name] = repeats.get(name, 0) + 1
        else:
            names.append(name)
    if "" in names:
        unnamed = f"unnamed_{names.index('')}"
        while unnamed in names:
            unnamed += "_"
        names[names.index("")] = unnamed
    return names


def column_problem(names: list[str]) -> str | None:
    """Why these column names cannot be taken (a NUL byte, more than 1 kB), or None.

    A NUL cannot be stored in PostgreSQL text, so a job on such a column could never
    be projected; other odd names (quotes, newlines, code) are kept as they are and
    reach generated code only as string literals.
    """
    for i, name in enumerate(names, start=1):
        if "\x00" in name:
            return f"column {i} ({name[:60]!r}) has a NUL byte in its name; rename the column and retry"
        if len(name) > MAX_COLUMN_NAME:
            return f"column {i} has a {len(name)}-character name (at most {MAX_COLUMN_NAME}); shorten it and retry"
    return None


def checked_columns(df: pl.DataFrame) -> pl.DataFrame:
    """The table, if every column name can be stored and shown (`column_problem`), else a SourceError.

    A column without a name (the header of a pandas index written by `to_csv`, say) is named
    `unnamed_<position>`, as every load of the same file names it: generated code cannot
    refer to an empty name (Arrow hands it to the sandbox as `column_0`).
    """
    problem = column_problem(df.columns)
    if problem:
        raise SourceError(problem)
    if "" in df.columns:  # at most one: names are unique
        name = f"unnamed_{df.columns.index('')}"
        while name in df.columns:
            name += "_"
        df = df.rename({"": name})
    return df


def snapshot(df: pl.DataFrame, directory: Path) -> tuple[Path, str]:
    """Freeze the job's input as Parquet, named by content hash, so every agent sees the same rows."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".tmp-{id(df)}.parquet"
    df.write_parquet(tmp, statistics=False)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    path = directory / f"{digest[:16]}.parquet"
    tmp.replace(path)
    return path, digest
