"""Ideation with a model: proposals from the schema and the domain research, each with a rationale.

A proposal is either an operator of the typed grammar (`domain/spec.py`) or a formula over
column names; both become a `FeatureSpec` the code generator accepts, or are dropped with
the reason in the trace. Proposals are deduplicated against each other and against the
offline proposers' by canonical expression (`expressions.canonical`): the first kept wins
and inherits the other's sources.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

from pydantic import BaseModel, Field

from domain.spec import FeatureSpec
from domain.validation import printable
from processors.codegen import UnsupportedSpec
from processors.ideation import Proposal, Proposer
from processors.llm.expressions import GRAMMAR_OPS, canonical, formula_spec, grammar_spec
from processors.llm.session import LLMSession, tool_request, tool_schema
from processors.llm.web_research import WebFeature
from processors.operators import sanitize
from processors.profiling import TableProfile
from processors.research import Research


class Idea(BaseModel):
    name: str = Field(max_length=80)
    description: str = Field(max_length=500)
    rationale: str = Field(max_length=1000)
    formula: str | None = Field(default=None, max_length=500, description="arithmetic over column names")
    op: str | None = Field(default=None, description="an operator of the grammar, instead of a formula")
    columns: list[str] = Field(default_factory=list)
    params: dict[str, Any] = Field(default_factory=dict)
    sources: list[str] = Field(default_factory=list)
    expected_value: float = Field(default=0.6, ge=0.0, le=1.0)


class Ideas(BaseModel):
    features: list[Idea] = Field(max_length=100)


PROPOSE_TOOL = tool_schema("propose_features", "The candidate features, best first.", Ideas)


def definition(spec: FeatureSpec) -> str:
    """How a spec reads to a model: a formula over backticked column names, or the op with its columns."""
    if spec.op == "formula":
        expr = re.sub(
            r"\bx(\d+)\b",
            lambda m: f"`{spec.columns[int(m.group(1))]}`" if int(m.group(1)) < len(spec.columns) else m.group(0),
            str(spec.param("expr", "")),
        )
        return f"formula: {expr}"
    params = {k: v for k, v in spec.params if k != "label"}
    cols = ", ".join(f"`{c}`" for c in spec.columns)
    return f"op: {spec.op}({cols})" + (f" params {json.dumps(params, sort_keys=True)}" if params else "")


def research_digest(found: Research, web: dict[str, Any], web_ideas: Sequence[WebFeature]) -> str:
    lines = [f"domains: {', '.join(f'{d.domain} ({d.confidence:.0%})' for d in found.domains) or 'none recognised'}"]
    for f in found.findings[:30]:
        unit = f" [{f.unit}]" if f.unit else ""
        lines.append(f"- column `{f.column}`: {f.meaning}{unit}")
    for note in web.get("columns", [])[:30]:
        unit = f" [{note['unit']}]" if note.get("unit") else ""
        lines.append(f"- column `{note['column']}`: {note['meaning']}{unit} (web)")
    for k in found.features[:40]:
        lines.append(f"- known {k.name}: {definition(k.spec)} | {k.rationale} | source: {k.source}")
    for w in web_ideas[:20]:
        spec = FeatureSpec.from_dict(w.spec_json)
        lines.append(f"- known {w.name}: {definition(spec)} | {w.rationale} | source: {', '.join(w.sources)}")
    if web.get("summary"):
        lines.append(f"web summary: {web['summary']}")
    for page in web.get("sources", [])[:10]:
        lines.append(f"- source {page['url']}: {page['title']}")
    return "\n".join(lines)


def llm_proposals(
    session: LLMSession,
    profile: TableProfile,
    found: Research,
    findings: dict[str, Any],
    web_ideas: Sequence[WebFeature],
    budget: int,
    semantics: dict[str, Any] | None = None,
) -> list[Proposal]:
    """The model's valid proposals (at most `budget`); raises LLMUnavailable / BudgetExhausted."""
    usable = [c.name for c in profile.features]
    schema = findings_semantics(profile, semantics or {})
    ideas = session.structured(
        tool_request(
            "ideation",
            tools=(PROPOSE_TOOL,),
            force="propose_features",
            max_tokens=8192,
            budget=min(budget, 40),
            target=profile.target,
            task=profile.task,
            ops=", ".join(GRAMMAR_OPS),
            column_names=", ".join(usable),
            schema=schema,
            research=research_digest(found, findings.get("web") or {}, web_ideas),
        ),
        "propose_features",
        Ideas,
    )
    allowed_sources = set(found.sources) | {p["url"] for p in (findings.get("web") or {}).get("sources", [])}
    out: list[Proposal] = []
    for idea in ideas.features[: max(0, budget)]:
        try:
            spec = _spec(idea, usable)
        except UnsupportedSpec as error:
            session.trace("thought", f"proposal {idea.name} dropped: {error}")
            continue
        sources = tuple(dict.fromkeys(u for u in idea.sources if u in allowed_sources))
        if len(sources) < len(idea.sources):
            session.trace("thought", f"proposal {idea.name}: dropped sources the research never read")
        out.append(
            Proposal(
                name=sanitize(idea.name)[:80] or "llm_feature",
                description=printable(idea.description, 500),
                rationale=printable(idea.rationale, 1000),
                spec=spec,
                source_columns=tuple(dict.fromkeys(spec.columns)),
                expected_value=round(idea.expected_value, 4),
                proposer="llm",
                domain_sources=sources,
            )
        )
    return out


