"""Read-only exploratory SQL over a connection or a job's dataset: the gateway's face of `processors.sources`.

Read-only for real, in three layers (all in `processors.sources`): `sql.validate`
admits exactly one SELECT over the source's own tables, without file readers or
server functions; the backend's session is read-only (DuckDB `read_only` and
external access off, SQLite `mode=ro` + `query_only`, PostgreSQL
`default_transaction_read_only`, MySQL `TRANSACTION READ ONLY`); and rows,
bytes and time are capped on the connection that executes the query.
"""

from __future__ import annotations

from typing import Any

from sqlglot import exp

from processors.sources import (
    SOURCE_VIEW,
    Backend,
    QueryTimeout,
    RejectedQuery,
    Result,
    Schema,
    SourceError,
    SourceUnavailable,
)
from processors.sources.sql import DIALECTS

__all__ = ["SOURCE_VIEW", "QueryTimeout", "RejectedQuery", "Result", "SourceUnavailable", "profile", "run", "schema"]


def run(
    backend: Backend, sql: str, *, max_rows: int = 1000, max_bytes: int = 10 * 2**20, timeout: float = 10.0
) -> Result:
    return backend.run(sql, max_rows=max_rows, max_bytes=max_bytes, timeout=timeout)


def schema(backend: Backend) -> Schema:
    """{table: [{name, type}]} for the source."""
    try:
        return backend.schema()
    except SourceError:
        raise
    except Exception as error:  # noqa: BLE001 - five drivers, no common base: report, don't crash
        first = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        raise RejectedQuery(f"could not read the source's schema: {first}") from None


def profile(
    backend: Backend, table: str, columns: list[str] | None, *, timeout: float = 30.0, max_bytes: int = 10 * 2**20
) -> dict[str, Any]:
    """Row count, and per column: nulls, distinct values, min and max."""
    known = schema(backend).get(table)
    if known is None:
        raise RejectedQuery(f"no table {table[:200]!r}; GET /api/v1/explorer/schema lists the tables")
    names = [c["name"] for c in known]
    chosen = columns or names
    missing = [c for c in chosen if c not in names]
    if missing:
        raise RejectedQuery(
            f"no column(s) {', '.join(map(repr, missing))[:500]} in {table[:200]!r}; columns: {', '.join(names)[:500]}"
        )
    parts = [exp.func("count", exp.Star()).as_("n_rows")]
    for i, name in enumerate(chosen):
        col = exp.column(name, quoted=True)
        parts += [
            exp.func("count", col).as_(f"c{i}_n"),
            exp.Count(this=exp.Distinct(expressions=[col])).as_(f"c{i}_d"),
            exp.func("min", col).as_(f"c{i}_min"),
            exp.func("max", col).as_(f"c{i}_max"),
        ]
    query = exp.select(*parts).from_(exp.to_table(table, quoted=True)).sql(dialect=DIALECTS[backend.kind])
    result = run(backend, query, max_rows=1, max_bytes=max_bytes, timeout=timeout)
    if not result.rows:
        raise RejectedQuery("the profile is larger than the explorer's byte limit; profile fewer columns")
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
