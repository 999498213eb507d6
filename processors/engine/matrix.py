"""Raw table -> numeric matrix for LightGBM, with the encodings remembered.

Numerics become float64, booleans 0/1, strings and categoricals integer codes
(declared as LightGBM categorical features), dates and datetimes epoch seconds
plus calendar parts. `BaseMatrix.encode` applies the same encodings to new rows
(e.g. a test part), so unseen categories become missing rather than new codes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

from processors.engine.scoring import Task

_DATE_PARTS = ("year", "month", "weekday")


class EngineInputError(ValueError):
    """The table or target cannot be evaluated; the message says what to change."""


@dataclass(frozen=True)
class ColumnEncoding:
    """How one source column became one or more matrix columns."""

    source: str
    kind: Literal["numeric", "boolean", "categorical", "datetime"]
    categories: tuple[str, ...] = ()
    with_time: bool = False

    @property
    def outputs(self) -> tuple[str, ...]:
        if self.kind != "datetime":
            return (self.source,)
        parts = (*_DATE_PARTS, "hour") if self.with_time else _DATE_PARTS
        return (self.source, *(f"{self.source}__{p}" for p in parts))

    def apply(self, series: pl.Series) -> list[np.ndarray]:
        if self.kind == "numeric":
            return [series.cast(pl.Float64).to_numpy().astype(np.float64)]
        if self.kind == "boolean":
            return [series.cast(pl.Float64).to_numpy().astype(np.float64)]
        if self.kind == "categorical":
            lookup = {c: float(i) for i, c in enumerate(self.categories)}
            values = series.cast(pl.String).to_list()
            return [np.array([lookup.get(v, np.nan) if v is not None else np.nan for v in values])]
        epoch = series.dt.epoch("s").cast(pl.Float64).to_numpy().astype(np.float64)
        out = [epoch]
        parts = (*_DATE_PARTS, "hour") if self.with_time else _DATE_PARTS
        for part in parts:
            out.append(getattr(series.dt, part)().cast(pl.Float64).to_numpy().astype(np.float64))
        return out


@dataclass(frozen=True)
class BaseMatrix:
    """Raw features ready for LightGBM plus the target as a numeric array."""

    x: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    categorical: tuple[int, ...]
    encodings: tuple[ColumnEncoding, ...]
    target: str
    task: Task
    positive_class: str | None
    classes: tuple[str, ...] = ()  # a multiclass target's labels; y holds their index

    @property
    def n_rows(self) -> int:
        return int(self.x.shape[0])

    def encode(self, df: pl.DataFrame) -> np.ndarray:
        """Encode new rows with the encodings learnt from the training table."""
        columns: list[np.ndarray] = []
        for enc in self.encodings:
            columns.extend(enc.apply(df[enc.source]))
        if not columns:
            return np.empty((df.height, 0))
        return np.column_stack(columns)


def _encoding_for(name: str, series: pl.Series) -> ColumnEncoding:
    dtype = series.dtype
    if dtype == pl.Boolean:
        return ColumnEncoding(name, "boolean")
    if dtype.is_numeric():
        return ColumnEncoding(name, "numeric")
    if dtype.is_temporal() and dtype in (pl.Date, pl.Datetime):
        return ColumnEncoding(name, "datetime", with_time=dtype != pl.Date)
    values = series.cast(pl.String).drop_nulls().unique().sort().to_list()
    return ColumnEncoding(name, "categorical", categories=tuple(values))


def encode_target(series: pl.Series, task: Task, positive_class: str | None) -> tuple[np.ndarray, str | None]:
    """Target as float64 (0/1 for classification, the class's index for multiclass) and the positive class used."""
    if series.null_count():
        raise EngineInputError(
            f"target '{series.name}' has {series.null_count()} missing values: "
            "drop those rows before evaluating features"
        )
    if task == "regression":
        if not series.dtype.is_numeric():
            raise EngineInputError(f"regression target '{series.name}' must be numeric, got {series.dtype}")
        return series.cast(pl.Float64).to_numpy().astype(np.float64), None
    labels = series.cast(pl.String)
    classes = labels.unique().sort().to_list()
    if task == "multiclass":
        if len(classes) < 3:
            raise EngineInputError(f"multiclass target '{series.name}' has {len(classes)} classes: use classification")
        index = {c: float(i) for i, c in enumerate(classes)}
        return np.array([index[v] for v in labels.to_list()], dtype=np.float64), None
    if positive_class is None:
        if len(classes) != 2:
            raise EngineInputError(f"target '{series.name}' has {len(classes)} classes: name the positive class")
        positive_class = "1" if "1" in classes else ("true" if "true" in classes else classes[-1])
    if positive_class not in classes:
        raise EngineInputError(
            f"positive class '{positive_class}' not in target '{series.name}': {', '.join(classes[:10])}"
        )
    y = (labels == positive_class).cast(pl.Int8).to_numpy().astype(np.float64)
    if y.min() == y.max():
        raise EngineInputError(f"target '{series.name}' has a single class: nothing to predict")
    return y, positive_class


def prepare_base(
    df: pl.DataFrame,
    target: str,
    task: Task,
    positive_class: str | None = None,
    exclude: Sequence[str] = (),
) -> BaseMatrix:
    """Encode the raw feature columns of `df` (all but target and `exclude`) for LightGBM.

    A classification target with three or more classes and no positive class named is
    evaluated as `multiclass` (softmax, multiclass log loss); `BaseMatrix.task` says which.
    """
    if target not in df.columns:
        raise EngineInputError(f"target '{target}' not in columns: {', '.join(df.columns[:20])}")
    labels: tuple[str, ...] = ()
    if task == "classification" and positive_class is None:
        labels = tuple(df[target].cast(pl.String).drop_nulls().unique().sort().to_list())
        task = "multiclass" if len(labels) > 2 else task
    if task != "multiclass":
        labels = ()
    skip = {target, *exclude}
    encodings = tuple(_encoding_for(c, df[c]) for c in df.columns if c not in skip)
    y, positive_class = encode_target(df[target], task, positive_class)
    names: list[str] = []
    categorical: list[int] = []
    for enc in encodings:
        if enc.kind == "categorical":
            categorical.append(len(names))
        names.extend(enc.outputs)
    base = BaseMatrix(
        x=np.empty((df.height, 0)),
        y=y,
        feature_names=tuple(names),
        categorical=tuple(categorical),
        encodings=encodings,
        target=target,
        task=task,
        positive_class=positive_class,
        classes=labels,
    )
    return BaseMatrix(
        x=base.encode(df),
        y=y,
        feature_names=base.feature_names,
        categorical=base.categorical,
        encodings=encodings,
        target=target,
        task=task,
        positive_class=positive_class,
        classes=labels,
    )
