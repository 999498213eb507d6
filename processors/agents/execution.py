"""Execution agent: runs each candidate's code in the sandbox, once per fold fit.

The sandbox sees only the source columns of the round's candidates, never the
target. Codes run in batches over one shared table; fitted codes get every fold
fit, stateless ones are computed once.
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
from processors.codegen import is_generated
from processors.workbench import Workbench

NAME = "execution"
SUBSCRIBES = (StageCompleted,)
CHUNK = 20  # codes per sandbox batch and per interim commit: progress on the feed, little lost on a crash


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
    # AFEP's own generated code shares one confined process per chunk; other code runs alone
    own = {f.feature_id for f in todo if f.code and is_generated(f.proposal.spec_json, f.code.code)}
    for fitted, shared in ((False, True), (False, False), (True, True), (True, False)):
        group = [f for f in todo if bool(f.code and f.code.fitted) == fitted and (f.feature_id in own) == shared]
        for start in range(0, len(group), CHUNK):
            chunk = group[start : start + CHUNK]
            results = sandbox.run_batch(
                [f.code.code for f in chunk],  # type: ignore[union-attr]
                data,
                list(plan.fits) if fitted else None,
                shared_process=shared,
            )
            commands: list[Any] = []
            for feature, result in zip(chunk, results, strict=True):
                outcome = _record(feature, result, job.job_id, bench, fitted)
                commands += outcome
                if isinstance(outcome[0], RecordExecution) and outcome[0].ok:
                    ok_ids.append(feature.feature_id)
                else:
                    failed += 1
            finished += len(chunk)
            commands.append(
                Progress(job.job_id, NAME, "execution", finished, total, f"{len(ok_ids)} ok, {failed} failed")
            )
            bench.emit(commands)
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


def _record(feature: Feature, result: Any, job_id: str, bench: Workbench, fitted: bool) -> list[Any]:
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
    artifact = bench.save_artifact(job_id, fid, values if fitted else values[:, :1])
    null_rate = float(1 - finite.size / max(1, column.size))
    return [RecordExecution(fid, True, None, None, ms, artifact, null_rate, n_unique)]
