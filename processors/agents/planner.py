"""Planner (process manager): starts rounds, stops when the budget is spent or gains stop."""

from __future__ import annotations

import json
from typing import Any

from commands.store import EventStore
from commands.unit_of_work import Trace, load_job
from domain.envelope import Envelope
from domain.job import CompleteJob, DomainResearched, Job, RoundCompleted, StartRound, job_stream
from processors.workbench import Workbench

NAME = "planner"
SUBSCRIBES = (DomainResearched, RoundCompleted)

# A new round starts only while less than this share of the budget is spent:
# the rest is kept for its execution and evaluation.
ROUND_START_SHARE = 0.45
FOLLOW_UP_SHARE = 3  # a follow-up round gets max_candidates // 3 candidates


def react(envelope: Envelope, store: EventStore, bench: Workbench) -> list[Any]:
    job_id = envelope.event.job_id
    job = load_job(store, job_id)
    if job is None or job.terminal:
        return []
    if isinstance(envelope.event, DomainResearched):
        budget = job.request.max_candidates
        return [
            Trace(job_id, NAME, "decision", f"round 1: knowledge base and operator search, up to {budget} candidates"),
            StartRound(job_id, job.round + 1, "knowledge_base+operator_search", budget),
        ]
    return _after_round(job, envelope.event, elapsed_seconds(store, job, bench))


def elapsed_seconds(store: EventStore, job: Job, bench: Workbench) -> float:
    first = store.read_stream(job_stream(job.job_id))[0]
    return (bench.clock() - first.occurred_at).total_seconds()


def _after_round(job: Job, done: RoundCompleted, elapsed: float) -> list[Any]:
    request = job.request
    rounds = len(job.rounds_done)
    reason = None
    if rounds >= request.max_rounds:
        reason = f"reached the maximum of {request.max_rounds} rounds"
    elif not done.selected_ids:
        reason = f"round {done.round} selected nothing: gains stopped"
    elif elapsed > ROUND_START_SHARE * request.budget_seconds:
        reason = f"{elapsed:.0f} s of the {request.budget_seconds:.0f} s budget spent"
    if reason is None:
        budget = max(20, request.max_candidates // FOLLOW_UP_SHARE)
        return [
            Trace(
                job.job_id,
                NAME,
                "decision",
                f"round {done.round} kept {len(done.selected_ids)} features; round {done.round + 1} "
                f"explores around them ({budget} candidates)",
            ),
            StartRound(job.job_id, done.round + 1, "feedback", budget),
        ]
    first = job.rounds_done[0]
    summary = {
        "rounds": [
            {"round": r.round, "baseline": r.baseline_score, "score": r.score, "selected": list(r.selected_ids)}
            for r in job.rounds_done
        ],
        "stop_reason": reason,
        "elapsed_seconds": round(elapsed, 2),
    }
    return [
        Trace(job.job_id, NAME, "decision", f"finish: {reason}; {len(job.selected_ids)} features selected"),
        CompleteJob(
            job_id=job.job_id,
            selected_ids=job.selected_ids,
            metric=done.metric,
            baseline_score=first.baseline_score,
            final_score=done.score,
            summary_json=json.dumps(summary),
        ),
    ]
