"""Profile a table the way a data scientist would before engineering features.

`profile_table` is pure: it reads a Polars frame and returns a frozen
`TableProfile` (JSON round-trip via `to_dict`/`from_dict`). Bad input raises a
typed `InputError` whose message says what to do next.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import numpy as np
import polars as pl

Task = Literal["auto", "classification", "regression"]
Kind = Literal["numeric", "categorical", "boolean", "datetime", "text", "id", "constant"]

QUANTILES = (
    ("p0", 0.0),
    ("p1", 0.01),
    ("p5", 0.05),
    ("p25", 0.25),
    ("p50", 0.5),
    ("p75", 0.75),
    ("p95", 0.95),
    ("p99", 0.99),
    ("p100", 1.0),
)
POSITIVE_LABELS = (
    "yes",
    "y",
    "1",
    "true",
    "t",
    "bad",
    "default",
    "defaulted",
    "positive",
    "pos",
    "malignant",
    "churn",
    "fraud",
    "event",
    "purchase",
    "m",
)
ID_NAME = re.compile(r"(^|_|\b)(id|uuid|guid|key|rownames?|index|row_?num(ber)?)($|_|\b)", re.I)
# 'customerId', 'userid': an id suffix without a separator. Also 'paid', 'valid', 'fluid', so it
# marks an id in a float column only when the name is camelCase or the values are whole (`_id_like`).
ID_SUFFIX = re.compile(r"id$", re.I)
CAMEL_ID = re.compile(r"[a-z0-9]I[Dd]$")
DUPLICATED = re.compile(r"(.+)_duplicated_\d+")
HIGH_NULL_RATE, SKEW_LIMIT, LEAK_LIMIT, SAMPLE_ROWS = 0.3, 2.0, 0.98, 5000
MIN_ROWS, MIN_CLASS_ROWS = 50, 10
# Three or more classes are evaluated as multiclass (softmax LightGBM, log loss); every fit
# costs about one model per class, and each class needs MIN_CLASS_ROWS rows.
MAX_CLASSES = 20
"""What the evaluation needs (`engine/folds.py`): 20% guard rows in two halves and K-fold (K <= n // 4) over
the rest. 50 rows give 5 folds of 8 validation rows and guard halves of 5; 10 rows of the rarer class put at
least one in every validation fold and guard half, so that each split can score AUC. Fewer rows make
LightGBM fail on folds too small to split (`Forced splits file includes feature index`, `num_data > 0`)."""


class InputError(ValueError):
    """Bad input from the user; the message says what to do next."""


class UnknownTargetColumn(InputError):
    def __init__(self, target: str, columns: list[str]) -> None:
        close = difflib.get_close_matches(target, columns, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        shown = ", ".join(columns[:12]) + (", …" if len(columns) > 12 else "")
        super().__init__(f"target {target!r} is not a column (columns: {shown}).{hint}")


class ConstantTarget(InputError):
    def __init__(self, target: str, value: str) -> None:
        super().__init__(
            f"target {target!r} has a single value ({value!r}); there is nothing "
            "to predict — pick another target or add rows with other outcomes."
        )


class TargetHasNulls(InputError):
    def __init__(self, target: str, n_null: int, n_rows: int) -> None:
        super().__init__(
            f"target {target!r} is null in {n_null} of {n_rows} rows; drop or label those rows before profiling."
        )


class EmptyTable(InputError):
    def __init__(self, detail: str) -> None:
        super().__init__(
            f"the table is empty ({detail}); upload a table with rows and at "
            "least one feature column besides the target."
        )


class NonNumericRegressionTarget(InputError):
    def __init__(self, target: str, dtype: str) -> None:
        super().__init__(
            f"target {target!r} has type {dtype}, which cannot be regressed; use "
            "task='classification' or convert the target to numbers."
        )


class TooManyClasses(InputError):
    def __init__(self, target: str, n_classes: int) -> None:
        super().__init__(
            f"target {target!r} has {n_classes} classes; AFEP classifies up to {MAX_CLASSES} — merge rare classes "
            "into one, or use task regression (--task regression) if the values are ordered quantities"
        )


class UnknownKeptColumn(InputError):
    def __init__(self, missing: list[str], columns: list[str]) -> None:
        shown = ", ".join(columns[:12]) + (", …" if len(columns) > 12 else "")
        super().__init__(
            f"{', '.join(repr(c) for c in missing[:5])}, to keep (--keep, keep_columns), is not a column of the "
            f"table (columns: {shown}); name columns of this table"
        )


class NothingToLearnFrom(InputError):
    def __init__(self, excluded: list[Flag]) -> None:
        reasons = "; ".join(f"{f.column} ({f.reason})" for f in excluded[:5]) + ("; …" if len(excluded) > 5 else "")
        leaks = any(f.reason.startswith("leakage suspect") for f in excluded)
        hint = (
            "if a leakage suspect is a legitimate input, keep it with --keep COLUMN (API: keep_columns)"
            if leaks
            else "add columns that describe the rows (ids and constant columns are never features)"
        )
        super().__init__(
            f"every column besides the target was excluded: {reasons}. Nothing is left to build features from; {hint}"
        )


class TooFewRows(InputError):
    def __init__(self, n_rows: int, detail: str, classification: bool, multiclass: bool = False) -> None:
        need = f"at least {MIN_ROWS}" + (f" (and {MIN_CLASS_ROWS} of each class)" if classification else "")
        fix = "add rows, or merge the rare class into another" if multiclass else "add rows"
        super().__init__(f"the table has {n_rows} rows{detail}; AFEP needs {need} to test features — {fix}")


@dataclass(frozen=True)
class ColumnProfile:
    name: str
    dtype: str
    kind: Kind
    n_unique: int
    null_rate: float
    samples: tuple[str, ...]
    quantiles: tuple[tuple[str, float], ...] = ()
    mean: float | None = None
    std: float | None = None
    skew: float | None = None
    top_categories: tuple[tuple[str, int], ...] = ()
    warnings: tuple[str, ...] = ()
    target_score: float = 0.0  # single-column predictive power in [0, 1] (cross-validated)

    def quantile(self, label: str) -> float | None:
        return dict(self.quantiles).get(label)

    @property
    def positive(self) -> bool:
        low = self.quantile("p0")
        return low is not None and low > 0

    @property
    def non_negative(self) -> bool:
        low = self.quantile("p0")
        return low is not None and low >= 0


@dataclass(frozen=True)
class Flag:
    column: str
    reason: str


@dataclass(frozen=True)
class TableProfile:
    n_rows: int
    n_cols: int
    target: str
    task: Literal["classification", "regression"]
    metric: str
    positive_class: str | None
    classes: tuple[str, ...]
    columns: tuple[ColumnProfile, ...]
    id_columns: tuple[str, ...]
    datetime_columns: tuple[str, ...]
    leakage: tuple[Flag, ...]
    excluded: tuple[Flag, ...]
    warnings: tuple[str, ...]

    def column(self, name: str) -> ColumnProfile:
        return next(c for c in self.columns if c.name == name)

    @property
    def excluded_columns(self) -> tuple[str, ...]:
        return tuple(f.column for f in self.excluded)

    @property
    def features(self) -> tuple[ColumnProfile, ...]:
        """Usable feature columns: everything but the target and excluded columns."""
        skip = {*self.excluded_columns, self.target}
        return tuple(c for c in self.columns if c.name not in skip)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TableProfile:
        cols = tuple(_column_from_dict(c) for c in data["columns"])
        flags = {k: tuple(Flag(**f) for f in data[k]) for k in ("leakage", "excluded")}
        plain = {f.name: data[f.name] for f in fields(cls) if f.name not in {"columns", *flags}}
        for key in ("classes", "id_columns", "datetime_columns", "warnings"):
            plain[key] = tuple(plain[key])
        return cls(columns=cols, **flags, **plain)


def _column_from_dict(data: dict[str, Any]) -> ColumnProfile:
    d = dict(data)
    d["samples"], d["warnings"] = tuple(d["samples"]), tuple(d["warnings"])
    d["quantiles"] = tuple((str(k), float(v)) for k, v in d["quantiles"])
    d["top_categories"] = tuple((str(k), int(v)) for k, v in d["top_categories"])
    return ColumnProfile(**d)


def profile_table(df: pl.DataFrame, target: str, task: Task = "auto", keep: Collection[str] = ()) -> TableProfile:
    """Profile every column, resolve the task and flag ids, leaks and constants.

    `keep`: columns the user vouches for. A kept column is never excluded as a leakage
    suspect (the suspicion stays in `leakage` and in the warnings); ids and constants are
    excluded all the same.
    """
    if df.height == 0 or df.width == 0:
        raise EmptyTable(f"{df.height} rows, {df.width} columns")
    if target not in df.columns:
        raise UnknownTargetColumn(target, df.columns)
    if df.width < 2:
        raise EmptyTable("only the target column")
    y_raw = df[target]
    if (n_null := y_raw.null_count()) > 0:
        raise TargetHasNulls(target, n_null, df.height)
    if y_raw.n_unique() < 2:
        raise ConstantTarget(target, str(y_raw[0]))
    if missing := [c for c in keep if c not in df.columns]:
        raise UnknownKeptColumn(missing, df.columns)
    resolved = _resolve_task(y_raw, task)
    classes: tuple[str, ...] = ()
    positive: str | None = None
    if resolved == "classification":
        counts = y_raw.cast(pl.String).value_counts(sort=True)
        classes = tuple(sorted(str(v) for v in counts[target]))
        if len(classes) > MAX_CLASSES:
            raise TooManyClasses(target, len(classes))
        positive = _positive_class(counts) if len(classes) == 2 else None
        metric = "roc_auc" if len(classes) == 2 else "log_loss"
    else:
        metric = "rmse"
    rows = _sample_index(df.height)
    y = _encode_target(y_raw, resolved, positive)[rows]
    profiles: list[ColumnProfile] = []
    leakage: list[Flag] = []
    for name in df.columns:
        col = df[name]
        prof = _profile_column(col, is_target=name == target)
        if name != target and prof.kind not in ("constant", "id"):
            score, leak_reason = _target_check(col, y_raw, y, rows, resolved, len(classes), target)
            prof = _with(prof, target_score=score)
            if leak_reason:
                leakage.append(Flag(name, leak_reason))
        profiles.append(prof)
    excluded = [
        Flag(p.name, f"identifier ({', '.join(p.warnings) or 'unique per row'})")
        for p in profiles
        if p.kind == "id" and p.name != target
    ]
    excluded += [Flag(p.name, "constant column") for p in profiles if p.kind == "constant" and p.name != target]
    excluded += [Flag(f.column, f"leakage suspect: {f.reason}") for f in leakage if f.column not in keep]
    warnings = [f"{p.name}: {w}" for p in profiles for w in p.warnings if p.name != target and p.kind not in ("id",)]
    warnings += [f"{f.column}: kept on request, a leakage suspect ({f.reason})" for f in leakage if f.column in keep]
    warnings += [f"{f.column}: left out although kept on request: {f.reason}" for f in excluded if f.column in keep]
    for name in df.columns:  # a CSV header naming a column twice: Polars reads the second as <name>_duplicated_<n>
        if (twin := DUPLICATED.fullmatch(name)) and twin.group(1) in df.columns:
            warnings.append(f"{name}: the file names a second column {twin.group(1)!r}; it is read as {name!r}")
    if len(classes) > 2 and y_raw.dtype.is_numeric():
        warnings.append(
            f"{target}: {len(classes)} numeric classes, evaluated as multiclass (log loss); "
            "if they are ordered quantities, --task regression keeps their order"
        )
    if resolved == "classification" and len(classes) == 2 and positive is not None:
        rate = float((y_raw.cast(pl.String) == positive).mean() or 0.0)
        if rate < 0.1:
            warnings.append(
                f"{target}: imbalanced target, positive class {positive!r} is "
                f"{rate:.1%} of rows (prefer roc_auc / pr_auc over accuracy)"
            )
    return TableProfile(
        n_rows=df.height,
        n_cols=df.width,
        target=target,
        task=resolved,
        metric=metric,
        positive_class=positive,
        classes=classes,
        columns=tuple(profiles),
        id_columns=tuple(p.name for p in profiles if p.kind == "id" and p.name != target),
        datetime_columns=tuple(p.name for p in profiles if p.kind == "datetime"),
        leakage=tuple(leakage),
        excluded=tuple(excluded),
        warnings=tuple(warnings),
    )


def _with(prof: ColumnProfile, **changes: Any) -> ColumnProfile:
    return ColumnProfile(**{**asdict(prof), **changes})


def _resolve_task(y: pl.Series, task: Task) -> Literal["classification", "regression"]:
    numeric = y.dtype.is_numeric()
    if task == "regression":
        if not numeric:
            raise NonNumericRegressionTarget(y.name, str(y.dtype))
        return "regression"
    if task == "classification" or not numeric:
        return "classification"
    n_unique = y.n_unique()
    if n_unique == 2:
        return "classification"
    if y.dtype.is_integer() and n_unique <= 20:
        lo, hi = int(y.min()), int(y.max())  # type: ignore[arg-type]
        if lo in (0, 1) and hi - lo + 1 == n_unique:  # contiguous codes 0..k or 1..k: labels
            return "classification"
    return "regression"


def _positive_class(counts: pl.DataFrame) -> str:
    values = [str(v) for v in counts[counts.columns[0]]]
    lowered = {v.strip().lower(): v for v in values}
    for label in POSITIVE_LABELS:
        if label in lowered:
            return lowered[label]
    return values[-1]  # value_counts(sort=True): last is the minority class


def _encode_target(y: pl.Series, task: str, positive: str | None) -> np.ndarray:
    if task == "regression":
        return y.cast(pl.Float64).to_numpy()
    as_str = y.cast(pl.String)
    if positive is not None:
        return (as_str == positive).cast(pl.Float64).to_numpy()
    return as_str.rank("dense").cast(pl.Float64).to_numpy() - 1.0


def _sample_index(n_rows: int) -> np.ndarray:
    if n_rows <= SAMPLE_ROWS:
        return np.arange(n_rows)
    return np.sort(np.random.default_rng(0).choice(n_rows, SAMPLE_ROWS, replace=False))


def _profile_column(col: pl.Series, *, is_target: bool) -> ColumnProfile:
    n = col.len()
    non_null = col.drop_nulls()
    if col.dtype.is_float():
        non_null = non_null.filter(non_null.is_finite())
    n_unique = non_null.n_unique()
    null_rate = 1.0 - non_null.len() / n if n else 0.0
    samples = tuple(str(v) for v in non_null.unique(maintain_order=True).head(5).to_list())
    warns: list[str] = []
    if null_rate > HIGH_NULL_RATE:
        warns.append(f"high null rate ({null_rate:.0%})")
    if col.dtype.is_float() and (n_inf := int(col.is_infinite().sum())):
        warns.append(f"infinite values in {n_inf} rows (counted as missing here; LightGBM sees them as extremes)")
    base = {
        "name": col.name,
        "dtype": str(col.dtype),
        "n_unique": n_unique,
        "null_rate": round(null_rate, 6),
        "samples": samples,
    }
    if n_unique <= 1:
        return ColumnProfile(kind="constant", warnings=(*warns, "constant"), **base)
    kind = _kind(col, non_null, n_unique, n, is_target)
    if kind == "id":
        warns.append("unique per row" if n_unique == n else "identifier-like name")
    extra: dict[str, Any] = {}
    if kind in ("numeric", "boolean") and col.dtype.is_numeric():
        extra, numeric_warns = _numeric_stats(non_null.cast(pl.Float64))
        warns += numeric_warns if kind == "numeric" else []
    if kind in ("categorical", "boolean", "text", "id") or not col.dtype.is_numeric():
        counts = non_null.cast(pl.String).value_counts(sort=True).head(10)
        top = tuple((str(v), int(c)) for v, c in counts.iter_rows())
        extra["top_categories"] = top
        if kind == "categorical" and n_unique > max(50, 0.5 * non_null.len()):
            warns.append(f"high cardinality ({n_unique} levels)")
        if kind == "categorical" and top and top[0][1] / max(non_null.len(), 1) >= 0.95:
            warns.append(f"near-constant ({top[0][0]!r} in {top[0][1] / non_null.len():.0%})")
        if col.dtype == pl.String and kind in ("categorical", "text"):
            as_num = non_null.cast(pl.Float64, strict=False).is_not_null().mean() or 0.0
            if 0.05 < as_num < 0.95:
                warns.append(f"mixed types ({as_num:.0%} of values are numbers)")
    return ColumnProfile(kind=kind, warnings=tuple(warns), **base, **extra)


def _kind(col: pl.Series, non_null: pl.Series, n_unique: int, n: int, is_target: bool) -> Kind:
    dtype = col.dtype
    if dtype == pl.Boolean or n_unique == 2:
        return "boolean"
    if dtype.is_temporal():
        return "datetime"
    unique_per_row = n_unique == n and n > 1
    if (
        not is_target
        and (ID_NAME.search(col.name) or (ID_SUFFIX.search(col.name) and _id_like(col, non_null)))
        and (unique_per_row or not dtype.is_float())
        and (unique_per_row or n_unique > 0.9 * n)
    ):
        return "id"
    if dtype.is_numeric():
        if not is_target and dtype.is_integer() and unique_per_row:
            diffs = non_null.diff().drop_nulls()
            if diffs.len() and (diffs == 1).all() and int(non_null[0]) in (0, 1):
                return "id"  # 0..n-1 or 1..n in row order: a row counter
        return "numeric"
    if dtype in (pl.String, pl.Categorical) or isinstance(dtype, pl.Enum):
        text = non_null.cast(pl.String)
        probe = text.head(200)
        if _parses_as_dates(probe) and (probe.str.len_chars().mean() or 0) >= 6:
            return "datetime"
        if unique_per_row and not is_target:
            spaces = probe.str.count_matches(" ").mean() or 0.0
            return "text" if spaces >= 3 else "id"
        if (probe.str.count_matches(" ").mean() or 0.0) >= 5:
            return "text"
        return "categorical"
    return "categorical"


def _id_like(col: pl.Series, non_null: pl.Series) -> bool:
    """For a name ending in 'id' without a separator: not a float of fractions ('amount_paid', 'valid').

    Integers and text qualify, and so do floats in camelCase ('CustomerID') or holding only
    whole numbers (an integer id that pandas stored as float because of a missing value)."""
    if not col.dtype.is_float():
        return True
    if CAMEL_ID.search(col.name):
        return True
    return bool(non_null.len()) and bool((non_null == non_null.floor()).all())


def _parses_as_dates(text: pl.Series) -> bool:
    if not text.str.contains(r"\d{1,4}[-/.]\d{1,2}").mean():
        return False
    try:
        parsed = text.str.to_datetime(strict=False).is_not_null().mean() or 0.0
    except pl.exceptions.PolarsError:
        return False
    return float(parsed) >= 0.9


def _numeric_stats(x: pl.Series) -> tuple[dict[str, Any], list[str]]:
    values = x.to_numpy()
    qs = np.quantile(values, [q for _, q in QUANTILES])
    quantiles = tuple((label, float(v)) for (label, _), v in zip(QUANTILES, qs, strict=True))
    mean, std = float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0
    skew = float(((values - mean) ** 3).mean() / std**3) if std > 0 else 0.0
    q = dict(quantiles)
    warns: list[str] = []
    if abs(skew) > SKEW_LIMIT:
        warns.append(f"skewed (skew={skew:.1f})")
    iqr = q["p75"] - q["p25"]
    if iqr > 0:
        outside = float(((values < q["p25"] - 3 * iqr) | (values > q["p75"] + 3 * iqr)).mean())
        if outside > 0.005:
            warns.append(f"outliers ({outside:.1%} beyond 3×IQR)")
    top = q["p100"]
    if top >= 9999 and re.fullmatch(r"9{4,}(\.0+)?", f"{top:.0f}") and top > 10 * q["p99"]:
        warns.append(f"sentinel value {top:.0f} looks like a missing-value code")
    share = float(np.unique(values, return_counts=True)[1].max() / len(values))
    if share >= 0.95:
        warns.append(f"near-constant (one value in {share:.0%} of rows)")
    return {"quantiles": quantiles, "mean": mean, "std": std, "skew": skew}, warns


def _target_check(
    col: pl.Series, y_full: pl.Series, y: np.ndarray, rows: np.ndarray, task: str, n_classes: int, target: str
) -> tuple[float, str | None]:
    """Cross-validated single-column score in [0, 1] and a leakage reason when it is near 1."""
    name = col.name
    if _same_values(col, y_full):
        return 1.0, f"exact copy of the target {target!r}"
    if len(target) >= 3 and target.lower() in name.lower():
        reason = f"name contains the target's name {target!r}"
    else:
        reason = None
    x = _encode_feature(col, rows)
    ok = np.isfinite(x)  # NaN and ±inf: not values a tree splits on
    if ok.sum() < 20:
        return 0.0, reason
    if task == "classification" and n_classes > 2:
        aucs = [_auc(_oof_predictions(x[ok], (y[ok] == c) * 1.0), (y[ok] == c) * 1.0) for c in range(n_classes)]
        score = float(np.mean([2 * abs(a - 0.5) for a in aucs]))
        text = f"mean one-vs-rest AUC={0.5 + score / 2:.3f}"
    else:
        score, text = _score(_oof_predictions(x[ok], y[ok]), y[ok], task)
    if score >= LEAK_LIMIT and reason is None:
        reason = f"alone predicts the target ({text}, cross-validated)"
    return round(score, 4), reason


def _same_values(col: pl.Series, y: pl.Series) -> bool:
    if col.dtype.is_numeric() and y.dtype.is_numeric():
        same = (col.cast(pl.Float64) == y.cast(pl.Float64)).mean()
    else:
        same = (col.cast(pl.String) == y.cast(pl.String)).mean()
    return float(same or 0.0) >= 0.99


def _encode_feature(col: pl.Series, rows: np.ndarray) -> np.ndarray:
    part = col.gather(rows)
    if part.dtype.is_numeric() or part.dtype == pl.Boolean:
        return part.cast(pl.Float64).fill_nan(None).to_numpy().astype(float)
    if part.dtype.is_temporal():
        return part.to_physical().cast(pl.Float64).to_numpy().astype(float)
    codes = part.cast(pl.String).rank("dense").cast(pl.Float64)
    return codes.to_numpy().astype(float)


def _oof_predictions(x: np.ndarray, y: np.ndarray, folds: int = 3) -> np.ndarray:
    """Out-of-fold predictions of y from x alone by a shallow tree (sorted-bin means)."""
    fold = np.arange(len(x)) % folds
    pred = np.empty(len(x))
    for k in range(folds):
        train, test = fold != k, fold == k
        edges = np.unique(np.quantile(x[train], np.linspace(0, 1, 33)[1:-1]))
        bins_train = np.searchsorted(edges, x[train], side="right")
        sums = np.bincount(bins_train, weights=y[train], minlength=len(edges) + 1)
        counts = np.bincount(bins_train, minlength=len(edges) + 1)
        prior = y[train].mean()
        means = (sums + 2 * prior) / (counts + 2)
        pred[test] = means[np.searchsorted(edges, x[test], side="right")]
    return pred


def _score(pred: np.ndarray, y: np.ndarray, task: str) -> tuple[float, str]:
    if task == "regression":
        ss = float(((y - y.mean()) ** 2).sum())
        r2 = 1 - float(((y - pred) ** 2).sum()) / ss if ss > 0 else 0.0
        return max(r2, 0.0), f"R²={r2:.3f}"
    auc = _auc(pred, y)
    return 2 * abs(auc - 0.5), f"AUC={max(auc, 1 - auc):.3f}"


def _auc(score: np.ndarray, y: np.ndarray) -> float:
    pos = y == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return 0.5
    ranks = pl.Series(score).rank("average").to_numpy()
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def require_features(profile: TableProfile) -> None:
    """NothingToLearnFrom when every column but the target is excluded (ids, constants, leakage suspects)."""
    if not profile.features:
        raise NothingToLearnFrom(list(profile.excluded))


def require_rows(df: pl.DataFrame, profile: TableProfile) -> None:
    """Refuse, in one line, a table too small for AFEP's evaluation (`MIN_ROWS`, `MIN_CLASS_ROWS` per class)."""
    classification = profile.task == "classification"
    if df.height < MIN_ROWS:
        raise TooFewRows(df.height, "", classification)
    if classification:
        counts = df[profile.target].cast(pl.String).value_counts(sort=True)
        label, fewest = str(counts[profile.target][-1]), int(counts["count"][-1])
        if fewest < MIN_CLASS_ROWS:
            detail = f" but only {fewest} with {profile.target}={label!r}"
            raise TooFewRows(df.height, detail, classification, multiclass=len(profile.classes) > 2)
