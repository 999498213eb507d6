"""Execution agent: runs each candidate's code in the sandbox, once per fold fit it needs.

The sandbox sees only the source columns of the round's candidates, never the
target. Codes run in batches over one shared table; stateless codes are computed
once, fitted ones (frequencies, group statistics, bins) for the screen splits and
all rows (`FoldPlan.eager_fits`). Their other fold columns are left missing in the
artifact and computed by the evaluation agent for the few candidates it confirms.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from commands.store import EventStore
from commands.unit_of_work import Progress, Trace, load_feature, load_job
from domain.envelope import Envelope
from domain.feature import Feature, RecordExecution, RejectFeature
from domain.job import CompleteStage, StageCompleted
from processors.agents.dataset import base_and_plan
from processors.agents.sandboxing import run_codes
from processors.workbench import Workbench

NAME = "execution"
SUBSCRIBES = (StageCompleted,)


def react(envelope: Envelope, store: EventStore, bench: Workbench) -> list[Any]:
    done: StageCompleted = envelope.event
    if done.stage != "codegen":
        return []
    job = load_job(store, done.job_id)
    if job is None or job.terminal or (done.round, "execution") in job.stages_done:
        return []
    frame, _, plan = base_and_plan(job, bench)
    features = [f for f in (load_feature(store, fid) for fid in done.feature_ids) if f is not None and f.code]
    ok_ids = [f.feature_id for f in features if f.execution is not None and f.execution.ok]
    failed = sum(1 for f in features if f.execution is not None and not f.execution.ok)
    todo = [f for f in features if f.execution is None]  # the rest was recorded before a restart
    columns = sorted({c for f in todo for c in f.proposal.source_columns if c in frame.columns} - {job.request.target})
    data = frame.select(columns).to_arrow()
    sandbox = bench.sandbox()
    started = time.monotonic()
    total, finished = len(features), len(features) - len(todo)
    eager = [plan.fits[i] for i in plan.eager_fits]
    state = {"finished": finished, "failed": failed}

    def record(chunk: list[tuple[Feature, Any]], fitted: bool) -> None:
        commands: list[Any] = []
        for feature, result in chunk:
            outcome = _record(feature, result, job.job_id, bench, fitted, plan)
            commands += outcome
            if isinstance(outcome[0], RecordExecution) and outcome[0].ok:
                ok_ids.append(feature.feature_id)
            else:
                state["failed"] += 1
        state["finished"] += len(chunk)
        message = f"{len(ok_ids)} ok, {state['failed']} failed"
        commands.append(Progress(job.job_id, NAME, "execution", state["finished"], total, message))
        bench.emit(commands)  # per chunk: progress on the feed, little lost on a crash

    for fitted in (False, True):
        group = [f for f in todo if bool(f.code and f.code.fitted) == fitted]
        run_codes(
            sandbox,
            group,
            data,
            eager if fitted else None,
            lambda chunk, fitted=fitted: record(chunk, fitted),
            driver=bench.sandbox_driver(),
        )
    failed = state["failed"]
    seconds = time.monotonic() - started
    order = {fid: i for i, fid in enumerate(done.feature_ids)}
    ok_ids.sort(key=order.__getitem__)
    return [
        Trace(
            job.job_id,
            NAME,
            "decision",
            f"executed {len(todo)} candidates in the sandbox in {seconds:.1f} s: {len(ok_ids)} ok, {failed} failed",
        ),
        CompleteStage(job.job_id, done.round, "execution", tuple(ok_ids), len(ok_ids), failed),
    ]


def _record(feature: Feature, result: Any, job_id: str, bench: Workbench, fitted: bool, plan: Any) -> list[Any]:
    fid, ms = feature.feature_id, result.duration_s * 1000
    if not result.ok or result.values is None:
        reason = result.reason or "failed"
        return [
            RecordExecution(fid, False, reason, result.violation, ms, None, None, None),
            RejectFeature(fid, "execution", reason),
            Trace(job_id, NAME, "tool_result", f"{feature.proposal.name} failed: {reason}"),
        ]
    values = np.asarray(result.values, dtype=np.float64)
    column = values[:, -1]
    finite = column[np.isfinite(column)]
    n_unique = int(np.unique(finite).size) if finite.size else 0
    if n_unique <= 1:
        reason = "the feature is constant on this data"
        return [
            RecordExecution(fid, False, reason, "output", ms, None, None, None),
            RejectFeature(fid, "execution", reason),
        ]
    if fitted:  # eager columns computed, the rest missing until the evaluation agent needs them
        full = np.full((values.shape[0], plan.n_fits), np.nan)
        full[:, list(plan.eager_fits)] = values
        values = full
    artifact = bench.save_artifact(job_id, fid, values if fitted else values[:, :1])
    null_rate = float(1 - finite.size / max(1, column.size))
    return [RecordExecution(fid, True, None, None, ms, artifact, null_rate, n_unique)]
