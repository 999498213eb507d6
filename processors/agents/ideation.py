"""Ideation agent: proposes candidate features from domain knowledge and a typed operator search."""

from __future__ import annotations

import json
import uuid
from typing import Any

from commands.store import EventStore
from commands.unit_of_work import Progress, Trace, load_feature, load_job
from domain.envelope import Envelope
from domain.feature import ProposeFeature
from domain.job import CompleteStage, Job, RoundStarted
from domain.spec import FeatureSpec
from processors.ideation import Feedback, propose
from processors.profiling import TableProfile
from processors.research import Research
from processors.workbench import Workbench

NAME = "ideation"
SUBSCRIBES = (RoundStarted,)
FEATURE_NAMESPACE = uuid.UUID("0b6f0f4e-2a8a-4d4b-8c54-5f3c8d1a9e77")


def feature_id(job_id: str, attempt: int, name: str) -> str:
    return str(uuid.uuid5(FEATURE_NAMESPACE, f"{job_id}:{attempt}:{name}"))


def react(envelope: Envelope, store: EventStore, bench: Workbench) -> list[Any]:
    started: RoundStarted = envelope.event
    job = load_job(store, started.job_id)
    if job is None or job.terminal or job.schema is None or job.research is None:
        return []
    if (started.round, "ideation") in job.stages_done:
        return []
    profile = TableProfile.from_dict(json.loads(job.schema.profile_json))
    found = Research.from_dict(json.loads(job.research.findings_json))
    feedback, seen = _history(store, job)
    out: list[Any] = [
        Trace(
            job.job_id,
            NAME,
            "tool_call",
            f"propose(round={started.round}, budget={started.candidate_budget}, strategy={started.strategy})",
            {"feedback": len(feedback), "seen": len(seen)},
        )
    ]
    proposals = propose(
        profile,
        found,
        round=started.round,
        seen=seen,
        feedback=feedback,
        budget=started.candidate_budget,
        seed=job.request.seed,
    )
    llm_traces: list[Any] = []
    if bench.llm is not None and started.round == 1:  # the model's ideas and the web's formulas first
        from processors.llm.steps import ideas_with_llm

        findings = json.loads(job.research.findings_json)
        llm_traces, proposals = ideas_with_llm(
            bench.llm, store, job, NAME, profile, found, findings, proposals, started.candidate_budget, seen
        )
    ids = []
    for p in proposals:
        fid = feature_id(job.job_id, job.attempt, p.name)
        ids.append(fid)
        out.append(
            ProposeFeature(
                feature_id=fid,
                job_id=job.job_id,
                round=started.round,
                name=p.name,
                description=p.description,
                rationale=p.rationale,
                spec_json=json.dumps(p.spec.to_dict(), sort_keys=True, default=str),
                source_columns=tuple(p.source_columns),
                expected_value=float(p.expected_value),
                proposer=p.proposer,
                domain_sources=tuple(p.domain_sources),
            )
        )
    if llm_traces:
        from processors.llm.steps import attribute

        llm_ids = [fid for fid, p in zip(ids, proposals, strict=True) if p.proposer == "llm"]
        out += attribute(llm_traces, "ideation", llm_ids)
    by_source: dict[str, int] = {}
    for p in proposals:
        by_source[p.proposer] = by_source.get(p.proposer, 0) + 1
    for p in proposals[:5]:
        out.append(Trace(job.job_id, NAME, "thought", f"{p.name}: {p.rationale}"))
    out.append(
        Trace(
            job.job_id,
            NAME,
            "decision",
            f"proposed {len(proposals)} candidates ("
            + ", ".join(f"{n} from {k}" for k, n in sorted(by_source.items()))
            + ")",
        )
    )
    out.append(Progress(job.job_id, NAME, "ideation", 1, 1, f"{len(proposals)} candidates"))
    out.append(CompleteStage(job.job_id, started.round, "ideation", tuple(ids), len(ids), 0))
    return out


def _history(store: EventStore, job: Job) -> tuple[list[Feedback], set[str]]:
    feedback: list[Feedback] = []
    seen: set[str] = set()
    for fid in job.feature_ids:
        feature = load_feature(store, fid)
        if feature is None:
            continue
        seen.add(feature.proposal.name)
        confirmed = [e for e in feature.evaluations if e.lift is not None]
        last = confirmed[-1] if confirmed else None
        feedback.append(
            Feedback(
                spec=FeatureSpec.from_dict(json.loads(feature.proposal.spec_json)),
                lift=last.lift if last else None,
                p_value=last.p_value if last else None,
                selected=feature.status in ("selected", "approved"),
            )
        )
    return feedback, seen
