"""Code generation agent: each proposal becomes Polars code (and SQL where it fits)."""

from __future__ import annotations

import json
from typing import Any

from commands.store import EventStore
from commands.unit_of_work import Progress, Trace, load_feature, load_job
from domain.envelope import Envelope
from domain.feature import RecordCode, RejectFeature
from domain.job import CompleteStage, StageCompleted
from domain.spec import FeatureSpec
from processors.codegen import generate_code
from processors.workbench import Workbench

NAME = "codegen"
SUBSCRIBES = (StageCompleted,)


def react(envelope: Envelope, store: EventStore, bench: Workbench) -> list[Any]:
    done: StageCompleted = envelope.event
    if done.stage != "ideation":
        return []
    job = load_job(store, done.job_id)
    if job is None or job.terminal or (done.round, "codegen") in job.stages_done:
        return []
    out: list[Any] = []
    generated: list[str] = []
    failed = 0
    with_sql = 0
    for fid in done.feature_ids:
        feature = load_feature(store, fid)
        if feature is None:
            continue
        try:
            code = generate_code(FeatureSpec.from_dict(json.loads(feature.proposal.spec_json)))
        except Exception as error:  # noqa: BLE001 - one bad spec must not stop the round
            failed += 1
            out.append(RejectFeature(fid, "codegen", f"no code for this spec: {error}"))
            continue
        with_sql += code.sql is not None
        generated.append(fid)
        out.append(
            RecordCode(
                feature_id=fid,
                code=code.code,
                code_type=code.code_type,
                code_hash=code.code_hash,
                sql=code.sql,
                sql_dialect=code.sql_dialect,
                fitted=FeatureSpec.from_dict(json.loads(feature.proposal.spec_json)).fitted,
            )
        )
    out.append(
        Trace(
            done.job_id,
            NAME,
            "decision",
            f"generated Polars code for {len(generated)} candidates ({with_sql} also as SQL checked by sqlglot)"
            + (f"; {failed} specs had no code" if failed else ""),
        )
    )
    out.append(Progress(done.job_id, NAME, "codegen", 1, 1, f"{len(generated)} generated"))
    out.append(CompleteStage(done.job_id, done.round, "codegen", tuple(generated), len(generated), failed))
    return out
