"""What a completed job becomes in the experiment tracker: plain run specs, no MLflow.

`plan_job` folds the job, its features and its evaluation traces into one
`JobPlan`: the experiment (one per tenant and project), the parent run of the
job and one child run per confirmed candidate. The tracker adapter
(`mlflow_tracker.py`) only writes these specs; everything here is
deterministic, so a redelivered JobCompleted logs the same values again.

A confirmed candidate is a feature whose evaluation reached the confirm stage:
its last `FeatureEvaluated` has stage `confirm` or `select`, i.e. it was among
the screening's top candidates, was refitted on the confirm splits and has a
paired test (lift, 95% CI, p-value). Candidates dropped at screening (stage
`screen`: near-duplicates, constants, below the top, out of time) have no such
numbers and get no child run. Selected features are confirmed candidates too;
only they have an importance rank.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from domain.activity import AgentTraced
from domain.feature import Feature, FeatureEvaluated
from domain.job import Job, JobCompleted
from processors.export import classes_of, counts
from processors.sources import public_location

CONFIRMED_STAGES = ("confirm", "select")
PREFIX = "afep"
MAX_PARAM = 6000  # MLflow's limit on a parameter value
KIND_TAG, JOB_TAG, FEATURE_TAG = "afep.kind", "afep.job_id", "afep.feature_id"
CHART_FILE = "feature_importance.png"
FEATURES_FILE = "features.json"
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True)
class Bar:
    """One confirmed candidate on the importance chart."""

    feature_id: str
    name: str
    lift: float
    ci_low: float
    ci_high: float
    importance_rank: int | None
    selected: bool


@dataclass(frozen=True)
class RunSpec:
    """One run: the tags that find it again, its name, params, metrics and text artifacts."""

    key: dict[str, str]
    name: str
    tags: dict[str, str]
    params: dict[str, str]
    metrics: dict[str, float]
    texts: dict[str, str] = field(default_factory=dict)
    highlight: str | None = None  # the feature the run's chart marks (None: the job's overview)


@dataclass(frozen=True)
class JobPlan:
    experiment: str
    experiment_tags: dict[str, str]
    folder: tuple[str, str]  # (tenant, project): where embedded artifacts go under the artifact root
    job: RunSpec
    features: tuple[tuple[str, RunSpec], ...]  # (feature id, child run), most important first
    bars: tuple[Bar, ...]
    metric: str


def experiment_name(tenant_id: str, project_id: str) -> str:
    """One experiment per tenant and project: tenants never share one, even on a shared server."""
    return f"{PREFIX}/{tenant_id}/{project_id}"


def confirmed_evaluation(feature: Feature) -> FeatureEvaluated | None:
    """The feature's last evaluation if it reached the confirm stage (lift, CI and p-value known)."""
    done = [e for e in feature.evaluations if e.stage in CONFIRMED_STAGES and e.lift is not None]
    return done[-1] if done else None


def job_step(traces: list[Any]) -> float:
    """The boosting step of the job's fits, from the evaluation agent's `evaluate_round(` tool_call traces.

    `traces` are the events of the evaluation agent's activity stream. The step is chosen
    once per job and every round uses it (`evaluation._job_step`), so the last call tells;
    LEARNING_RATE if there is none.
    """
    from processors.engine.scoring import LEARNING_RATE

    for t in reversed(traces):
        if isinstance(t, AgentTraced) and t.kind == "tool_call" and t.message.startswith("evaluate_round("):
            step = json.loads(t.data_json).get("learning_rate")
            if isinstance(step, (int, float)):
                return float(step)
    return LEARNING_RATE


def plan_job(
    job: Job,
    completed: JobCompleted,
    features: list[Feature],
    *,
    tenant_id: str,
    learning_rate: float,
) -> JobPlan:
    """The runs for a completed job (`features`: all of the job's features)."""
    request, schema = job.request, job.schema
    task = schema.task if schema is not None else request.task
    confirmed = [(f, e) for f in features if (e := confirmed_evaluation(f)) is not None]
    confirmed.sort(key=lambda fe: (fe[1].importance_rank is None, fe[1].importance_rank or 0, -(fe[1].lift or 0.0)))
    selected = set(job.selected_ids)
    bars = tuple(
        Bar(
            f.feature_id,
            f.proposal.name,
            _finite(e.lift),
            _finite(e.ci_low),
            _finite(e.ci_high),
            e.importance_rank,
            f.feature_id in selected,
        )
        for f, e in confirmed
    )
    n = counts(features)
    summary = _json(completed.summary_json)
    job_tags = {KIND_TAG: "job", JOB_TAG: job.job_id}
    parent = RunSpec(
        key=job_tags,
        name=f"job_{job.job_id}",
        tags={
            **job_tags,
            "afep.tenant_id": tenant_id,
            "afep.project_id": request.project_id,
            "afep.stop_reason": str(summary.get("stop_reason", "")),
        },
        params=_params(
            {
                "source": public_location(request.source),
                "table": request.table,
                "target": request.target,
                "entity": request.entity,
                "keep_columns": ",".join(request.keep_columns) or None,
                "task": task,
                "metric": completed.metric,
                "seed": request.seed,
                "budget_seconds": request.budget_seconds,
                "max_rounds": request.max_rounds,
                "max_candidates": request.max_candidates,
                "dataset_sha256": schema.dataset_sha256 if schema is not None else None,
                "n_rows": schema.n_rows if schema is not None else None,
                "n_cols": schema.n_cols if schema is not None else None,
            }
        ),
        metrics=_metrics(
            {
                "baseline_score": completed.baseline_score,
                "final_score": completed.final_score,
                "proposed": n.proposed,
                "executed": n.executed,
                "failed": n.failed,
                "selected": len(job.selected_ids),
                "confirmed": len(confirmed),
                "rounds": len(job.rounds_done),
                "elapsed_seconds": summary.get("elapsed_seconds"),
            }
        ),
    )
    children = tuple(
        (f.feature_id, _feature_run(job, f, e, task, learning_rate, f.feature_id in selected)) for f, e in confirmed
    )
    return JobPlan(
        experiment=experiment_name(tenant_id, request.project_id),
        experiment_tags={"afep.tenant_id": tenant_id, "afep.project_id": request.project_id},
        folder=(tenant_id, request.project_id),
        job=parent,
        features=children,
        bars=bars,
        metric=completed.metric,
    )


