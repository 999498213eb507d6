"""Evaluation agent: LightGBM screening, a shortlist, and the final confirmation that decides.

When round 1 starts it fits the raw-feature baseline split by split on one fit worker
in the background (`fit_baseline`), on the core that ideation, code generation and
execution leave idle; the round's evaluation stops that work, finds its fits in the
job's fit cache and fits the rest itself.

Fitted candidates arrive with their screen-fold columns only (see the execution agent);
the few that reach confirmation get their other fold columns computed here, in the
sandbox, and a tool_result trace says so.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from commands.store import EventStore
from commands.unit_of_work import Progress, Trace, load_feature, load_job
from domain.envelope import Envelope
from domain.feature import Feature, RecordEvaluation, RejectFeature, SelectFeature
from domain.job import CompleteRound, CompleteStage, RoundStarted, StageCompleted
from domain.validation import MAX_BUDGET_SECONDS
from processors.agents.dataset import base_and_plan
from processors.agents.planner import elapsed_seconds
from processors.agents.sandboxing import run_codes
from processors.engine import evaluate_round, fit_baseline
from processors.engine.evaluation import CONFIRM_TOP, Step, calibrate_step
from processors.engine.scoring import LEARNING_RATE
from processors.workbench import Workbench

NAME = "evaluation"
SUBSCRIBES = (RoundStarted, StageCompleted)
DEADLINE_SHARE = 0.9  # evaluation must finish within this share of the job budget
FALLBACK_BUDGET_SECONDS = 600.0  # for a NaN budget from a log written before requests were validated
# Follow-up rounds explore around features already kept and rarely add one (3 of 25 jobs
# on the benchmark): they confirm fewer candidates than the first round (CONFIRM_TOP).
CONFIRM_TOP_FOLLOW_UP = 6


def react(envelope: Envelope, store: EventStore, bench: Workbench) -> list[Any]:
    if isinstance(envelope.event, RoundStarted):
        return _warm_baseline(envelope.event, store, bench)
    done: StageCompleted = envelope.event
    if done.stage != "execution":
        return []
    job = load_job(store, done.job_id)
    if job is None or job.terminal or (done.round, "evaluation") in job.stages_done:
        return []
    frame, base, plan = base_and_plan(job, bench)
    bench.wait_for(("baseline", job.job_id))
    step = _job_step(bench, job, base, plan)
    assert step is not None  # only a stopped calibration returns None
    names: dict[str, str] = {}
    features: dict[str, Feature] = {}
    candidates = {}
    selected = {}
    for fids, arrays in ((done.feature_ids, candidates), (job.selected_ids, selected)):
        for fid in fids:
            feature = load_feature(store, fid)
            if feature is not None and feature.execution is not None and feature.execution.artifact:
                arrays[fid] = bench.load_artifact(feature.execution.artifact, plan.n_fits)
                names[fid] = feature.proposal.name
                features[fid] = feature
    partial = {fid for fid, f in features.items() if f.code is not None and f.code.fitted}
    completions: list[str] = []

    def complete(ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Run fitted candidates' code for the confirm and final folds (only those get that far)."""
        started = time.monotonic()
        todo = [features[i] for i in ids]
        needed = {c for f in todo for c in f.proposal.source_columns if c in frame.columns}
        columns = sorted(needed - {job.request.target})  # the sandbox never sees the target
        lazy = list(plan.lazy_fits)
        out: dict[str, np.ndarray] = {}
        failures: list[str] = []

        def take(chunk: list[tuple[Feature, Any]]) -> None:
            for feature, result in chunk:
                fid = feature.feature_id
                if result.ok and result.values is not None:
                    values = np.array(candidates.get(fid, selected.get(fid)), dtype=np.float64)
                    values[:, lazy] = result.values
                    out[fid] = values
                else:
                    failures.append(f"{feature.proposal.name}: {result.reason}")

        data = frame.select(columns).to_arrow()
        run_codes(bench.sandbox(), todo, data, [plan.fits[i] for i in lazy], take, driver=bench.sandbox_driver())
        completions.append(
            f"computed {len(todo)} fitted candidates on {len(lazy)} more folds in the sandbox "
            f"in {time.monotonic() - started:.1f} s" + (f"; failed: {'; '.join(failures)}" if failures else "")
        )
        return out

    remaining = DEADLINE_SHARE * usable_budget(job.request.budget_seconds) - elapsed_seconds(store, job, bench)
    deadline = time.monotonic() + max(5.0, remaining)

    def progress(stage: str, done_count: int, total: int) -> None:
        bench.emit([Progress(job.job_id, NAME, stage, done_count, total, f"{stage} {done_count}/{total}")])

    # committed now, not with the round's results: a live feed (and a replay) shows the call
    # when it starts; the round's decisions follow when it ends
    bench.emit(
        [
            Trace(
                job.job_id,
                NAME,
                "tool_call",
                f"evaluate_round({len(candidates)} candidates, {len(selected)} already selected, "
                f"{len(plan.splits)} splits, {remaining:.0f} s left, boosting step {step.learning_rate:g}"
                + (
                    f": the raw-feature baseline needs {step.baseline_rounds:.0f} rounds at {LEARNING_RATE:g})"
                    if step.learning_rate != LEARNING_RATE
                    else ")"
                ),
                {"learning_rate": step.learning_rate, "baseline_rounds": step.baseline_rounds},
            )
        ]
    )
    report = evaluate_round(
        base,
        plan,
        candidates,
        selected,
        task=base.task,
        seed=job.request.seed,
        deadline=deadline,
        progress=progress,
        partial=partial,
        complete=complete,
        fit_cache=_fit_cache(bench, job.job_id, job.request.seed, step.learning_rate),
        learning_rate=step.learning_rate,
        confirm_top=CONFIRM_TOP if done.round == 1 else CONFIRM_TOP_FOLLOW_UP,
    )
    out: list[Any] = [Trace(job.job_id, NAME, "tool_result", message) for message in completions]
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
            f"{len(report.newly_selected)} selected ({report.n_screened} screened, {report.n_confirmed} shortlisted, "
            f"{len(report.finalists)} finalist(s), in {report.seconds:.1f} s): {report.verdict}"
            + "".join(f"; {note}" for note in report.notes),
            {"notes": list(report.notes), "finalists": list(report.finalists), "verdict": report.verdict},
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


