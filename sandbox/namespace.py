"""The exec namespace for feature code: restricted builtins, an allowlisting importer and
module proxies that refuse to hand out any module outside the allowlist (e.g. `np.lib...os`)."""

from __future__ import annotations

import builtins
import importlib
import sys
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

from sandbox.policy import ALLOWED_MODULES, FORBIDDEN_ATTRIBUTE_PREFIXES, FORBIDDEN_ATTRIBUTES, is_allowed_module

_SAFE_BUILTIN_NAMES = (
    "abs", "all", "any", "bin", "bool", "bytearray", "bytes", "chr", "dict", "divmod", "enumerate", "filter", "float",
    "format", "frozenset", "hash", "hex", "int", "isinstance", "issubclass", "iter", "len", "list",
    "map", "max", "min", "next", "oct", "ord", "pow", "print", "range", "repr", "reversed", "round",
    "set", "slice", "sorted", "str", "sum", "tuple", "zip", "True", "False", "None",
    "ArithmeticError", "AssertionError", "AttributeError", "Exception", "IndexError", "KeyError",
    "LookupError", "NotImplementedError", "OverflowError", "RuntimeError", "StopIteration",
    "TypeError", "ValueError", "ZeroDivisionError",
)  # fmt: skip


class Denied(Exception):
    """Raised at runtime when feature code reaches for something outside the sandbox."""


class DeniedImport(Denied, ImportError):
    pass


class DeniedAttribute(Denied, AttributeError):
    pass


class ModuleProxy:
    """Read-only view of an allowed module that never returns a non-allowed module."""

    __slots__ = ("_module",)

    def __init__(self, module: ModuleType) -> None:
        object.__setattr__(self, "_module", module)

    def __getattr__(self, name: str) -> Any:
        module: ModuleType = object.__getattribute__(self, "_module")
        if name.startswith("_"):
            raise DeniedAttribute(f"attribute '{module.__name__}.{name}' is not available in the sandbox")
        value = getattr(module, name)
        if isinstance(value, ModuleType):
            if not is_allowed_module(value.__name__):
                raise DeniedAttribute(f"module '{value.__name__}' is not available in the sandbox")
            return ModuleProxy(value)
        if name in FORBIDDEN_ATTRIBUTES or name.startswith(FORBIDDEN_ATTRIBUTE_PREFIXES):
            raise DeniedAttribute(
                f"'{module.__name__}.{name}' is not available in the sandbox: it reaches files, SQL or FFI"
            )
        return value

    def __setattr__(self, name: str, value: object) -> None:
        raise DeniedAttribute("modules are read-only in the sandbox")

    def __repr__(self) -> str:
        return f"<sandboxed module {object.__getattribute__(self, '_module').__name__!r}>"


def guarded_import(
    name: str,
    globals: Mapping[str, object] | None = None,
    locals: Mapping[str, object] | None = None,
    fromlist: Sequence[str] | None = (),
    level: int = 0,
) -> ModuleProxy:
    """`__import__` replacement: allowlisted modules only, returned as proxies."""
    if level or not is_allowed_module(name):
        raise DeniedImport(f"import of '{name}' is not allowed: only {', '.join(ALLOWED_MODULES)} are allowed")
    module = importlib.import_module(name)
    return ModuleProxy(module if fromlist else sys.modules[name.partition(".")[0]])


# Methods of Polars objects (not modules, so no ModuleProxy sees them) that reach files:
# SQL table functions (`read_parquet('/x')`) and deserializers that take a path.
FILE_METHODS = {"DataFrame": ("sql", "deserialize"), "LazyFrame": ("sql", "deserialize"), "Expr": ("deserialize",)}


def disarm_file_methods() -> None:
    """Make Polars' SQL and deserialize methods raise Denied. Only for a run process: it
    changes the classes for the whole (forked, throwaway) process."""
    import polars as pl

    for class_name, methods in FILE_METHODS.items():
        cls = getattr(pl, class_name)
        for method in methods:
            if hasattr(cls, method):
                setattr(cls, method, _refuse(f"polars.{class_name}.{method}"))


def _refuse(name: str) -> Any:
    def refused(*args: object, **kwargs: object) -> None:
        raise DeniedAttribute(f"'{name}' is not available in the sandbox: it reaches files")

    return refused


def feature_globals() -> dict[str, Any]:
    """A fresh globals dict for exec() of feature code."""
    safe = {name: getattr(builtins, name) for name in _SAFE_BUILTIN_NAMES}
    safe["__import__"] = guarded_import
    return {"__builtins__": safe, "__name__": "feature_code"}