def model_settings(task: str, seed: int, learning_rate: float, n_classes: int = 2) -> dict[str, Any]:
    """The LightGBM settings of the evaluation's fits, and how the candidate was tested."""
    from processors.engine.evaluation import CONFIRM_STAGES, SELECT_P
    from processors.engine.scoring import EARLY_STOPPING, MAX_ROUNDS, Task, lgb_params

    kind: Task = "regression"
    if task == "classification":
        kind = "multiclass" if n_classes > 2 else "classification"
    params = lgb_params(kind, seed, learning_rate=learning_rate, n_classes=n_classes)
    shown = {k: v for k, v in params.items() if k not in ("num_threads", "verbose")}  # no effect on the result
    settings: dict[str, Any] = {"model": "lightgbm", **{f"model.{k}": v for k, v in shown.items()}}
    settings.update(
        {
            "model.max_rounds": MAX_ROUNDS,
            "model.early_stopping_rounds": EARLY_STOPPING,
            "evaluation.confirm_splits": sum(CONFIRM_STAGES),
            "evaluation.test": "paired t-test over the confirm splits",
            "evaluation.alpha": SELECT_P,
        }
    )
    return settings


def code_file(feature: Feature) -> str:
    """The artifact name of the feature's code: its name, made safe for a file name."""
    stem = _SAFE.sub("_", feature.proposal.name).strip("._")[:100] or "feature"
    return f"{stem}.py"


def _feature_run(
    job: Job,
    feature: Feature,
    evaluation: FeatureEvaluated,
    task: str,
    learning_rate: float,
    selected: bool,
) -> RunSpec:
    code = feature.code
    key = {KIND_TAG: "feature", FEATURE_TAG: feature.feature_id}
    texts: dict[str, str] = {}
    if code is not None:
        texts[code_file(feature)] = code.code if code.code.endswith("\n") else code.code + "\n"
        if code.sql:
            texts[code_file(feature).removesuffix(".py") + ".sql"] = code.sql + "\n"
    return RunSpec(
        key=key,
        name=f"feature_{feature.proposal.name}",
        tags={
            **key,
            JOB_TAG: job.job_id,
            "afep.selected": "true" if selected else "false",
            "afep.stage": evaluation.stage,
        },
        params=_params(
            {
                "name": feature.proposal.name,
                "definition": feature.proposal.spec_json,
                "description": feature.proposal.description,
                "source_columns": ",".join(feature.proposal.source_columns),
                "code_hash": code.code_hash if code is not None else None,
                "code_type": code.code_type if code is not None else None,
                "fitted": code.fitted if code is not None else None,
                "proposer": feature.proposal.proposer,
                "round": evaluation.round,
                "metric": evaluation.metric,
                **model_settings(task, job.request.seed, learning_rate, max(2, len(classes_of(job)))),
            }
        ),
        metrics=_metrics(
            {
                "lift": evaluation.lift,
                "ci_low": evaluation.ci_low,
                "ci_high": evaluation.ci_high,
                "p_value": evaluation.p_value,
                "importance_rank": evaluation.importance_rank,
                "screen_gain": evaluation.screen_gain,
            }
        ),
        texts=texts,
        highlight=feature.feature_id,
    )


def _params(values: dict[str, Any]) -> dict[str, str]:
    """Strings as MLflow stores them; None left out, over-long values cut (the artifacts hold the whole)."""
    out = {}
    for key, value in values.items():
        if value is None:
            continue
        text = str(value).lower() if isinstance(value, bool) else str(value)
        out[key] = text if len(text) <= MAX_PARAM else text[: MAX_PARAM - 1] + "…"
    return out


def _metrics(values: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items() if isinstance(v, (int, float)) and math.isfinite(float(v))}


def _finite(value: float | None) -> float:
    return float(value) if value is not None and math.isfinite(value) else 0.0


def _json(text: str) -> dict[str, Any]:
    try:
        decoded = json.loads(text)
    except ValueError:
        return {}
    return decoded if isinstance(decoded, dict) else {}
