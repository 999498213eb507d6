"""`afep apply`: compute a finished job's selected features on new rows, exactly as evaluated.

Fitted features (frequencies, group statistics, bins) use the job's training
rows (`reference.parquet`) as their reference, as the final model did; the code
runs in the sandbox like during the job.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from processors.export import REFERENCE_FILE
from processors.profiling import InputError


class ApplyError(InputError):
    pass


def read_features(job_dir: Path) -> list[dict[str, Any]]:
    path = job_dir / "features.json"
    if not path.exists():
        raise ApplyError(f"{path} not found: give the --out directory of a finished `afep run`")
    try:
        records = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ApplyError(
            f"{path} is not valid JSON ({error}): write it again with `afep jobs resume ID --out DIR`"
        ) from None
    if not isinstance(records, list) or not all(isinstance(r, dict) and "code" in r for r in records):
        raise ApplyError(
            f"{path} is not a features.json of `afep run`: write it again with `afep jobs resume ID --out DIR`"
        )
    return records


def apply_features(
    job_dir: Path, data: pl.DataFrame, sandbox: Any, features: list[dict[str, Any]] | None = None
) -> pl.DataFrame:
    """`data` with the job's features added; `features`: `read_features(job_dir)`, when the caller has it."""
    features = read_features(job_dir) if features is None else features
    needed = sorted({c for f in features for c in f["source_columns"]})
    missing = [c for c in needed if c not in data.columns]
    if missing:
        raise ApplyError(f"the data lacks columns the features need: {', '.join(missing)}")
    reference = pl.read_parquet(job_dir / REFERENCE_FILE) if (job_dir / REFERENCE_FILE).exists() else None
    if reference is not None:
        data = conformed(data, reference, needed)
    out = data
    for feature in features:
        values = compute_feature(feature, data, reference, sandbox)
        out = out.with_columns(pl.Series(feature["name"], values, dtype=pl.Float64))
    return out


def conformed(data: pl.DataFrame, reference: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """`data` with each of `columns` in the type the job's rows had, or ApplyError saying which value is off.

    Numbers or dates written as text are read as such; text in a numeric column, or codes that
    match none of the categories the job's data had, would otherwise turn silently into nulls
    or into values no feature learned.
    """
    for column in columns:
        if column not in reference.columns:
            continue
        want, have = reference.schema[column], data.schema[column]
        if want == have or (want.is_numeric() and have.is_numeric()) or want == pl.Null:
            continue
        values = data[column]
        try:
            if want in (pl.String, pl.Categorical) or isinstance(want, pl.Enum):
                data = data.with_columns(_as_categories(column, values, reference[column]))
            elif want == pl.Boolean:
                data = data.with_columns(_as_booleans(column, values))
            else:
                text = values.cast(pl.String).str.strip_chars()
                cast = text.str.to_datetime(strict=False) if want.is_temporal() else text.cast(want, strict=False)
                bad = values.is_not_null() & cast.is_null()
                if bad.any():
                    kind = "numbers" if want.is_numeric() else f"{str(want).lower()} values"
                    _raise_bad(column, values, bad, f"text where the job's data had {kind}")
                data = data.with_columns(cast.cast(want).alias(column))
        except pl.exceptions.PolarsError as error:
            first = (str(error).splitlines() or [type(error).__name__])[0][:200]
            raise ApplyError(
                f"column {column!r} holds {have} values where the job's data had {want} ({first}); convert it"
            ) from None
    return data


def _as_categories(column: str, values: pl.Series, learned: pl.Series) -> pl.Series:
    """Codes given as numbers, as text; refused when none of them is a category the job's data had."""
    text = values.cast(pl.String)
    known = learned.drop_nulls().cast(pl.String)
    given = text.drop_nulls()
    if values.dtype.is_numeric() and given.len() and known.len() and not given.is_in(known.implode()).any():
        raise ApplyError(
            f"column {column!r} holds numbers that match none of the categories of the job's data (such as "
            f"{known.head(1).item()!r}); give it as text, coded as in the job's data"
        )
    return text.alias(column)


_TRUE, _FALSE = ("true", "t", "yes", "y", "1", "1.0"), ("false", "f", "no", "n", "0", "0.0")


def _as_booleans(column: str, values: pl.Series) -> pl.Series:
    text = values.cast(pl.String).str.strip_chars().str.to_lowercase()
    cast = pl.select(
        pl.when(text.is_in(_TRUE)).then(True).when(text.is_in(_FALSE)).then(False).otherwise(None)
    ).to_series()
    bad = values.is_not_null() & cast.is_null()
    if bad.any():
        _raise_bad(column, values, bad, "values that are not true or false where the job's data had booleans")
    return cast.alias(column)


def _raise_bad(column: str, values: pl.Series, bad: pl.Series, what: str) -> None:
    rows = bad.arg_true()
    first = int(rows[0])
    more = f" and {rows.len() - 1} more" if rows.len() > 1 else ""
    raise ApplyError(
        f"column {column!r} holds {what}: {str(values[first])[:60]!r} in row {first + 1}{more}; "
        "fix or drop those values and apply again"
    )


def compute_feature(
    feature: dict[str, Any], data: pl.DataFrame, reference: pl.DataFrame | None, sandbox: Any
) -> np.ndarray:
    """One feature (a `features.json` record) on `data`; fitted ones fit on `reference` only.

    The feature store materializes approved features with this same function."""
    columns = list(feature["source_columns"])
    rows = data.select(columns)
    if feature.get("fitted"):
        if reference is None:
            raise ApplyError(f"{REFERENCE_FILE} is missing: feature {feature['name']} needs the training rows")
        ref = reference.select(columns)
        stacked = pl.concat([ref, rows.cast(dict(ref.schema), strict=False)], how="vertical_relaxed")
        mask = np.zeros(stacked.height, dtype=bool)
        mask[: ref.height] = True
        result = sandbox.run(feature["code"], stacked.to_arrow(), [mask])
        if not result.ok or result.values is None:
            raise ApplyError(f"feature {feature['name']} failed on this data: {result.reason}")
        return np.asarray(result.values)[ref.height :, 0]
    result = sandbox.run(feature["code"], rows.to_arrow(), None)
    if not result.ok or result.values is None:
        raise ApplyError(f"feature {feature['name']} failed on this data: {result.reason}")
    return np.asarray(result.values)[:, 0]
