"""Schema agent: reads the table, profiles it, freezes a snapshot, flags leakage."""

from __future__ import annotations

import json
from typing import Any

import polars as pl

from commands.store import EventStore
from commands.unit_of_work import Progress, Trace, load_job
from domain.envelope import Envelope
from domain.job import FailJob, JobRequested, JobRetried, RecordSchemaAnalysis
from processors.featurestore.values import ValuesProblem, checked_key
from processors.profiling import InputError, profile_table, require_features, require_rows
from processors.sources import SourceError, SourceUnavailable, check_source, load_table, redact, snapshot
from processors.sources.errors import UnreadableFile
from processors.workbench import Workbench

NAME = "schema"
SUBSCRIBES = (JobRequested, JobRetried)


def react(envelope: Envelope, store: EventStore, bench: Workbench) -> list[Any]:
    job_id = envelope.event.job_id
    job = load_job(store, job_id)
    if job is None or job.terminal or job.schema is not None:
        return []
    request = job.request
    where = f"{request.source}" + (f" table {request.table}" if request.table else "")
    out: list[Any] = [Trace(job_id, NAME, "tool_call", f"load_table({where})", {"source": request.source})]
    try:
        df = _load(bench, request.source, request.table, envelope.tenant_id)
        profile = profile_table(df, request.target, request.task, request.keep_columns)  # type: ignore[arg-type]
        require_rows(df, profile)
        require_features(profile)
        key_problem = _key_problem(request.entity, df, job_id)
    except (InputError, ValuesProblem) as error:
        return [
            *out,
            Trace(job_id, NAME, "decision", f"cannot analyse the input: {error}"),
            FailJob(job_id, str(error), "schema"),
        ]
    path, digest = snapshot(df, bench.datasets_dir)
    out.append(
        Trace(
            job_id,
            NAME,
            "tool_result",
            f"{profile.n_rows} rows x {profile.n_cols} columns; task {profile.task}, metric {profile.metric}",
            {"snapshot": str(path), "sha256": digest},
        )
    )
    for flag in profile.leakage:
        out.append(Trace(job_id, NAME, "thought", f"leakage suspect {flag.column!r}: {flag.reason}"))
    for flag in profile.excluded:
        out.append(Trace(job_id, NAME, "decision", f"exclude {flag.column!r}: {flag.reason}"))
    for warning in profile.warnings[:20]:
        out.append(Trace(job_id, NAME, "thought", warning))
    profile_json = json.dumps(profile.to_dict(), default=str)
    warnings = tuple(profile.warnings)
    if key_problem:
        out.append(Trace(job_id, NAME, "thought", f"features of this job cannot be served per key: {key_problem}"))
        warnings += (f"--entity {request.entity}: {key_problem}",)
    if bench.llm is not None:  # with a model: the table's semantics, by a tool-use loop over the snapshot
        from processors.llm.steps import schema_semantics

        traces, semantics = schema_semantics(bench.llm, store, job, NAME, profile, path, df)
        out += traces
        if semantics is not None:
            profile_json = json.dumps({**profile.to_dict(), "semantics": semantics}, default=str)
            warnings += tuple(
                f"leakage suspect {s['column']!r} (model): {s['reason']}" for s in semantics["leakage_suspects"]
            )
    out.append(Progress(job_id, NAME, "schema", 1, 1, "schema analysed"))
    out.append(
        RecordSchemaAnalysis(
            job_id=job_id,
            attempt=job.attempt,
            dataset_path=str(path),
            dataset_sha256=digest,
            n_rows=profile.n_rows,
            n_cols=profile.n_cols,
            task=profile.task,
            metric=profile.metric,
            positive_class=profile.positive_class,
            profile_json=profile_json,
            excluded_columns=profile.excluded_columns,
            warnings=warnings,
        )
    )
    return out


def _load(bench: Workbench, source: str, table: str | None, tenant: str) -> pl.DataFrame:
    """The job's table, read under the workbench's policy.

    The CLI's local policy keeps the detailed error; under the API's policy a failure
    names the source as the tenant gave it (`upload://NAME`, the redacted URI), never
    the server path it resolved to.
    """
    policy = bench.source_policy
    resolved = bench.resolve_source(source, tenant)
    if policy.unrestricted:
        return load_table(resolved, table, policy=policy, tenant=tenant)
    shown = redact(source)
    try:
        location = check_source(resolved, table, policy=policy, tenant=tenant)
    except SourceUnavailable:
        raise SourceUnavailable(shown) from None
    except SourceError as error:
        raise _as_given(error, resolved, shown) from None
    try:
        return load_table(resolved, table, policy=policy, tenant=tenant)
    except SourceUnavailable:  # admitted, so the file exists: it cannot be parsed
        raise (UnreadableFile(shown) if location.kind in ("csv", "parquet") else SourceUnavailable(shown)) from None
    except SourceError as error:
        raise _as_given(error, resolved, shown) from None


def _as_given(error: SourceError, resolved: str, shown: str) -> SourceError:
    """`error` with the resolved source (a server path) replaced by the source as the tenant gave it."""
    return SourceError(str(error).replace(redact(resolved), shown).replace(resolved, shown))


def _key_problem(entity: str | None, df: pl.DataFrame, job_id: str) -> str | None:
    """Why a declared --entity cannot key the job's rows in the feature store, or None.

    Not a column of the table: ValuesProblem, the job fails at once (a typo). Repeated, empty or
    float keys: only serving is affected, so the job goes on and its warnings say it."""
    if entity is None:
        return None
    if entity not in df.columns:
        checked_key(entity, df, job_id)  # raises, with the table's columns
    try:
        checked_key(entity, df, job_id)
    except ValuesProblem as problem:
        return str(problem)
    return None
