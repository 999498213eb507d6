"""A finished job as files: features.json, result.json and the reference rows `afep apply` fits on."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from commands.store import EventStore
from commands.unit_of_work import load_feature, load_job
from domain.feature import Feature
from domain.job import Job, job_stream
from processors.llm.usage import job_usage

REFERENCE_FILE = "reference.parquet"


@dataclass(frozen=True)
class JobCounts:
    proposed: int
    executed: int
    failed: int
    selected: int


def job_features(store: EventStore, job: Job) -> list[Feature]:
    return [f for f in (load_feature(store, fid) for fid in job.feature_ids) if f is not None]


def counts(features: list[Feature]) -> JobCounts:
    return JobCounts(
        proposed=len(features),
        executed=sum(1 for f in features if f.execution is not None and f.execution.ok),
        failed=sum(1 for f in features if f.execution is not None and not f.execution.ok),
        selected=sum(1 for f in features if f.status in ("selected", "approved")),
    )


def feature_record(feature: Feature, rank: int) -> dict[str, Any]:
    final = [e for e in feature.evaluations if e.lift is not None]
    last = final[-1] if final else None
    code = feature.code
    return {
        "feature_id": feature.feature_id,
        "name": feature.proposal.name,
        "description": feature.proposal.description,
        "rationale": feature.proposal.rationale,
        "code": code.code if code else None,
        "code_type": code.code_type if code else None,
        "code_hash": code.code_hash if code else None,
        "sql": code.sql if code else None,
        "fitted": code.fitted if code else False,
        "source_columns": list(feature.proposal.source_columns),
        "spec": json.loads(feature.proposal.spec_json),
        "lift": last.lift if last else None,
        "ci": [last.ci_low, last.ci_high] if last else None,
        "p_value": last.p_value if last else None,
        "importance_rank": (last.importance_rank if last and last.importance_rank is not None else rank),
        "selection_reason": feature.reason,
        "domain_sources": list(feature.proposal.domain_sources),
        "proposer": feature.proposal.proposer,
        "round": feature.proposal.round,
        "mlflow_run_id": feature.run.run_id if feature.run else None,
    }


def selected_records(job: Job, features: list[Feature]) -> list[dict[str, Any]]:
    """features.json: the job's selected features (of `features`, the job's), most important first."""
    by_id = {f.feature_id: f for f in features}
    selected = [by_id[fid] for fid in job.selected_ids if fid in by_id]
    records = [feature_record(f, rank) for rank, f in enumerate(selected, start=1)]
    records.sort(key=lambda r: (r["importance_rank"] is None, r["importance_rank"]))
    return records


def unselected_finalists(job: Job, features: list[Feature]) -> list[dict[str, Any]]:
    """The finalists a job did not select, closest call (lowest p) first: what a user reads
    when a job says "no feature helps", with the final test's numbers and why each stopped."""
    chosen = set(job.selected_ids)
    records = []
    for f in features:
        final = [e for e in f.evaluations if e.stage == "select"]
        if not final or f.feature_id in chosen:
            continue
        e = final[-1]
        records.append(
            {
                "feature_id": f.feature_id,
                "name": f.proposal.name,
                "description": f.proposal.description,
                "round": e.round,
                "lift": e.lift,
                "ci": [e.ci_low, e.ci_high],
                "p_value": e.p_value,
                "reason": e.reason,
            }
        )
    records.sort(key=lambda r: (r["p_value"] is None, r["p_value"], r["name"]))
    return records


def experiment_record(job: Job) -> dict[str, Any] | None:
    """Where the job is tracked (MLflow experiment and parent run), once the tracking agent has logged it."""
    if job.experiment is None:
        return None
    tracked = job.experiment
    return {"experiment_id": tracked.experiment_id, "run_id": tracked.run_id, "feature_runs": tracked.feature_runs}


TERMINAL = ("JobCompleted", "JobFailed", "JobCancelled")


def export_job(store: EventStore, job_id: str, out_dir: Path, *, wall_seconds: float | None = None) -> dict[str, Any]:
    job = load_job(store, job_id)
    if job is None:
        raise KeyError(job_id)
    features = job_features(store, job)
    records = selected_records(job, features)
    stream = store.read_stream(job_stream(job_id))
    completed = next((e for e in reversed(stream) if e.event_type == "JobCompleted"), None)
    n = counts(features)
    usage = job_usage(store, job_id)
    for record in records:
        if record["feature_id"] in usage.by_feature:
            record["llm_usage"] = usage.by_feature[record["feature_id"]].to_dict()
    wall = wall_seconds
    if wall is None and stream:
        # to the job's end, as `afep run` measures it: the tracking that follows is not the job's time
        ended = next((e for e in reversed(stream) if e.event_type in TERMINAL), stream[-1])
        wall = (ended.occurred_at - stream[0].occurred_at).total_seconds()
    result = {
        "job_id": job_id,
        "status": job.status,
        "task": job.schema.task if job.schema else job.request.task,
        # a binary target's AUC is for this class; a multiclass target's labels, in the model's order
        "positive_class": job.schema.positive_class if job.schema else None,
        "classes": classes_of(job),
        "metric": completed.event.metric if completed else None,
        "baseline_score": completed.event.baseline_score if completed else None,
        "final_score": completed.event.final_score if completed else None,
        "target": job.request.target,
        "source": job.request.source,
        "counts": {"proposed": n.proposed, "executed": n.executed, "failed": n.failed, "selected": n.selected},
        "finalists_not_selected": unselected_finalists(job, features),
        "wall_seconds": wall,
        "failure": job.failure,
        # the schema step's data warnings (skew, leakage suspects kept, an --entity with repeated keys, ...)
        "warnings": list(job.schema.warnings) if job.schema else [],
        "llm_usage": usage.to_dict(),
        "experiment": experiment_record(job),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "features.json").write_text(json.dumps(records, indent=2, default=str) + "\n")
    (out_dir / "result.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    if job.schema is not None and records:
        import polars as pl

        needed = sorted({c for r in records for c in r["source_columns"]})
        pl.read_parquet(job.schema.dataset_path, columns=needed).write_parquet(out_dir / REFERENCE_FILE)
    else:  # an earlier job's rows in the same folder would be taken for this job's
        (out_dir / REFERENCE_FILE).unlink(missing_ok=True)
    return result


def classes_of(job: Job) -> list[str]:
    """The target's classes as the schema step profiled them: empty for regression and binary targets."""
    if job.schema is None:
        return []
    classes = json.loads(job.schema.profile_json).get("classes", [])
    return [str(c) for c in classes] if len(classes) > 2 else []
