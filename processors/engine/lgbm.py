"""Import LightGBM without its optional scikit-learn, pandas and dask integrations.

`import lightgbm` imports scikit-learn (and with it most of scipy) when it is
installed, only to offer `LGBMClassifier` and friends: 1.0 s of the 1.5 s import
here with compiled bytecode, 2.6 s of 3 s without. The engine passes numpy arrays
to `lightgbm.train`, so the fit workers (and an in-process fallback) hide those
packages while LightGBM initialises. Packages the process has already imported
are left alone, so code that uses them next to the engine (tests, the benchmark)
keeps working.
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys
from types import ModuleType

OPTIONAL = ("sklearn", "pandas", "dask", "matplotlib", "graphviz")


class _Hide(importlib.abc.MetaPathFinder):
    def __init__(self, names: set[str]) -> None:
        self.names = names

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> None:
        if fullname.partition(".")[0] in self.names:
            raise ImportError(f"{fullname} hidden while LightGBM is imported (not needed by the engine)")


def import_lightgbm() -> ModuleType:
    """The `lightgbm` module, imported without optional integrations not yet loaded."""
    if "lightgbm" in sys.modules:
        return sys.modules["lightgbm"]
    hide = _Hide({name for name in OPTIONAL if name not in sys.modules})
    sys.meta_path.insert(0, hide)
    try:
        return importlib.import_module("lightgbm")
    finally:
        sys.meta_path.remove(hide)
