"""Static AST policy for generated feature code, checked before anything runs."""

from __future__ import annotations

import ast
import functools
import re

ALLOWED_MODULES = ("polars", "numpy", "math", "datetime", "re")
# Submodules reachable by import or attribute; any other module object is denied at runtime too.
ALLOWED_SUBMODULES = frozenset({"polars.selectors", "numpy.linalg", "numpy.random", "numpy.fft"})
FORBIDDEN_BUILTINS = frozenset(
    {
        "exec", "eval", "open", "compile", "getattr", "setattr", "delattr", "globals", "locals",
        "vars", "input", "breakpoint", "__import__", "help", "exit", "quit", "type", "object",
        "super", "memoryview", "dir", "classmethod", "staticmethod", "property",
    }
)  # fmt: skip
# Attributes that reach files, FFI, plugins or interpreter frames from allowed modules.
FORBIDDEN_ATTRIBUTES = frozenset(
    {
        "gi_frame", "gi_code", "gi_yieldfrom", "cr_frame", "cr_code", "ag_frame", "ag_code",
        "f_back", "f_globals", "f_locals", "f_builtins", "f_code", "tb_frame", "tb_next",
        "ctypes", "ctypeslib", "as_ctypes", "load_library", "plugins", "register_plugin_function",
        "tofile", "fromfile", "load", "loadtxt", "save", "savez", "savez_compressed", "savetxt",
        "genfromtxt", "memmap", "fromregex", "open_memmap", "Config", "show_versions",
        # modules that allowed packages re-export (e.g. `pl.os`, `datetime.sys`)
        "os", "sys", "subprocess", "socket", "builtins", "importlib", "shutil", "io", "pathlib",
        "pickle", "marshal", "signal", "threading", "multiprocessing", "f2py", "testing",
        # SQL engines and deserializers reach files by table function or path (`read_parquet(...)`)
        "sql", "SQLContext", "sql_expr", "duckdb", "deserialize", "from_json", "Catalog",
        "DataSource",
    }
)  # fmt: skip
FORBIDDEN_ATTRIBUTE_PREFIXES = ("write_", "sink_", "read_", "scan_")
MAX_CODE_CHARS = 200_000
_DUNDER = re.compile(r"__\w+__")
_ALLOWED_TEXT = ", ".join(ALLOWED_MODULES)


def is_allowed_module(name: str) -> bool:
    """True for an allowlisted top-level module or one of its allowed submodules."""
    return name in ALLOWED_MODULES or name in ALLOWED_SUBMODULES


def check_code(code: str) -> list[str]:
    """Return policy violations of `code` (empty list = ok), each a one-line message."""
    if len(code) > MAX_CODE_CHARS:
        return [f"code is {len(code)} characters; the limit is {MAX_CODE_CHARS}"]
    return list(_violations(code))


@functools.lru_cache(maxsize=4096)
def _violations(code: str) -> tuple[str, ...]:
    """The check itself, remembered: a job's codes are checked when the execution agent decides
    which may share a process and again by the sandbox before they run (about 2-4 ms each)."""
    try:
        tree = ast.parse(code, filename="<feature>")
    except SyntaxError as exc:
        return (f"syntax error (line {exc.lineno}): {exc.msg}",)
    found: list[tuple[int, int, str]] = []
    for node in ast.walk(tree):
        line: int = getattr(node, "lineno", 0)
        column: int = getattr(node, "end_col_offset", None) or 0
        found.extend((line, column, message) for message in _check_node(node))
    violations = [message for *_, message in sorted(found)]
    if not any(isinstance(n, ast.FunctionDef) and n.name == "feature" for n in tree.body):
        violations.append("no top-level function 'feature(df, ref)' is defined")
    return tuple(violations)


def _check_node(node: ast.AST) -> list[str]:
    line = getattr(node, "lineno", "?")
    match node:
        case ast.Import(names=names):
            return [_import_violation(a.name, line) for a in names if not is_allowed_module(a.name)] + [
                v for a in names for v in _name_violations(a.asname, line)
            ]
        case ast.ImportFrom(module=module, names=names, level=level):
            if level:
                return [f"forbidden relative import (line {line}): only {_ALLOWED_TEXT} are allowed"]
            found = [] if is_allowed_module(module or "") else [_import_violation(module or "", line)]
            for alias in names:
                if alias.name == "*":
                    found.append(f"forbidden 'import *' (line {line}): import names explicitly")
                elif alias.name.startswith("_"):
                    found.append(f"forbidden import of private name '{alias.name}' (line {line})")
                elif alias.name in FORBIDDEN_ATTRIBUTES or alias.name.startswith(FORBIDDEN_ATTRIBUTE_PREFIXES):
                    found.append(
                        f"forbidden import of '{alias.name}' (line {line}): file, FFI and frame access are not allowed"
                    )
                found.extend(_name_violations(alias.asname, line))
            return found
        case ast.Name(id=name):
            return _name_violations(name, line)
        case ast.arg(arg=name):
            return _name_violations(name, line)
        case ast.Attribute(attr=attr):
            if attr.startswith("_"):
                return [f"forbidden attribute '.{attr}' (line {line}): private and dunder attributes are not allowed"]
            if attr in FORBIDDEN_ATTRIBUTES or attr.startswith(FORBIDDEN_ATTRIBUTE_PREFIXES):
                return [f"forbidden attribute '.{attr}' (line {line}): file, FFI and frame access are not allowed"]
            return []
        case ast.Constant(value=str() as text) if _DUNDER.search(text):
            return [f"forbidden string (line {line}): dunder names in strings are not allowed"]
        case ast.ClassDef():
            return [f"forbidden class definition (line {line}): define plain functions"]
        case ast.Yield() | ast.YieldFrom() | ast.Await() | ast.AsyncFunctionDef() | ast.AsyncFor() | ast.AsyncWith():
            return [f"forbidden generator or async code (line {line})"]
        case ast.Global() | ast.Nonlocal():
            return [f"forbidden global/nonlocal statement (line {line})"]
    return []


def _import_violation(name: str, line: object) -> str:
    return f"forbidden import '{name}' (line {line}): only {_ALLOWED_TEXT} are allowed"


def _name_violations(name: str | None, line: object) -> list[str]:
    if name is None:
        return []
    if name.startswith("__") or name.endswith("__"):
        return [f"forbidden name '{name}' (line {line}): dunder names are not allowed"]
    if name in FORBIDDEN_BUILTINS:
        return [f"forbidden builtin '{name}' (line {line})"]
    return []
