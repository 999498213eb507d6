"""Domain research agent: maps columns to domain knowledge with cited sources."""

from __future__ import annotations

import json
from typing import Any

from commands.store import EventStore
from commands.unit_of_work import Progress, Trace, load_job
from domain.envelope import Envelope
from domain.job import RecordDomainResearch, SchemaAnalyzed
from processors.profiling import TableProfile
from processors.research import research
from processors.workbench import Workbench

NAME = "research"
SUBSCRIBES = (SchemaAnalyzed,)


def react(envelope: Envelope, store: EventStore, bench: Workbench) -> list[Any]:
    job_id = envelope.event.job_id
    job = load_job(store, job_id)
    if job is None or job.terminal or job.schema is None or job.research is not None:
        return []
    profile = TableProfile.from_dict(json.loads(job.schema.profile_json))
    out: list[Any] = [
        Trace(job_id, NAME, "tool_call", "knowledge_base.match(columns)", {"columns": len(profile.columns)})
    ]
    found = research(profile, bench.knowledge_base())
    summary = found.to_dict()
    domains = tuple(hit.domain for hit in found.domains)
    out.append(
        Trace(
            job_id,
            NAME,
            "tool_result",
            "domains: "
            + (", ".join(f"{hit.domain} ({hit.confidence:.0%})" for hit in found.domains) or "none recognised")
            + f"; {len(found.findings)} column findings, {len(found.features)} known formulas",
            {"domains": [vars(hit) for hit in found.domains]},
        )
    )
    for finding in found.findings[:15]:
        fit = (
            ""
            if finding.fits is None
            else (
                " (values fit the typical range)"
                if finding.fits
                else " (values OUTSIDE the typical range: check units)"
            )
        )
        out.append(
            Trace(job_id, NAME, "thought", f"{finding.column}: {finding.meaning}{fit}", {"source": finding.source})
        )
    for known in found.features[:10]:
        out.append(
            Trace(
                job_id,
                NAME,
                "thought",
                f"known transformation {known.name}: {known.rationale}",
                {"source": known.source},
            )
        )
    sources = tuple(found.sources)
    if bench.llm is not None:  # with keys: Tavily search and extract, then the model's synthesis, with sources
        from processors.llm.steps import research_with_web

        traces, web = research_with_web(bench.llm, store, job, NAME, profile, found, bench.clock().isoformat())
        out += traces
        if web is not None:
            summary["web"] = web
            sources = tuple(dict.fromkeys((*sources, *(page["url"] for page in web["sources"]))))
    out.append(Progress(job_id, NAME, "research", 1, 1, "domain research done"))
    out.append(
        RecordDomainResearch(
            job_id=job_id,
            attempt=job.attempt,
            domains=domains,
            findings_json=json.dumps(summary, default=str),
            sources=sources,
        )
    )
    return out
