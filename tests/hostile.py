"""Hostile column names, shared by the codegen unit tests and the security suite.

Each tries to break out of a string, a comment, a format string or a SQL identifier,
or to confuse a reader (control characters, bidi overrides, 10 kB names).
"""

from __future__ import annotations

HOSTILE_NAMES = [
    '"""',
    "'''",
    '"""\nimport os\nos.system("id")\n"""',
    "'''\nimport os\n'''",
    "a\nb",
    "a\rb",
    "a\x00b",
    "\\",
    "a\\\nb",
    "trailing\\",
    "{}",
    "{0.__class__}",
    "{name}{op}{cols}",
    "#",
    "# comment\nx = 1",
    "'",
    '"',
    "x" * 10_000,
    "\u2028",
    "\u2029",
    "\\N{BULLET}",
    "\\u0041\\x41",
    "\u202etxt.exe",
    "class",
    "None",
    "lambda",
    "__import__",
    "__class__",
    "); import os; (",
    "')); import os; (('",
    '"; DROP TABLE x; --',
    "\t",
    " ",
    "Äöü 名前",
    "\x1b[31mred",
    "\ufeffbom",
    "%s %(x)s ${x}",
    "a" * 1024 + '"',
]


def name_id(i: int, name: str) -> str:
    """A readable, unique pytest id for a hostile name."""
    return f"{i}-{name[:12].encode('unicode_escape').decode()}"


HOSTILE_IDS = [name_id(i, name) for i, name in enumerate(HOSTILE_NAMES)]
