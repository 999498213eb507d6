"""The explorer's SQL validator: a function is checked by the name the database resolves it to.

Quoted names (`"pg_read_file"`, `` `LOAD_FILE` ``), schema-qualified calls, table
functions and functions that run a query given as a string are refused wherever
they sit (subqueries, CTEs, LATERAL, FROM); plain analytical SQL still passes.
"""

from __future__ import annotations

import pytest

from processors.sources.errors import RejectedQuery
from processors.sources.servers import mysql_grants_read_files
from processors.sources.sql import EXTRA_FUNCTIONS, is_dangerous, limited, validate

REFUSED = [
    # quoted identifiers: the database folds them to the same function
    ("mysql", "select `LOAD_FILE`('/etc/passwd')", "quoted function names"),
    ("mysql", "select `load_file`('/etc/passwd')", "quoted function names"),
    ("postgresql", "select \"pg_read_file\"('/etc/hostname')", "quoted function names"),
    ("postgresql", "select \"pg_ls_dir\"('.')", "quoted function names"),
    ("duckdb", "select * from \"query\"('select 1')", "quoted function names"),
    # schema-qualified
    ("postgresql", "select pg_catalog.\"pg_read_file\"('/etc/hostname')", "pg_catalog schema"),
    ("postgresql", "select pg_catalog.\"pg_ls_dir\"('.')", "pg_catalog schema"),
    ("postgresql", "select pg_catalog.\"query_to_xml\"('select 1', true, true, '')", "pg_catalog schema"),
    ("postgresql", "select pg_catalog.\"pg_read_binary_file\"('/etc/hostname')", "pg_catalog schema"),
    ("postgresql", "select pg_catalog.pg_read_file('/etc/hostname')", "pg_catalog schema"),
    ("postgresql", "select * from pg_catalog.ts_stat('select 1')", "not a table of this source"),
    ("postgresql", "select * from public.ts_stat('select 1')", "ts_stat()"),
    # plain names: functions that run SQL given as a string, read files or settings
    ("postgresql", "select * from ts_stat('select to_tsvector(rolname) from pg_authid')", "ts_stat()"),
    ("postgresql", "select ts_rewrite('a'::tsquery, 'select 1')", "ts_rewrite()"),
    ("postgresql", "select query_to_xml('select 1', true, true, '')", "query_to_xml()"),
    ("postgresql", "select query_to_xmlschema('select 1', true, true, '')", "query_to_xmlschema()"),
    ("postgresql", "select query_to_xml_and_xmlschema('select 1', true, true, '')", "query_to_xml_and_xmlschema()"),
    ("postgresql", "select cursor_to_xml('c', 1, true, true, '')", "cursor_to_xml()"),
    ("postgresql", "select table_to_xml('t', true, true, '')", "table_to_xml()"),
    ("postgresql", "select database_to_xml(true, true, '')", "database_to_xml()"),
    ("postgresql", "select schema_to_xml('public', true, true, '')", "schema_to_xml()"),
    ("postgresql", "select current_setting('data_directory')", "current_setting()"),
    ("postgresql", "select set_config('a', 'b', false)", "set_config()"),
    ("postgresql", "select lo_get(1)", "lo_get()"),
    ("postgresql", "select dblink_connect('x')", "dblink_connect()"),
    ("postgresql", "select pg_sleep(10)", "pg_sleep()"),
    ("postgresql", "select * from rows from (pg_ls_dir('.'))", "pg_ls_dir()"),
    ("mysql", "select sys_eval('id')", "sys_eval()"),
    ("mysql", "select sleep(10)", "sleep()"),
    ("mysql", "select @@datadir", "server variables"),
    ("duckdb", "select * from query('select current_setting(''allowed_paths'')')", "query()"),
    ("duckdb", "select * from query_table('data')", "query_table()"),
    ("duckdb", "select * from duckdb_settings()", "duckdb_settings()"),
    ("duckdb", "select getvariable('x')", "getvariable()"),
    ("duckdb", "select * from read_csv('/etc/passwd')", "read_csv()"),
    ("duckdb", "select * from postgres_scan('host=x', 'public', 't')", "postgres_scan()"),
    # wherever the call sits
    ("duckdb", "select * from (select * from query('select 1')) s", "query()"),
    ("duckdb", "select * from data where x in (select x from query_table('data'))", "query_table()"),
    ("postgresql", "with w as (select * from ts_stat('select 1')) select * from w", "ts_stat()"),
    ("postgresql", "select * from t, lateral ts_stat('select 1') s", "ts_stat()"),
    ("postgresql", "select (select pg_read_file('/etc/passwd')) as x", "pg_read_file()"),
    ("postgresql", "select coalesce(null, query_to_xml('select 1', true, true, ''))", "query_to_xml()"),
    # allowlist: a function neither sqlglot nor EXTRA_FUNCTIONS knows is refused, refused list or not
    ("postgresql", "select txid_current()", "not a function the explorer runs"),
    ("postgresql", "select has_table_privilege('items', 'select')", "not a function the explorer runs"),
    ("postgresql", "select my_udf(amount) from items", "not a function the explorer runs"),
    ("postgresql", "select public.my_udf(amount) from items", "not a function the explorer runs"),
    ("duckdb", "select * from my_table_macro()", "not a function the explorer runs"),
    ("mysql", "select uuid_short()", "not a function the explorer runs"),
    ("sqlite", "select zipfile('x')", "not a function the explorer runs"),
]


