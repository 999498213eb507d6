"""The SQL a tenant may send: exactly one read-only SELECT, over the source's own tables.

sqlglot parses it; DDL, DML, PRAGMA, COPY, ATTACH, SET, transactions, system
catalogs, file readers and server functions that touch files, sessions or other
databases are refused. The database session is read-only as well (see the
backends): this is the first of two locks, not the only one.
"""

from __future__ import annotations

from typing import Any

import sqlglot
from sqlglot import exp

from processors.sources.errors import RejectedQuery

SOURCE_VIEW = "data"  # files and job datasets are exposed as this table
DIALECTS = {
    "csv": "duckdb",
    "parquet": "duckdb",
    "duckdb": "duckdb",
    "sqlite": "sqlite",
    "postgresql": "postgres",
    "mysql": "mysql",
}
SYSTEM_SCHEMAS = frozenset({"pg_catalog", "information_schema", "mysql", "performance_schema", "sys", "pg_toast"})
SYSTEM_TABLES = frozenset({"sqlite_master", "sqlite_schema", "sqlite_temp_master", "sqlite_temp_schema"})
_SYSTEM_PREFIXES = ("pg_", "sqlite_", "duckdb_")
_FORBIDDEN = tuple(
    getattr(exp, name)
    for name in (
        "Insert",
        "Update",
        "Delete",
        "Create",
        "Drop",
        "Alter",
        "Command",
        "Merge",
        "Into",
        "Copy",
        "Pragma",
        "Set",
        "Transaction",
        "Commit",
        "Rollback",
        "Use",
        "Attach",
        "Detach",
        "Install",
        "Load",
        "LoadData",
    )
    if hasattr(exp, name)
)
# Functions that read files, reach other databases, sessions or the server itself.
DANGEROUS_FUNCTIONS = frozenset(
    {
        # DuckDB file and database readers
        "read_csv",
        "read_csv_auto",
        "read_parquet",
        "parquet_scan",
        "parquet_metadata",
        "parquet_schema",
        "read_json",
        "read_json_auto",
        "read_json_objects",
        "read_ndjson",
        "read_ndjson_auto",
        "read_text",
        "read_blob",
        "read_xlsx",
        "sniff_csv",
        "glob",
        "sqlite_scan",
        "sqlite_attach",
        "postgres_scan",
        "postgres_attach",
        "postgres_query",
        "mysql_scan",
        "mysql_query",
        "iceberg_scan",
        "delta_scan",
        "load_extension",
        "getenv",
        "current_setting",
        "set_config",
        # PostgreSQL (besides every pg_* function)
        "dblink",
        "query_to_xml",
        "query_to_xml_and_xmlschema",
        "cursor_to_xml",
        "table_to_xml",
        "schema_to_xml",
        "database_to_xml",
        "inet_server_addr",
        "inet_server_port",
        # MySQL
        "load_file",
        "sys_exec",
        "sys_eval",
        "benchmark",
        "sleep",
        "get_lock",
        # SQLite shell extensions
        "readfile",
        "writefile",
        "edit",
        "fts3_tokenizer",
    }
)
_DANGEROUS_PREFIXES = ("pg_", "lo_", "dblink", "duckdb_", "pragma_", "sqlite_")


def _function_name(node: Any) -> str | None:
    if isinstance(node, exp.Anonymous):
        return str(node.this).lower()
    if isinstance(node, exp.Func):
        return node.sql_name().lower()
    return None


def is_dangerous(name: str) -> bool:
    name = name.lower()
    return name in DANGEROUS_FUNCTIONS or name.startswith(_DANGEROUS_PREFIXES)


def is_system_table(table: str, schema: str = "") -> bool:
    """A catalog or system table, never a tenant's data: refused as a source and in queries."""
    name, schema = table.lower().strip(), schema.lower().strip()
    return schema in SYSTEM_SCHEMAS or name in SYSTEM_TABLES or name.startswith(_SYSTEM_PREFIXES)


def validate(sql: str, kind: str) -> exp.Query:
    """The single SELECT in `sql`, parsed in the source's dialect, or RejectedQuery."""
    dialect = DIALECTS[kind]
    try:
        return _validate(sql, dialect)
    except RecursionError:
        raise RejectedQuery("the SQL is nested too deeply to check; flatten the subqueries") from None
    except sqlglot.errors.SqlglotError as error:
        first = (str(error).splitlines() or [type(error).__name__])[0][:300]
        raise RejectedQuery(f"the SQL does not parse as {dialect}: {first}") from None


def _validate(sql: str, dialect: str) -> exp.Query:
    statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
    if len(statements) != 1:
        raise RejectedQuery(f"send exactly one SELECT statement (got {len(statements)})")
    [statement] = statements
    if not isinstance(statement, exp.Query):
        raise RejectedQuery(f"only SELECT queries are allowed here, not {statement.key.upper()}")
    for node in statement.walk():
        if isinstance(node, _FORBIDDEN):
            raise RejectedQuery(f"{node.key.upper()} is not allowed in an exploratory query; use a plain SELECT")
        name = _function_name(node)
        if name is not None and is_dangerous(name):
            raise RejectedQuery(f"{name}() is not allowed in an exploratory query; query the source's tables")
        if isinstance(node, exp.Table):
            table = node.name
            if is_system_table(table, node.db) or "/" in table or "\\" in table or "." in table:
                raise RejectedQuery(
                    f"table {node.sql(dialect=dialect)!r} is not a table of this source; "
                    f"query its own tables (GET /api/v1/explorer/schema/ID lists them, files are `{SOURCE_VIEW}`)"
                )
    return statement


def limited(query: exp.Query, kind: str, max_rows: int) -> str:
    """`query` wrapped so that the database returns at most `max_rows` rows."""
    dialect = DIALECTS[kind]
    try:
        return exp.select("*").from_(exp.paren(query).as_("q")).limit(max_rows).sql(dialect=dialect)
    except RecursionError:
        raise RejectedQuery("the SQL is nested too deeply to check; flatten the subqueries") from None
