"""Static policy: what generated feature code may and may not contain."""

from __future__ import annotations

import pytest

from sandbox import check_code

VALID = """
import polars as pl
import numpy as np
import math
import re
from datetime import date, timedelta
import polars.selectors as cs

def feature(df: pl.DataFrame, ref: pl.DataFrame) -> pl.Series:
    mu = ref["x"].mean()
    return (df["x"] - mu).abs().log1p() * math.pi
"""


def test_valid_code_passes() -> None:
    assert check_code(VALID) == []


@pytest.mark.parametrize(
    ("snippet", "expected"),
    [
        ("import os", "forbidden import 'os' (line 1): only polars, numpy, math, datetime, re are allowed"),
        ("import socket", "forbidden import 'socket'"),
        ("import subprocess", "forbidden import 'subprocess'"),
        ("from os import system", "forbidden import 'os'"),
        ("from os.path import join", "forbidden import 'os.path'"),
        ("import numpy.ctypeslib", "forbidden import 'numpy.ctypeslib'"),
        ("from numpy import ctypeslib", "forbidden import of 'ctypeslib'"),
        ("from polars import *", "forbidden 'import *'"),
        ("from . import x", "forbidden relative import"),
        ("x = __import__('os')", "forbidden name '__import__'"),
        ("x = ().__class__.__bases__[0].__subclasses__()", "forbidden attribute '.__class__'"),
        ("x = eval('1')", "forbidden builtin 'eval'"),
        ("f = exec", "forbidden builtin 'exec'"),
        ("x = open('/etc/passwd', 'w')", "forbidden builtin 'open'"),
        ("x = getattr(1, 'real')", "forbidden builtin 'getattr'"),
        ("x = type(1)", "forbidden builtin 'type'"),
        ("x = __builtins__", "forbidden name '__builtins__'"),
        ("import polars as pl\nx = pl.os.system('id')", "forbidden attribute '.os' (line 2)"),
        ("import datetime\nx = datetime.sys.modules", "forbidden attribute '.sys'"),
        ("import polars as pl\npl.DataFrame().write_csv('/tmp/x')", "forbidden attribute '.write_csv'"),
        ("import numpy as np\nnp.zeros(1).tofile('/tmp/x')", "forbidden attribute '.tofile'"),
        ("x = '{0.__class__}'.format(1)", "forbidden string (line 1)"),
        ("class A:\n    pass", "forbidden class definition"),
        ("def g():\n    yield 1", "forbidden generator"),
        ("import math as __builtins__", "forbidden name '__builtins__'"),
        ("import polars as pl\nx = pl.sql(\"SELECT * FROM read_parquet('/x')\")", "forbidden attribute '.sql'"),
        ("import polars as pl\nx = pl.DataFrame().sql('SELECT 1')", "forbidden attribute '.sql'"),
        ("import polars as pl\nx = pl.SQLContext()", "forbidden attribute '.SQLContext'"),
        ("import polars as pl\nx = pl.sql_expr('a')", "forbidden attribute '.sql_expr'"),
        ("from polars import sql", "forbidden import of 'sql'"),
        ("from polars import SQLContext", "forbidden import of 'SQLContext'"),
        ("import polars.sql", "forbidden import 'polars.sql'"),
        ("import polars as pl\nx = pl.read_parquet('/x')", "forbidden attribute '.read_parquet'"),
        ("import polars as pl\nx = pl.scan_csv('/x')", "forbidden attribute '.scan_csv'"),
        ("import polars as pl\nx = pl.LazyFrame.deserialize('/x')", "forbidden attribute '.deserialize'"),
        ("import duckdb", "forbidden import 'duckdb'"),
        ("import polars as pl\nx = pl.duckdb", "forbidden attribute '.duckdb'"),
        ("def feature(df, ref:", "syntax error (line 1)"),
    ],
)
def test_violations_are_reported(snippet: str, expected: str) -> None:
    violations = check_code(snippet + "\n\ndef feature(df, ref):\n    return df['x']\n")
    assert any(expected in v for v in violations), violations


def test_feature_must_be_defined() -> None:
    assert check_code("import polars as pl\nx = 1\n") == ["no top-level function 'feature(df, ref)' is defined"]