def web_proposals(web_ideas: Iterable[WebFeature]) -> list[Proposal]:
    """The web research's derived features, as proposals citing their pages."""
    out = []
    for w in web_ideas:
        spec = FeatureSpec.from_dict(w.spec_json)
        out.append(
            Proposal(
                name=sanitize(w.name)[:80] or "web_feature",
                description=printable(f"{w.name.replace('_', ' ')}: {definition(spec)}", 500),
                rationale=printable(w.rationale, 1000),
                spec=spec,
                source_columns=tuple(dict.fromkeys(spec.columns)),
                expected_value=0.7,
                proposer="web_research",
                domain_sources=w.sources,
            )
        )
    return out


def merge(
    first: Sequence[Proposal], rest: Sequence[Proposal], budget: int, seen: set[str]
) -> tuple[list[Proposal], list[tuple[str, str]]]:
    """`first` then `rest`, one per canonical expression and name, at most `budget`;
    also the (dropped name, kept name) pairs of the duplicates."""
    kept: dict[str, Proposal] = {}
    names = set(seen)
    duplicates: list[tuple[str, str]] = []
    for p in [*first, *rest]:
        key = canonical(p.spec)
        if key in kept:
            old = kept[key]
            kept[key] = replace(old, domain_sources=tuple(dict.fromkeys((*old.domain_sources, *p.domain_sources))))
            duplicates.append((p.name, old.name))
            continue
        if key in seen:
            continue
        name = p.name
        suffix: Proposer = p.proposer
        while name in names:
            name = f"{p.name}_{suffix}" if name == p.name else f"{name}_"
        names.add(name)
        kept[key] = replace(p, name=name)
    return list(kept.values())[: max(0, budget)], duplicates


def findings_semantics(profile: TableProfile, semantics: dict[str, Any]) -> str:
    units = semantics.get("units") or {}
    lines = [
        f"- `{c.name}`: {c.kind}, {c.n_unique} distinct, {c.null_rate:.0%} null, single-column score "
        f"{c.target_score:.2f}" + (f", unit {units[c.name]}" if c.name in units else "")
        for c in profile.features[:80]
    ]
    if semantics.get("entity"):
        lines.append(f"entity: {', '.join(semantics['entity'])}")
    if semantics.get("time_columns"):
        lines.append(f"time columns: {', '.join(semantics['time_columns'])}")
    usable = {c.name for c in profile.features}
    kept = {f.column for f in profile.leakage} & usable  # suspects the user vouched for (--keep)
    for suspect in semantics.get("leakage_suspects") or []:
        if suspect["column"] not in kept:
            lines.append(f"leakage suspect (avoid): `{suspect['column']}`: {suspect['reason']}")
    for column in sorted(kept):
        lines.append(f"kept by the user although it looks like leakage (a legitimate input): `{column}`")
    return "\n".join(lines)


def _spec(idea: Idea, usable: list[str]) -> FeatureSpec:
    if idea.formula and (idea.op in (None, "formula")):
        return formula_spec(idea.formula, usable, idea.name)
    if idea.op == "formula" and "expr" in idea.params:
        return formula_spec(str(idea.params["expr"]), usable, idea.name)
    if idea.op is None:
        raise UnsupportedSpec("neither a formula nor an op")
    unknown = [c for c in idea.columns if c not in usable]
    if unknown:
        raise UnsupportedSpec(f"unknown columns {', '.join(unknown)}")
    return grammar_spec(idea.op, idea.columns, idea.params, idea.name)
