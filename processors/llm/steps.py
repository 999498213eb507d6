"""What each agent does with a model, and what it does when the model cannot help.

Each step takes the workbench's `LLMServices`, does its work through an `LLMSession`
and returns the session's traces with its result. A provider that fails (after retries
and a repair), refuses, or a spent budget never fails the job: the step says so in a
`decision` trace and returns None, and the agent keeps its offline result.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from commands.store import EventStore
from commands.unit_of_work import Trace
from domain.feature import Feature
from domain.job import Job
from domain.spec import FeatureSpec
from processors.codegen import GeneratedCode
from processors.ideation import Proposal
from processors.llm.competition import Outcome, compete, write_codes
from processors.llm.ideas import llm_proposals, merge, web_proposals
from processors.llm.port import BudgetExhausted, LLMError, LLMUnavailable
from processors.llm.semantics import analyse
from processors.llm.session import LLMServices, LLMSession
from processors.llm.web_research import web_features, web_research
from processors.profiling import TableProfile
from processors.research import Research

FALLBACK = (LLMUnavailable, BudgetExhausted)


def _fallback(session: LLMSession, what: str, error: LLMError) -> None:
    if isinstance(error, BudgetExhausted):
        if not any(t.data and "llm_budget" in t.data for t in session.traces):
            session.trace("decision", f"LLM budget exhausted ({error}): {what} stays offline", {"llm_budget": {}})
        return
    session.trace(
        "decision",
        f"the model could not help with {what} ({error}); the offline agent takes over",
        {"fallback": {"step": what, "reason": str(error)[:500]}},
    )


def schema_semantics(
    services: LLMServices, store: EventStore, job: Job, agent: str, profile: TableProfile, snapshot: Path, frame: Any
) -> tuple[list[Trace], dict[str, Any] | None]:
    session = services.session(store, job, agent)
    try:
        semantics = analyse(session, profile, snapshot, frame)
    except FALLBACK as error:
        _fallback(session, "the table's semantics", error)
        return session.drain(), None
    session.trace(
        "decision",
        "semantics: entity "
        + (", ".join(semantics.entity) or "none")
        + f"; {len(semantics.units)} units; time columns "
        + (", ".join(semantics.time_columns) or "none")
        + "; leakage suspects "
        + (", ".join(s.column for s in semantics.leakage_suspects) or "none"),
        {"semantics": semantics.model_dump()},
    )
    for suspect in semantics.leakage_suspects:
        session.trace("thought", f"the model suspects leakage in {suspect.column!r}: {suspect.reason}")
    return session.drain(), semantics.model_dump()


def research_with_web(
    services: LLMServices, store: EventStore, job: Job, agent: str, profile: TableProfile, found: Research, now: str
) -> tuple[list[Trace], dict[str, Any] | None]:
    if services.search is None:
        return [], None
    session = services.session(store, job, agent)
    try:
        web = web_research(session, profile, found, now)
    except FALLBACK as error:
        _fallback(session, "web research", error)
        return session.drain(), None
    return session.drain(), web


def ideas_with_llm(
    services: LLMServices | None,
    store: EventStore,
    job: Job,
    agent: str,
    profile: TableProfile,
    found: Research,
    findings: dict[str, Any],
    offline: list[Proposal],
    budget: int,
    seen: set[str],
) -> tuple[list[Trace], list[Proposal]]:
    """The model's proposals and the web research's formulas first, then the offline ones; deduplicated."""
    ideas = web_features(findings)
    first = web_proposals(ideas)
    traces: list[Trace] = []
    if services is not None:
        session = services.session(store, job, agent)
        try:
            semantics = semantics_of(job.schema.profile_json) if job.schema else {}
            first = [*llm_proposals(session, profile, found, findings, ideas, budget, semantics), *first]
        except FALLBACK as error:
            _fallback(session, "ideation", error)
        traces = session.drain()
    if not first:
        return traces, offline
    kept, duplicates = merge(first, offline, budget, seen)
    if duplicates:
        shown = ", ".join(f"{a} = {b}" for a, b in duplicates[:10])
        traces.append(
            Trace(
                job.job_id,
                agent,
                "decision",
                f"{len(duplicates)} proposals were duplicates by canonical expression: {shown}",
                {"duplicates": duplicates},
            )
        )
    return traces, kept


def attribute(traces: list[Trace], prompt: str, feature_ids: list[str]) -> list[Trace]:
    """Charge the LLM calls made with `prompt` to the features they produced (usage per feature)."""
    out = []
    for t in traces:
        if t.data and isinstance(t.data.get("llm"), dict) and t.data["llm"].get("prompt") == prompt:
            t = Trace(t.job_id, t.agent, t.kind, t.message, {**t.data, "feature_ids": feature_ids})
        out.append(t)
    return out


def competing_code(
    services: LLMServices,
    session: LLMSession,
    feature: Feature,
    spec: FeatureSpec,
    offline: GeneratedCode,
    frame: pl.DataFrame,
    run: Any,
) -> Outcome | None:
    """Several implementations of `feature`, run on a sample; None when no model could write one."""
    columns = [c for c in dict.fromkeys(spec.columns) if c in frame.columns]
    sample = frame.select(columns).head(2000)
    types = {c: str(sample.schema[c]) for c in columns}
    entries = write_codes(session, feature.proposal.name, feature.proposal.description, spec, types, feature.feature_id)
    if all(e.code is None for e in entries):
        return None
    outcome = compete(entries, offline, sample.to_arrow(), run)
    losers = "; ".join(f"{e.label}: {why}" for e, why in outcome.losers)
    session.trace(
        "decision",
        f"{feature.proposal.name}: {outcome.winner.label}'s code wins "
        f"(agrees with {len(outcome.winner.agrees_with)}, {outcome.winner.ms:.1f} ms); losers: {losers}",
        {"competition": outcome.summary(), "feature_ids": [feature.feature_id]},
    )
    return outcome


def semantics_of(profile_json: str) -> dict[str, Any]:
    return dict(json.loads(profile_json).get("semantics") or {})
