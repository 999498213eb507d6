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


def apply_features(job_dir: Path, data: pl.DataFrame, sandbox: Any) -> pl.DataFrame:
    features = read_features(job_dir)
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

    Numbers written as text are read as numbers; text in a numeric column, or numbers in a
    column of text categories, would otherwise turn silently into nulls or into categories
    that match nothing the features learned.
    """
    for column in columns:
        if column not in reference.columns:
            continue
        want, have = reference.schema[column], data.schema[column]
        if want == have or (want.is_numeric() and have.is_numeric()):
            continue
        values = data[column]
        if want.is_numeric() or want == pl.Boolean or want.is_temporal():
            text = values.cast(pl.String).str.strip_chars()
            cast = text.cast(want, strict=False) if not want.is_temporal() else text.str.to_datetime(strict=False)
            bad = values.is_not_null() & cast.is_null()
            if bad.any():
                kind = "numbers" if want.is_numeric() else str(want).lower()
                _raise_bad(column, values, bad, f"text where the job's data had {kind}")
            data = data.with_columns(cast.cast(want).alias(column))
        elif want in (pl.String, pl.Categorical) or isinstance(want, pl.Enum):
            learned = reference[column].drop_nulls().cast(pl.String)
            if have.is_numeric() and learned.len() and learned.cast(pl.Float64, strict=False).null_count():
                example = learned.head(1).item()
                raise ApplyError(
                    f"column {column!r} holds numbers where the job's data had text (such as {example!r}), so no "
                    "value would match what the features learned; give it as text, coded as in the job's data"
                )
            data = data.with_columns(values.cast(pl.String).alias(column))
    return data


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
