"""featuretools Deep Feature Synthesis on one table. Run as ``python -m bench.engines.dfs_engine WORK``.

Primitives: add_numeric, subtract_numeric, multiply_numeric, divide_numeric (the
pairwise arithmetic set the OpenFE paper's DFS baseline uses), no aggregations,
max_depth=1. Every generated column is added (no selection). Feature definitions are
built on train and the same definitions computed on test with ``calculate_feature_matrix``.

woodwork 0.31 / featuretools 1.31 still ``import pkg_resources`` only for
``iter_entry_points``; setuptools is not in the venv, so we register a tiny stand-in
built on importlib.metadata before importing them.
"""

from __future__ import annotations

import importlib.metadata
import sys
import types
from pathlib import Path

import pandas as pd

from bench.engines.workdir import read_input, write_output

PRIMITIVES = ["add_numeric", "subtract_numeric", "multiply_numeric", "divide_numeric"]
MAX_DEPTH = 1
ROW_ID = "__bench_row_id"


def _install_pkg_resources_stub() -> None:
    if "pkg_resources" in sys.modules:
        return
    try:
        import pkg_resources  # noqa: F401

        return
    except ImportError:
        pass
    stub = types.ModuleType("pkg_resources")

    def iter_entry_points(group: str, name: str | None = None):
        return [e for e in importlib.metadata.entry_points(group=group) if name is None or e.name == name]

    stub.iter_entry_points = iter_entry_points  # type: ignore[attr-defined]
    sys.modules["pkg_resources"] = stub


def _entityset(ft, x: pd.DataFrame):
    logical_types = {c: ("Categorical" if isinstance(x[c].dtype, pd.CategoricalDtype) else "Double") for c in x.columns}
    es = ft.EntitySet(id="bench")
    es.add_dataframe(
        dataframe_name="rows",
        dataframe=x.reset_index(drop=True).copy(),
        index=ROW_ID,
        make_index=True,
        logical_types=logical_types,
    )
    return es


def main(argv: list[str]) -> int:
    work = Path(argv[0]).resolve()
    inp = read_input(work)
    _install_pkg_resources_stub()
    import featuretools as ft

    es_train = _entityset(ft, inp.x_train)
    features = ft.dfs(
        entityset=es_train,
        target_dataframe_name="rows",
        trans_primitives=PRIMITIVES,
        agg_primitives=[],
        max_depth=MAX_DEPTH,
        features_only=True,
    )
    new = [f for f in features if not isinstance(f, ft.IdentityFeature)]
    fm_train = ft.calculate_feature_matrix(new, entityset=es_train).sort_index()
    fm_test = ft.calculate_feature_matrix(new, entityset=_entityset(ft, inp.x_test)).sort_index()
    names = [f.get_name() for f in new]
    cols = [f"dfs_{i}" for i in range(len(names))]
    fm_train.columns, fm_test.columns = cols, cols
    write_output(
        work,
        fm_train.astype("float32"),
        fm_test.astype("float32"),
        {"engine": "dfs", "primitives": PRIMITIVES, "max_depth": MAX_DEPTH, "features": dict(zip(cols, names))},
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
