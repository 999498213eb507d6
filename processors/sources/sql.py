"""The SQL a tenant may send: exactly one read-only SELECT, over the source's own tables.

sqlglot parses it; DDL, DML, PRAGMA, COPY, ATTACH, SET, transactions, system
catalogs, file readers and server functions that touch files, sessions or other
databases are refused. Functions are allowed, not merely not refused: a call
sqlglot knows (its typed functions: standard math, string, date, aggregate and
window functions) passes unless it is on the refused list, and any other name
must be in EXTRA_FUNCTIONS, so an unknown server function (an extension's, a
user-defined one) is refused by default. The database session is read-only as
well (see the backends): this is the first of two locks, not the only one.
"""

from __future__ import annotations

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
# Functions that read files, run a query given as a string, or reach other databases, sessions or the server.
DANGEROUS_FUNCTIONS = frozenset(
    {
        # DuckDB file and database readers, and functions that run SQL given as a string
        "read_csv",
        "read_csv_auto",
        "parquet_scan",
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
        "query",
        "query_table",
        "getvariable",
        "which_secret",
        "load_extension",
        "getenv",
        "current_setting",
        "set_config",
        # PostgreSQL (besides every pg_*, lo_*, dblink*, *xml* function)
        "ts_stat",
        "ts_rewrite",
        "inet_server_addr",
        "inet_server_port",
        "inet_client_addr",
        "inet_client_port",
        # MySQL/MariaDB
        "load_file",
        "benchmark",
        "sleep",
        "get_lock",
        "release_lock",
        "release_all_locks",
        "is_free_lock",
        "is_used_lock",
        "master_pos_wait",
        "source_pos_wait",
        # SQLite shell extensions
        "readfile",
        "writefile",
        "edit",
        "fts3_tokenizer",
    }
)
# Whole families, refused by name shape: the database resolves a call to its unquoted, lower-cased name.
_DANGEROUS_PREFIXES = (
    "pg_",
    "lo_",
    "dblink",
    "duckdb_",
    "pragma_",
    "sqlite_",
    "sys_",
    "read_",
    "parquet_",
    "iceberg_",
    "delta_",
    "postgres_",
    "mysql_",
)
_DANGEROUS_SUFFIXES = ("_scan", "_attach")
_DANGEROUS_PARTS = ("xml",)  # query_to_xml, cursor_to_xml, table_to_xml, ...: they run a query
# Functions sqlglot parses as anonymous calls that the explorer runs anyway: computation on
# the values of a row or a group, nothing that reads files, settings, sessions or catalogs.
# A name not here and not a sqlglot function is refused (allowlist, not only the denylist above).
EXTRA_FUNCTIONS = frozenset({
    # math and text
    "gcd", "lcm", "isfinite", "isnan", "isinf", "even", "octet_length", "btrim", "quote", "printf", "format",
    "levenshtein", "jaro_winkler_similarity", "damerau_levenshtein", "hamming", "soundex", "string_split",
    "str_split", "prefix", "suffix", "regexp_matches", "regexp_split_to_array", "regexp_split_to_table",
    "strip_accents", "find_in_set", "field", "crc32", "bit_count", "total", "mad", "list_slice",
    # dates and times
    "to_date", "to_timestamp", "make_date", "make_time", "make_timestamp", "datepart", "date_part", "age", "dateadd",
    "date_format", "strftime", "strptime", "julianday", "unixepoch", "epoch", "epoch_ms", "from_days", "to_days",
    "weekday", "yearweek", "timestampadd", "unix_timestamp", "from_unixtime", "timezone", "isoyear", "isodow",
    "century", "decade", "millennium", "era", "now", "date", "time", "datetime", "date_sub", "period_diff",
    "clock_timestamp",
    # aggregates
    "mean", "quantile_cont", "quantile_disc", "every", "entropy", "histogram", "product", "fsum", "sumkahan", "favg",
    "bit_and", "bit_or", "bit_xor",
    # JSON
    "json_extract", "json_extract_string", "json_value", "json_array_length", "json_array", "json_valid",
    "json_build_object", "json_build_array", "json_agg", "jsonb_agg", "jsonb_extract_path", "jsonb_extract_path_text",
    "json_extract_path", "json_extract_path_text", "jsonb_path_query", "jsonb_path_query_first", "jsonb_path_exists",
    "jsonb_array_length", "jsonb_typeof", "json_typeof", "jsonb_build_object", "jsonb_build_array",
    "json_object_keys", "jsonb_object_keys", "json_each", "jsonb_each", "json_each_text", "jsonb_each_text",
    "json_array_elements", "jsonb_array_elements", "json_array_elements_text", "jsonb_array_elements_text", "to_json",
    "json_object_agg", "jsonb_object_agg", "row_to_json", "to_jsonb", "json_unquote", "json_contains", "json_length",
    "json_search", "json_quote", "json_keys", "json_type",
    # lists, series, hashes
    "cardinality", "list_value", "list_contains", "list_extract", "list_sort", "list_distinct", "list_aggregate",
    "list_sum", "list_reverse", "list_concat", "list_filter", "list_transform", "range", "generate_series",
    "struct_pack", "element_at", "unnest", "base64", "from_hex", "to_hex", "hash", "md5", "sha1", "sha256", "sha2",
})  # fmt: skip
# Call nodes whose name is the identifier in `this` (not the class's own name).
_NAMED_BY_THIS = tuple(
    getattr(exp, name)
    for name in ("Anonymous", "AnonymousAggFunc", "CombinedAggFunc", "ParameterizedAgg", "CombinedParameterizedAgg")
    if hasattr(exp, name)
)


