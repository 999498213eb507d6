"""The values a view serves: each approved feature computed over its job's dataset snapshot,
keyed by the job's entity column, exactly as `afep apply` computes them (the feature's code
in the sandbox; fitted features fit on the snapshot, the job's reference rows)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl

from domain.feature import Feature
from processors.apply import compute_feature
from processors.export import feature_record
from processors.featurestore.catalog import OwnedJob
from processors.featurestore.naming import digest
from processors.featurestore.plan import Candidate, KeyColumn, KeyType
from processors.workbench import Workbench

TIMESTAMP = "event_timestamp"


class ValuesProblem(Exception):
    """Why a feature's values cannot be served (the message says what to do)."""


def snapshot(bench: Workbench, owner: OwnedJob) -> pl.DataFrame:
    # imported here: processors.agents imports the schema agent, which imports this module (checked_key)
    from processors.agents.dataset import snapshot_path

    schema = owner.job.schema
    if schema is None:
        raise ValuesProblem(f"job {owner.job.job_id} never analysed its table; it has no dataset to serve from")
    try:
        return bench.frame(snapshot_path(schema.dataset_path, bench))
    except (OSError, ValueError) as error:  # SourceError is a ValueError
        raise ValuesProblem(
            f"the dataset snapshot of job {owner.job.job_id} cannot be read ({type(error).__name__}); "
            "rerun the job to take a new one"
        ) from None


def key_column(owner: OwnedJob, frame: pl.DataFrame) -> KeyColumn:
    """The job's entity: its declared `--entity`, else the first id column its profile found."""
    job = owner.job
    declared = job.request.entity
    if declared is None:
        profile = json.loads(job.schema.profile_json) if job.schema else {}
        ids = [c for c in profile.get("id_columns", []) if c in frame.columns and c != job.request.target]
        if not ids:
            raise ValuesProblem(
                f"job {job.job_id} names no key column and its table has no id column, so its features "
                'cannot be served per key: rerun the job with --entity KEY (API field "entity"), '
                "KEY being the column that identifies a row"
            )
        declared = ids[0]
    return checked_key(declared, frame, job.job_id)


def checked_key(declared: str, frame: pl.DataFrame, job_id: str) -> KeyColumn:
    """`declared` as the key of the job's rows, or ValuesProblem: a column, integers or text, complete, unique.

    The schema agent checks a declared `--entity` with this when the job starts, so a wrong
    one fails the job then, not at the first approval."""
    if declared not in frame.columns:
        shown = ", ".join(frame.columns[:20])
        raise ValuesProblem(
            f"entity {declared!r} is not a column of job {job_id}'s table ({shown}): "
            "rerun the job with --entity naming its key column"
        )
    column = frame[declared]
    dtype = _key_type(column)
    if dtype is None:
        raise ValuesProblem(
            f"entity column {declared!r} holds {column.dtype} values; a key must be integers or text: "
            "rerun the job with --entity naming such a column"
        )
    if column.null_count():
        raise ValuesProblem(
            f"entity column {declared!r} has {column.null_count()} empty keys; every row needs one: "
            "rerun the job with --entity naming a complete key column"
        )
    duplicates = column.len() - column.n_unique()
    if duplicates:
        raise ValuesProblem(
            f"entity column {declared!r} has {duplicates} repeated keys; features are served one row per key: "
            "rerun the job with --entity naming a column that identifies a row"
        )
    return KeyColumn(declared, dtype)


def _key_type(column: pl.Series) -> KeyType | None:
    if column.dtype.is_integer():
        return "int64"
    if column.dtype in (pl.String, pl.Categorical) or isinstance(column.dtype, pl.Enum):
        return "string"
    if column.dtype.is_float():
        finite = column.drop_nulls()
        if finite.len() and bool((finite == finite.round(0)).all()) and bool(finite.abs().max() < 2**53):  # type: ignore[operator]
            return "int64"
    return None


def keys(frame: pl.DataFrame, key: KeyColumn) -> pl.Series:
    column = frame[key.name]
    return column.cast(pl.Int64) if key.dtype == "int64" else column.cast(pl.String)


def feature_values(
    bench: Workbench, owner: OwnedJob, feature: Feature, key: KeyColumn, field: str, cache: Path
) -> pl.DataFrame:
    """(key, field) for every row of the job's snapshot; computed once per code, dataset and key."""
    code = feature.code
    schema = owner.job.schema
    if code is None or schema is None:
        raise ValuesProblem(f"feature {feature.feature_id} has no code to compute")
    path = cache / f"{feature.feature_id}-{digest(code.code_hash, schema.dataset_sha256, key.name, length=12)}.parquet"
    if path.exists():
        return pl.read_parquet(path).rename({"value": field})
    frame = snapshot(bench, owner)
    record = feature_record(feature, 0)
    columns = list(record["source_columns"])
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValuesProblem(f"feature {feature.feature_id} needs columns its job's snapshot lacks: {missing}")
    rows = frame.select(columns)
    sandbox = bench.sandbox()
    try:  # on the sandbox's own long-lived thread: its worker dies with the thread that started it
        values = bench.sandbox_driver().submit(compute_feature, record, rows, rows, sandbox).result()
    except ValueError as error:  # ApplyError: the code failed on the snapshot
        raise ValuesProblem(str(error)) from None
    series = pl.Series("value", np.asarray(values, dtype=np.float64), dtype=pl.Float64).fill_nan(None)
    out = pl.DataFrame({key.name: keys(frame, key), "value": series})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    out.write_parquet(tmp)
    tmp.replace(path)
    return out.rename({"value": field})


def view_frame(key: KeyColumn, parts: Sequence[pl.DataFrame], at: datetime) -> pl.DataFrame:
    """The members' values side by side, one row per key, all stamped `at` (the materialization time:
    a value is served until it is older than the view's TTL, online.expired_age)."""
    frame: pl.DataFrame | None = None
    for part in parts:
        frame = part if frame is None else frame.join(part, on=key.name, how="full", coalesce=True)
    assert frame is not None, "a view has at least one member"
    stamp = pl.lit(at).cast(pl.Datetime("us", "UTC")).alias(TIMESTAMP)
    return (
        frame.sort(key.name)
        .with_columns(stamp)
        .select(key.name, TIMESTAMP, *[c for c in frame.columns if c != key.name])
    )


def candidate_values(
    bench: Workbench, members: Sequence[tuple[Candidate, OwnedJob, Feature]], cache: Path
) -> tuple[list[pl.DataFrame], dict[str, str]]:
    """Each member's values, and the problems of those that cannot be computed (feature id -> why)."""
    parts: list[pl.DataFrame] = []
    problems: dict[str, str] = {}
    for candidate, owner, feature in members:
        if candidate.key is None:  # e.g. its job's snapshot is gone: the reason is its problem
            problems[candidate.feature_id] = candidate.problem or f"feature {candidate.feature_id} has no key column"
            continue
        try:
            parts.append(feature_values(bench, owner, feature, candidate.key, candidate.field, cache))
        except ValuesProblem as error:
            problems[candidate.feature_id] = str(error)
    return parts, problems
