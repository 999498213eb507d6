"""Execution agent: runs each candidate's code in the sandbox, once per fold fit."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from commands.store import EventStore
from commands.unit_of_work import Progress, Trace, load_feature, load_job
from domain.envelope import Envelope
from domain.feature import RecordExecution, RejectFeature
from domain.job import CompleteStage, StageCompleted
from processors.agents.dataset import base_and_plan
from processors.workbench import Workbench

NAME = "execution"
SUBSCRIBES = (StageCompleted,)
CHUNK = 20  # features per interim commit: progress on the feed, little lost on a crash


def react(envelope: Envelope, store: EventStore, bench: Workbench) -> list[Any]:
    done: StageCompleted = envelope.event
    if done.stage != "codegen":
        return []
    job = load_job(store, done.job_id)
    if job is None or job.terminal or (done.round, "execution") in job.stages_done:
        return []
    frame, _, plan = base_and_plan(job, bench)
    sandbox = bench.sandbox()
    total = len(done.feature_ids)
    ok_ids: list[str] = []
    failed = 0
    started = time.monotonic()
    pending: list[Any] = []
    for index, fid in enumerate(done.feature_ids, start=1):
        feature = load_feature(store, fid)
        if feature is None or feature.code is None:
            continue
        if feature.execution is not None:  # recorded before a restart
            if feature.execution.ok:
                ok_ids.append(fid)
            else:
                failed += 1
            continue
        columns = [c for c in feature.proposal.source_columns if c in frame.columns]
        data = frame.select(columns).to_arrow()
        result = sandbox.run(feature.code.code, data, list(plan.fits) if feature.code.fitted else None)
        if result.ok and result.values is not None:
            values = np.asarray(result.values, dtype=np.float64)
            column = values[:, -1]
            finite = column[np.isfinite(column)]
            n_unique = int(np.unique(finite).size) if finite.size else 0
            null_rate = float(1 - finite.size / max(1, column.size))
            if n_unique <= 1:
                failed += 1
                pending += _failure(fid, result.duration_s, "the feature is constant on this data", "output")
            else:
                artifact = bench.save_artifact(job.job_id, fid, values if feature.code.fitted else values[:, :1])
                ok_ids.append(fid)
                pending.append(
                    RecordExecution(fid, True, None, None, result.duration_s * 1000, artifact, null_rate, n_unique)
                )
        else:
            failed += 1
            pending += _failure(fid, result.duration_s, result.reason or "failed", result.violation)
            pending.append(Trace(job.job_id, NAME, "tool_result", f"{feature.proposal.name} failed: {result.reason}"))
        if index % CHUNK == 0 or index == total:
            pending.append(Progress(job.job_id, NAME, "execution", index, total, f"{len(ok_ids)} ok, {failed} failed"))
            bench.emit(pending)
            pending = []
    seconds = time.monotonic() - started
    return [
        *pending,
        Trace(
            job.job_id,
            NAME,
            "decision",
            f"executed {total} candidates in the sandbox in {seconds:.1f} s: {len(ok_ids)} ok, {failed} failed",
        ),
        CompleteStage(job.job_id, done.round, "execution", tuple(ok_ids), len(ok_ids), failed),
    ]


def _failure(fid: str, duration_s: float, reason: str, violation: str | None) -> list[Any]:
    return [
        RecordExecution(fid, False, reason, violation, duration_s * 1000, None, None, None),
        RejectFeature(fid, "execution", reason),
    ]