def _function_names(node: exp.Expression) -> list[str]:
    """The names the database may resolve this call to (unquoted, lower-cased); [] if not a call.

    A quoted function name is refused here: `"pg_read_file"()` or `` `LOAD_FILE`() `` name the same
    function as the plain spelling, and only the plain spelling is checked against the refused set.
    """
    if isinstance(node, _NAMED_BY_THIS):
        this = node.this
        if isinstance(this, exp.Identifier):
            if this.quoted:
                raise RejectedQuery(
                    f"quoted function names are not allowed ({this.sql()[:100]}); call the function by its plain name"
                )
            return [this.name.lower()]
        if isinstance(this, exp.Expression):
            return [this.name.lower()]
        return [str(this).strip('`"[]').lower()]
    if isinstance(node, exp.Func):
        return [node.sql_name().lower(), *(n.lower() for n in type(node).sql_names())]
    return []


def is_dangerous(name: str) -> bool:
    name = name.lower().strip()
    return (
        name in DANGEROUS_FUNCTIONS
        or name.startswith(_DANGEROUS_PREFIXES)
        or name.endswith(_DANGEROUS_SUFFIXES)
        or any(part in name for part in _DANGEROUS_PARTS)
    )


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
        for name in _function_names(node):
            if is_dangerous(name):
                raise RejectedQuery(f"{name}() is not allowed in an exploratory query; query the source's tables")
        if isinstance(node, _NAMED_BY_THIS):
            [name] = _function_names(node)
            if name not in EXTRA_FUNCTIONS:
                raise RejectedQuery(
                    f"{name[:100]}() is not a function the explorer runs: it allows standard SQL math, string, "
                    "date, JSON, aggregate and window functions; rewrite the query with those, or run it in "
                    "your own SQL client"
                )
        if isinstance(node, exp.Dot) and isinstance(node.expression, exp.Func):
            qualifier = node.this.name.lower() if isinstance(node.this, exp.Expression) else str(node.this)
            if qualifier in SYSTEM_SCHEMAS:
                raise RejectedQuery(
                    f"functions of the {qualifier} schema are not allowed; call the function without a schema"
                )
        if isinstance(node, exp.SessionParameter):
            raise RejectedQuery("server variables (@@name) are not allowed in an exploratory query")
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
        sent = exp.select("*").from_(exp.paren(query).as_("q")).limit(max_rows).sql(dialect=dialect)
        _validate(sent, dialect)  # what the database runs is checked too, not only what the tenant wrote
        return sent
    except sqlglot.errors.SqlglotError:
        raise RejectedQuery("the SQL cannot be checked once rewritten with its row limit; simplify it") from None
    except RecursionError:
        raise RejectedQuery("the SQL is nested too deeply to check; flatten the subqueries") from None
