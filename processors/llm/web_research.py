"""Domain research with the web: a small model plans queries, Tavily searches and extracts,
a large model synthesises, and every claim keeps its sources (url, title, retrieved_at, excerpt).

Searches and extractions are cached by normalised query / URL under the data dir, so a
rerun or a second job on the same domain reads the web once. The synthesis's derived
features become candidate specs (`formula_spec`), each citing the pages it came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from processors.codegen import UnsupportedSpec
from processors.llm.expressions import formula_spec
from processors.llm.port import SearchResult, WebPage
from processors.llm.semantics import describe_columns
from processors.llm.session import LLMSession, tool_request, tool_schema
from processors.llm.web import WebSearchError
from processors.profiling import TableProfile
from processors.research import Research

RESULTS_PER_QUERY = 5
EXTRACTED_PAGES = 3


class QueryPlan(BaseModel):
    domain: str = Field(max_length=100)
    queries: list[str] = Field(min_length=1, max_length=5)


class ColumnNote(BaseModel):
    column: str
    meaning: str = Field(max_length=500)
    unit: str | None = None
    typical_range: list[float] | None = Field(default=None, min_length=2, max_length=2)


class DerivedFeature(BaseModel):
    name: str = Field(max_length=80)
    formula: str = Field(max_length=500)
    rationale: str = Field(max_length=1000)
    sources: list[str] = Field(default_factory=list)


class Synthesis(BaseModel):
    domain: str = Field(max_length=100)
    summary: str = Field(max_length=3000)
    columns: list[ColumnNote] = Field(default_factory=list)
    features: list[DerivedFeature] = Field(default_factory=list)


PLAN_TOOL = tool_schema("plan_queries", "The table's domain and the web searches to run.", QueryPlan)
SYNTHESIS_TOOL = tool_schema("report_research", "What the search results say about the table.", Synthesis)


@dataclass(frozen=True)
class WebFeature:
    name: str
    spec_json: dict[str, Any]
    rationale: str
    sources: tuple[str, ...]


def web_research(session: LLMSession, profile: TableProfile, found: Research, now: str) -> dict[str, Any]:
    """The `web` part of DomainResearched's findings; raises LLMUnavailable / BudgetExhausted."""
    services = session.services
    search = services.search
    assert search is not None, "web research needs a search service"
    columns = describe_columns(profile)
    plan = session.structured(
        tool_request(
            "research_queries",
            tools=(PLAN_TOOL,),
            force="plan_queries",
            max_tokens=512,
            max_queries=services.limits.search_queries,
            target=profile.target,
            task=profile.task,
            known_domains=", ".join(d.domain for d in found.domains) or "none",
            columns=columns,
        ),
        "plan_queries",
        QueryPlan,
    )
    pages: dict[str, dict[str, Any]] = {}
    for query in plan.queries[: services.limits.search_queries]:
        result = _search(session, query, now)
        for page in result["pages"]:
            pages.setdefault(page["url"], page)
    if not pages:
        session.trace("decision", "the web searches found nothing; research keeps to the knowledge base")
        return {"domain": plan.domain, "queries": plan.queries, "summary": "", "sources": [], "features": []}
    ranked = sorted(pages.values(), key=lambda p: -float(p.get("score") or 0.0))
    texts = _extract(session, [p["url"] for p in ranked[:EXTRACTED_PAGES]])
    listing = "\n\n".join(
        f"[{i}] {p['title']}\nurl: {p['url']}\nexcerpt: {p['excerpt']}"
        + (f"\nextracted text: {texts[p['url']][:3000]}" if texts.get(p["url"]) else "")
        for i, p in enumerate(ranked[:10], start=1)
    )
    synthesis = session.structured(
        tool_request(
            "research_synthesis",
            tools=(SYNTHESIS_TOOL,),
            force="report_research",
            max_tokens=4096,
            target=profile.target,
            task=profile.task,
            column_names=", ".join(c.name for c in profile.features),
            results=listing,
        ),
        "report_research",
        Synthesis,
    )
    known = {c.name for c in profile.features}
    features = []
    cited: set[str] = set()
    for idea in synthesis.features:
        sources = tuple(u for u in idea.sources if u in pages)
        try:
            spec = formula_spec(idea.formula, known, idea.name)
        except UnsupportedSpec as error:
            session.trace("thought", f"research idea {idea.name} left out: {error}")
            continue
        cited.update(sources)
        features.append({"name": idea.name, "spec": spec.to_dict(), "rationale": idea.rationale, "sources": sources})
    session.trace(
        "decision",
        f"web research: domain {synthesis.domain}; {len(synthesis.columns)} columns explained, "
        f"{len(features)} derived features with sources, from {len(pages)} pages",
        {"sources": sorted(cited)},
    )
    return {
        "domain": synthesis.domain,
        "queries": plan.queries,
        "summary": synthesis.summary,
        "columns": [c.model_dump() for c in synthesis.columns if c.column in known],
        "features": features,
        # every page the synthesis read; the cited ones first
        "sources": sorted(pages.values(), key=lambda p: (p["url"] not in cited, -float(p.get("score") or 0.0))),
    }


