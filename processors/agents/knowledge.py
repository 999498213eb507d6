"""Knowledge agent: a completed job's accepted web research extends the local knowledge base."""

from __future__ import annotations

import json
from typing import Any

from commands.store import EventStore
from commands.unit_of_work import Trace, load_job
from domain.envelope import Envelope
from domain.job import JobCompleted
from processors.workbench import Workbench

NAME = "knowledge"
SUBSCRIBES = (JobCompleted,)


def react(envelope: Envelope, store: EventStore, bench: Workbench) -> list[Any]:
    job = load_job(store, envelope.event.job_id)
    if job is None or job.research is None or bench.knowledge_dir is None:
        return []
    findings = json.loads(job.research.findings_json)
    if "web" not in findings:  # offline research taught nothing new
        return []
    from processors.export import job_features
    from processors.llm.learning import learn

    selected = set(job.selected_ids)
    accepted = [f for f in job_features(store, job) if f.feature_id in selected]
    added = learn(bench.knowledge_dir, accepted, findings)
    if not added:
        return []
    bench.forget_knowledge()
    return [
        Trace(
            job.job_id,
            NAME,
            "decision",
            f"the knowledge base learned {len(added)} formulas from this job's accepted research: {', '.join(added)}",
            {"learned": added},
        )
    ]
