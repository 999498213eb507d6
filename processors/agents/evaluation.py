"""Evaluation agent: LightGBM screening, paired significance tests and forward selection."""

from __future__ import annotations

import time
from typing import Any

from commands.store import EventStore
from commands.unit_of_work import Progress, Trace, load_feature, load_job
from domain.envelope import Envelope
from domain.feature import RecordEvaluation, RejectFeature, SelectFeature
from domain.job import CompleteRound, CompleteStage, StageCompleted
from processors.agents.dataset import base_and_plan
from processors.agents.planner import elapsed_seconds
from processors.engine import evaluate_round
from processors.workbench import Workbench

NAME = "evaluation"
SUBSCRIBES = (StageCompleted,)
DEADLINE_SHARE = 0.9  # evaluation must finish within this share of the job budget


def react(envelope: Envelope, store: EventStore, bench: Workbench) -> list[Any]:
    done: StageCompleted = envelope.event
    if done.stage != "execution":
        return []
    job = load_job(store, done.job_id)
    if job is None or job.terminal or (done.round, "evaluation") in job.stages_done:
        return []
    _, base, plan = base_and_plan(job, bench)
    names: dict[str, str] = {}
    candidates = {}
    for fid in done.feature_ids:
        feature = load_feature(store, fid)
        if feature is not None and feature.execution is not None and feature.execution.artifact:
            candidates[fid] = bench.load_artifact(feature.execution.artifact, plan.n_fits)
            names[fid] = feature.proposal.name
    selected = {}
    for fid in job.selected_ids:
        feature = load_feature(store, fid)
        if feature is not None and feature.execution is not None and feature.execution.artifact:
            selected[fid] = bench.load_artifact(feature.execution.artifact, plan.n_fits)
            names[fid] = feature.proposal.name
    remaining = DEADLINE_SHARE * job.request.budget_seconds - elapsed_seconds(store, job, bench)
    deadline = time.monotonic() + max(5.0, remaining)

    def progress(stage: str, done_count: int, total: int) -> None:
        bench.emit([Progress(job.job_id, NAME, stage, done_count, total, f"{stage} {done_count}/{total}")])

    out: list[Any] = [
        Trace(
            job.job_id,
            NAME,
            "tool_call",
            f"evaluate_round({len(candidates)} candidates, {len(selected)} already selected, "
            f"{len(plan.splits)} splits, {remaining:.0f} s left)",
        )
    ]
    report = evaluate_round(
        base,
        plan,
        candidates,
        selected,
        task=base.task,
        seed=job.request.seed,
        deadline=deadline,
        progress=progress,
    )
    evaluated: list[Any] = []
    rejected: list[Any] = []
    selected_now: list[Any] = []
    for result in report.candidates:
        fid = result.id
        evaluated.append(
            RecordEvaluation(
                feature_id=fid,
                round=done.round,
                stage=result.stage_reached,
                metric=report.metric,
                screen_gain=_num(result.screen_gain),
                lift=_num(result.lift),
                ci_low=_num(result.ci_low),
                ci_high=_num(result.ci_high),
                p_value=_num(result.p_value),
                importance_rank=result.importance_rank,
                reason=result.reason,
            )
        )
        if result.selected:
            selected_now.append(SelectFeature(fid, done.round, result.reason))
            selected_now.append(Trace(job.job_id, NAME, "decision", f"select {names.get(fid, fid)}: {result.reason}"))
        else:
            rejected.append(RejectFeature(fid, "evaluation", result.reason))
    out += evaluated + rejected + selected_now  # grouped, so a replay reads as evaluated / rejected / selected
    out.append(
        Trace(
            job.job_id,
            NAME,
            "decision",
            f"round {done.round}: {report.metric} {report.baseline_score:.4f} -> {report.final_score:.4f}, "
            f"{len(report.newly_selected)} selected ({report.n_screened} screened, {report.n_confirmed} confirmed "
            f"in {report.seconds:.1f} s)",
            {"notes": list(report.notes), "guard_lift": report.guard_lift},
        )
    )
    ids = tuple(c.id for c in report.candidates)
    out.append(CompleteStage(job.job_id, done.round, "evaluation", ids, len(ids), 0))
    out.append(
        CompleteRound(
            job_id=job.job_id,
            round=done.round,
            metric=report.metric,
            baseline_score=float(report.baseline_score),
            score=float(report.final_score),
            selected_ids=tuple(report.newly_selected),
            evaluated=len(ids),
        )
    )
    return out


def _num(value: Any) -> float | None:
    return None if value is None else float(value)