def _search(session: LLMSession, query: str, now: str) -> dict[str, Any]:
    services = session.services
    cache = services.search_cache
    key = cache.normalise(query)
    session.trace("tool_call", f"tavily.search({query!r})", {"tool": "web_search", "input": {"query": query}})
    stored = cache.get("search", key)
    if stored is not None:
        session.trace(
            "tool_result",
            f"{len(stored['pages'])} results for {query!r} (cached, retrieved {stored['retrieved_at']})",
            {"web": {"query": query, "cached": True, "urls": [p["url"] for p in stored["pages"]]}},
        )
        return dict(stored)
    assert services.search is not None
    try:
        result: SearchResult = services.search.search(query, RESULTS_PER_QUERY)
    except WebSearchError as error:
        session.trace("tool_result", f"search failed: {error}", {"web": {"query": query, "error": str(error)}})
        return {"query": query, "retrieved_at": now, "pages": []}
    stored = {
        "query": query,
        "retrieved_at": now,
        "pages": [{**_page(p), "retrieved_at": now} for p in result.pages],
    }
    cache.put("search", key, stored)
    session.trace(
        "tool_result",
        f"{len(result.pages)} results for {query!r}: " + "; ".join(p.title for p in result.pages)[:300],
        {
            "web": {
                "query": query,
                "cached": False,
                "latency_ms": result.latency_ms,
                "urls": [p.url for p in result.pages],
            }
        },
    )
    return stored


def _extract(session: LLMSession, urls: list[str]) -> dict[str, str]:
    services = session.services
    cache = services.search_cache
    texts = {u: cache.get("extract", u) for u in urls}
    missing = [u for u, t in texts.items() if t is None]
    if missing and services.search is not None:
        session.trace("tool_call", f"tavily.extract({len(missing)} pages)", {"tool": "web_extract", "input": missing})
        try:
            fetched = services.search.extract(missing)
        except WebSearchError as error:
            session.trace("tool_result", f"extract failed: {error}", {"tool": "web_extract", "ok": False})
            fetched = {}
        for url, text in fetched.items():
            cache.put("extract", url, text)
            texts[url] = text
        session.trace(
            "tool_result",
            f"read {len(fetched)} of {len(missing)} pages",
            {"tool": "web_extract", "ok": True, "chars": {u: len(t) for u, t in fetched.items()}},
        )
    return {u: str(t) for u, t in texts.items() if t}


def _page(page: WebPage) -> dict[str, Any]:
    return page.to_dict()


def web_features(findings: dict[str, Any]) -> list[WebFeature]:
    """The synthesis's derived features recorded in DomainResearched's findings (may be none)."""
    web = findings.get("web") or {}
    return [
        WebFeature(str(f["name"]), dict(f["spec"]), str(f["rationale"]), tuple(f.get("sources", ())))
        for f in web.get("features", [])
    ]


def source_records(findings: dict[str, Any]) -> list[dict[str, Any]]:
    """(url, title, retrieved_at, excerpt) of every page the web research read."""
    web = findings.get("web") or {}
    return [{k: p.get(k) for k in ("url", "title", "retrieved_at", "excerpt")} for p in web.get("sources", [])]
