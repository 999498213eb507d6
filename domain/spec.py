"""What a candidate feature *is*, independent of the code that computes it.

A `FeatureSpec` is a typed operator applied to source columns. Ideation emits
specs, code generation turns a spec into Polars code (and SQL where it fits),
evaluation never looks inside: it only sees the computed column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Operators whose statistics come from data ("fitted"): they must be fitted on the
# training rows of each fold only, never on the rows they are evaluated on.
FITTED_OPS = frozenset(
    {
        "freq",  # frequency encoding of a categorical
        "bin",  # quantile binning
        "rank",  # rank / percentile of a numeric against the reference rows
        "group_mean",  # mean of numeric by categorical
        "group_std",
        "group_median",
        "group_count",
        "group_diff",  # value minus its group mean
        "group_ratio",  # value divided by its group mean
        "group_zscore",
        "group_nunique",
        "concat",  # code of a combination of two categoricals, among the reference rows' combinations
    }
)

STATELESS_OPS = frozenset(
    {
        "ratio",
        "diff",
        "sum",
        "product",
        "log",
        "sqrt",
        "square",
        "abs",
        "reciprocal",
        "is_null",
        "date_part",  # params: part in {year, month, day, weekday, hour, dayofyear}
        "cyclic_sin",  # params: period
        "cyclic_cos",
        "formula",  # knowledge-base formula: params: expr (restricted arithmetic over columns)
    }
)


@dataclass(frozen=True)
class FeatureSpec:
    """A typed operator over source columns, e.g. FeatureSpec("ratio", ("debt", "income"))."""

    op: str
    columns: tuple[str, ...]
    params: tuple[tuple[str, Any], ...] = field(default=())

    @property
    def fitted(self) -> bool:
        return self.op in FITTED_OPS

    def param(self, name: str, default: Any = None) -> Any:
        return dict(self.params).get(name, default)

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "columns": list(self.columns), "params": dict(self.params)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSpec:
        params = data.get("params") or {}
        return cls(
            op=str(data["op"]),
            columns=tuple(str(c) for c in data["columns"]),
            params=tuple(sorted(params.items())),
        )
