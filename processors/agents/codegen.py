"""Code generation agent: each proposal becomes Polars code (and SQL where it fits)."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from commands.store import EventStore
from commands.unit_of_work import Progress, Trace, load_feature, load_job
from domain.envelope import Envelope
from domain.feature import Feature, RecordCode, RejectFeature
from domain.job import CompleteStage, Job, StageCompleted
from domain.spec import FeatureSpec
from processors.agents.dataset import snapshot_path
from processors.codegen import GeneratedCode, generate_code
from processors.llm.port import BudgetExhausted
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
    features = [f for f in (load_feature(store, fid) for fid in done.feature_ids) if f is not None]
    compete = _Competition(bench, store, job, features) if bench.llm is not None else None
    for feature in features:
        fid = feature.feature_id
        try:
            code = generate_code(FeatureSpec.from_dict(json.loads(feature.proposal.spec_json)))
        except Exception as error:  # noqa: BLE001 - one bad spec must not stop the round
            failed += 1
            out.append(RejectFeature(fid, "codegen", f"no code for this spec: {error}"))
            continue
        if compete is not None:
            code = compete(feature, code)
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
    if compete is not None:
        out += compete.session.drain()
    out.append(Progress(done.job_id, NAME, "codegen", 1, 1, f"{len(generated)} generated"))
    out.append(CompleteStage(done.job_id, done.round, "codegen", tuple(generated), len(generated), failed))
    return out


class _Competition:
    """With a model: the first few features (the model's and the web's ideas first) get competing
    implementations; the winner's code is recorded (model-written code runs confined: `is_generated`
    is false for it)."""

    def __init__(self, bench: Workbench, store: EventStore, job: Job, features: list[Feature]) -> None:
        self.bench = bench
        self.services = bench.llm
        self.session = self.services.session(store, job, NAME)
        order = {"llm": 0, "web_research": 1, "knowledge_base": 2}
        ranked = sorted(features, key=lambda f: (order.get(f.proposal.proposer, 3), -f.proposal.expected_value))
        self.chosen = {f.feature_id for f in ranked[: self.services.limits.competing_features]}
        schema = job.schema
        self.frame = bench.frame(snapshot_path(schema.dataset_path, bench)) if schema and self.chosen else None

    def __call__(self, feature: Feature, offline: GeneratedCode) -> GeneratedCode:
        from processors.llm.steps import competing_code

        if feature.feature_id not in self.chosen or self.frame is None:
            return offline
        if self.session.exhausted():
            with contextlib.suppress(BudgetExhausted):
                self.session.check_budget()  # the feed says so, once
            return offline
        spec = FeatureSpec.from_dict(json.loads(feature.proposal.spec_json))
        outcome = competing_code(self.services, self.session, feature, spec, offline, self.frame, self._run)
        self.bench.emit(self.session.drain())  # each competition shows on the feed as it ends
        if outcome is None or outcome.winner.label == "offline":
            return offline
        winner, code = outcome.winner, outcome.winner.code
        if code is None:
            return offline
        agrees = "offline" in winner.agrees_with
        return GeneratedCode(
            code,
            "polars",
            winner.code_hash or "",
            offline.sql if agrees else None,
            offline.sql_dialect if agrees else None,
        )

    def _run(self, codes: list[str], sample: Any) -> list[Any]:
        """Each code in its own confined process (never the shared fast path), on the sandbox's thread."""
        sandbox = self.bench.sandbox()
        return self.bench.sandbox_driver().submit(sandbox.run_batch, codes, sample, None).result()  # type: ignore[no-any-return]