@pytest.mark.parametrize(("kind", "sql", "reason"), REFUSED, ids=[sql[:60] for _, sql, _ in REFUSED])
def test_each_bypass_is_refused_with_a_reason(kind: str, sql: str, reason: str) -> None:
    with pytest.raises(RejectedQuery) as refused:
        validate(sql, kind)
    assert reason in str(refused.value)


ALLOWED = [
    ("postgresql", "select upper(name), count(*), sum(amount) from items group by 1"),
    ("postgresql", 'select "upper"(name) from items'),  # a known function: sqlglot writes it back unquoted
    ("postgresql", "select jsonb_path_query('{}'::jsonb, '$') from items"),
    ("postgresql", "with w as (select id from items) select * from w, lateral (select id + 1 as n) l"),
    ("mysql", "select `id`, date_format(now(), '%Y') from `items` where id in (select id from items)"),
    ("duckdb", "select id, repeat('x', 3), list_value(1, 2) from data order by id"),
    ("sqlite", "select id, substr(name, 1, 2) from items"),
    # standard analytical functions, typed by sqlglot or in EXTRA_FUNCTIONS
    ("duckdb", "select quantile_cont(x, 0.5), median(x), date_part('year', d), list_sort(l) from data"),
    ("sqlite", "select julianday(d), strftime('%Y', d), iif(x > 1, 1, 0) from items"),
    ("mysql", "select date_format(d, '%Y'), ifnull(x, 0), timestampdiff(day, a, b) from items"),
    (
        "postgresql",
        "select date_part('year', d), percentile_cont(0.5) within group (order by x), "
        "row_number() over (order by x), jsonb_typeof(j) from items",
    ),
]


@pytest.mark.parametrize(("kind", "sql"), ALLOWED)
def test_plain_analytical_sql_still_passes_and_is_limited(kind: str, sql: str) -> None:
    sent = limited(validate(sql, kind), kind, 10)
    assert sent.upper().endswith("LIMIT 10")


@pytest.mark.parametrize(
    "name", ["pg_read_file", "PG_LS_DIR", "lo_import", "dblink_exec", "duckdb_secrets", "sys_exec", "query_to_xml"]
)
def test_families_are_refused_by_name_shape(name: str) -> None:
    assert is_dangerous(name)


@pytest.mark.parametrize("name", ["upper", "sum", "jsonb_path_query", "date_trunc", "regexp_replace"])
def test_ordinary_functions_are_not_dangerous(name: str) -> None:
    assert not is_dangerous(name)


@pytest.mark.parametrize(
    ("grants", "reads_files"),
    [
        (["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION"], True),
        (["GRANT SELECT, FILE ON *.* TO `u`@`%`"], True),
        (["GRANT SUPER ON *.* TO `u`@`%` IDENTIFIED BY PASSWORD '*AB'"], True),
        (["GRANT USAGE ON *.* TO `u`@`%`", "GRANT SELECT ON `shop`.* TO `u`@`%`"], False),
        (["GRANT ALL PRIVILEGES ON `shop`.* TO `u`@`%`"], False),  # one database: no server files
        (["GRANT SELECT, SHOW VIEW ON *.* TO `u`@`%`"], False),
    ],
)
def test_mysql_grants_that_read_server_files(grants: list[str], reads_files: bool) -> None:
    assert mysql_grants_read_files(grants) is reads_files


def test_no_allowed_function_is_a_refused_one() -> None:
    assert sorted(name for name in EXTRA_FUNCTIONS if is_dangerous(name)) == []
