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
    return list(json.loads(path.read_text()))


def apply_features(job_dir: Path, data: pl.DataFrame, sandbox: Any) -> pl.DataFrame:
    features = read_features(job_dir)
    needed = sorted({c for f in features for c in f["source_columns"]})
    missing = [c for c in needed if c not in data.columns]
    if missing:
        raise ApplyError(f"the data lacks columns the features need: {', '.join(missing)}")
    reference = pl.read_parquet(job_dir / REFERENCE_FILE) if (job_dir / REFERENCE_FILE).exists() else None
    out = data
    for feature in features:
        values = compute_feature(feature, data, reference, sandbox)
        out = out.with_columns(pl.Series(feature["name"], values, dtype=pl.Float64))
    return out


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