def _fit_cache(bench: Workbench, job_id: str, seed: int, learning_rate: float) -> dict[Any, Any]:
    return bench.memo(("fits", job_id, seed, learning_rate), dict)  # type: ignore[no-any-return]


def _job_step(bench: Workbench, job: Any, base: Any, plan: Any, stop: threading.Event | None = None) -> Step | None:
    """The job's boosting step (`calibrate_step`), chosen once and remembered; None if stopped."""
    known: dict[str, Step] = bench.memo(("step", job.job_id, job.request.seed), dict)
    if "step" not in known:
        cache = _fit_cache(bench, job.job_id, job.request.seed, LEARNING_RATE)
        step = calibrate_step(base, plan, task=base.task, seed=job.request.seed, fit_cache=cache, stop=stop)
        if step is None:
            return None
        known["step"] = step
    return known["step"]


def _warm_baseline(started: RoundStarted, store: EventStore, bench: Workbench) -> list[Any]:
    """Round 1: choose the job's step, then fit the raw-feature baseline on every split
    while the candidates are made."""
    job = load_job(store, started.job_id)
    if started.round != 1 or job is None or job.terminal or job.schema is None:
        return []
    _, base, plan = base_and_plan(job, bench)
    seed = job.request.seed

    def work(stop: threading.Event) -> None:
        step = _job_step(bench, job, base, plan, stop)
        if step is not None:
            cache = _fit_cache(bench, job.job_id, seed, step.learning_rate)
            fit_baseline(
                base, plan, task=base.task, seed=seed, fit_cache=cache, stop=stop, learning_rate=step.learning_rate
            )

    bench.in_background(("baseline", job.job_id), work)
    return [
        Trace(
            job.job_id,
            NAME,
            "tool_call",
            f"fit_baseline(raw features, {len(plan.splits)} splits) on one fit worker in the background, "
            "while round 1's candidates are made; evaluation fits what is left",
        )
    ]


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


def usable_budget(seconds: float) -> float:
    """The job budget clamped into (0, 7 days]: requests are validated now, but old logs may hold any float."""
    if math.isnan(seconds):
        return FALLBACK_BUDGET_SECONDS
    return min(max(seconds, 1.0), MAX_BUDGET_SECONDS)
