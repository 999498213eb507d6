"""Inside the run process: exec the feature code and turn its output into a float64 matrix."""

from __future__ import annotations

import traceback
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import pyarrow as pa

from sandbox.namespace import Denied, feature_globals

CODE_FILENAME = "<feature>"


class FeatureFailed(Exception):
    """The feature code failed; `violation` is the SandboxResult category."""

    def __init__(self, violation: str, reason: str) -> None:
        super().__init__(reason)
        self.violation = violation
        self.reason = reason


def compute_feature(code: str, table: pa.Table, masks: npt.NDArray[np.bool_] | None) -> npt.NDArray[np.float64]:
    """values[:, i] = feature(df=table, ref=table rows where masks[i]); raises FeatureFailed."""
    df = pl.from_arrow(table)
    assert isinstance(df, pl.DataFrame)
    namespace = feature_globals()
    try:
        exec(compile(code, CODE_FILENAME, "exec"), namespace)
        feature = namespace.get("feature")
        if not callable(feature):
            raise FeatureFailed("policy", "the code does not define a function 'feature(df, ref)'")
        fits = [None] if masks is None else list(masks)
        out = np.empty((df.height, len(fits)), dtype=np.float64)
        for i, mask in enumerate(fits):
            ref = df if mask is None else df.filter(pl.Series(mask))
            out[:, i] = _as_column(feature(df.clone(), ref.clone()), df)
        return out
    except FeatureFailed:
        raise
    except MemoryError as exc:
        raise FeatureFailed("memory", f"MemoryError{_where(exc)}") from None
    except Denied as exc:
        raise FeatureFailed("policy", f"{exc}{_where(exc)}") from None
    except BaseException as exc:  # noqa: BLE001 - anything the code raises is reported, never propagated
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise FeatureFailed("error", f"feature raised {type(exc).__name__}: {first}{_where(exc)}") from None


def _as_column(result: Any, df: pl.DataFrame) -> npt.NDArray[np.float64]:
    if isinstance(result, pl.Expr):
        try:
            result = df.select(result).to_series()
        except Exception as exc:  # noqa: BLE001 - any evaluation error is the feature's
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise FeatureFailed(
                "error", f"evaluating the returned expression raised {type(exc).__name__}: {first}"
            ) from None
    if isinstance(result, np.ndarray) and result.ndim == 1:
        result = pl.Series(result)
    if not isinstance(result, pl.Series):
        raise FeatureFailed("output", f"feature returned {type(result).__name__}; expected a polars Series or Expr")
    if result.len() != df.height:
        raise FeatureFailed(
            "output", f"feature returned {result.len()} values; expected {df.height} (one per row of df)"
        )
    if not (result.dtype.is_numeric() or result.dtype == pl.Boolean):
        raise FeatureFailed("output", f"feature returned dtype {result.dtype}; expected a numeric dtype")
    values = result.cast(pl.Float64).to_numpy()
    return np.asarray(values, dtype=np.float64)


def _where(exc: BaseException) -> str:
    lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == CODE_FILENAME]
    return f" (line {lines[-1]})" if lines else ""
