"""Whole jobs with the agents thinking through the real `anthropic` and `tavily-python` SDKs,
replaying recorded responses (tests/fixtures/llm), no network.

The table is sklearn's diabetes study (442 patients, age, sex, BMI, blood pressure, six serum
measurements; target: disease progression a year later), a medical table no knowledge-base
domain recognises: everything domain-specific here comes from the recorded research.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from commands.store import EventStore
from commands.unit_of_work import execute, load_job
from domain.envelope import Context
from domain.job import RequestJob
from gateway.runtime_wiring import build_runtime, build_store
from gateway.settings import Settings
from processors.codegen import is_generated
from processors.export import export_job, job_features
from processors.llm import Limits, LLMServices, Models
from processors.llm.claude import AnthropicLLM
from processors.llm.usage import job_usage
from processors.llm.web import TavilySearch
from processors.sources import SourcePolicy
from projections.database import Database
from projections.lineage import feature_lineage
from projections.projector import Projector
from tests.llm_replay import AnthropicReplay, TavilyReplay

pytestmark = pytest.mark.slow

CIRCULATION = "https://www.ahajournals.org/doi/10.1161/01.CIR.0000034508.55030.7A"
DIABETES_CARE = "https://diabetesjournals.org/care/article/27/6/1487/22734/Metabolic-Syndrome-and-Risk-of-Diabetes"
MODELS = Models("claude-sonnet-5-5", "claude-haiku-5-5", ("claude-sonnet-5-5", "claude-haiku-5-5"))


@dataclass
class Run:
    store: EventStore
    job_id: str
    settings: Settings
    anthropic: AnthropicReplay
    tavily: TavilyReplay | None
    sleeps: list[float]

    def traces(self, agent: str | None = None) -> list[Any]:
        return [
            e.event
            for e in self.store.read_all(after=0, limit=100_000)
            if e.event_type == "AgentTraced"
            and e.event.job_id == self.job_id
            and (agent is None or e.event.agent == agent)
        ]


def diabetes(path: Path) -> Path:
    from sklearn.datasets import load_diabetes

    frame = pl.from_pandas(load_diabetes(as_frame=True, scaled=False).frame)
    frame.write_csv(path)
    return path


def run_job(
    root: Path,
    anthropic: AnthropicReplay,
    tavily: TavilyReplay | None,
    *,
    llm_budget_tokens: int | None = None,
    competing: int = 1,
) -> Run:
    settings = Settings(data_dir=root / "state")
    store = build_store(settings)
    runtime = build_runtime(settings, store, policy=SourcePolicy.local(settings.data_dir))
    sleeps: list[float] = []
    runtime.bench.llm = LLMServices(
        llm=AnthropicLLM("test-key", http_client=anthropic.client()),
        models=MODELS,
        limits=Limits(competing_features=competing),
        search=None if tavily is None else TavilySearch("tvly-test-key", session=tavily.session()),
        data_dir=settings.data_dir,
        sleep=sleeps.append,
    )
    job_id = str(uuid.uuid4())
    source = str(diabetes(root / "diabetes.csv"))
    command = RequestJob(
        job_id, "default", source, None, "target", "auto", 120.0, 0, 1, 30, llm_budget_tokens=llm_budget_tokens
    )
    execute(store, [(command, Context(at=datetime.now(UTC), actor="test", correlation_id=job_id))])
    try:
        runtime.run_until_idle(until=lambda: load_job(store, job_id).terminal)  # type: ignore[union-attr]
    finally:
        runtime.stop()
    return Run(store, job_id, settings, anthropic, tavily, sleeps)


@pytest.fixture(scope="module")
def medical(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return run_job(tmp_path_factory.mktemp("medical"), AnthropicReplay(), TavilyReplay())


def test_medical_job_cites_the_recorded_sources_in_its_features_lineage(medical: Run) -> None:
    job = load_job(medical.store, medical.job_id)
    assert job is not None and job.status == "completed", job and job.failure
    research = job.research
    assert research is not None
    assert CIRCULATION in research.sources and DIABETES_CARE in research.sources
    web = json.loads(research.findings_json)["web"]
    pages = {p["url"]: p for p in web["sources"]}
    assert pages[CIRCULATION]["title"].startswith("Total Cholesterol/HDL Ratio")
    assert pages[CIRCULATION]["retrieved_at"] and "strongest lipid predictor" in pages[CIRCULATION]["excerpt"]

    features = {f.proposal.name: f for f in job_features(medical.store, job)}
    # the model's and the web's ideas, validated against the grammar; duplicates merged; the bad one dropped
    assert features["ldl_hdl_ratio"].proposal.proposer == "llm"
    assert CIRCULATION in features["ldl_hdl_ratio"].proposal.domain_sources
    assert json.loads(features["ldl_hdl_ratio"].proposal.spec_json) == {
        "op": "formula",
        "columns": ["s2", "s3"],
        "params": {"expr": "x0 / x1", "label": "ldl_hdl_ratio"},
    }
    assert features["metabolic_load"].proposal.proposer == "web_research"
    assert features["bmi_by_sex"].proposal.spec_json.startswith('{"columns": ["bmi", "sex"], "op": "group_diff"')
    assert "glucose_per_insulin" not in features  # no such columns: dropped with the reason
    tc_hdl = [f for f in features.values() if json.loads(f.proposal.spec_json)["columns"] == ["s1", "s3"]]
    assert len(tc_hdl) == 1, "the model's tc_hdl_ratio and the research's are one candidate"

    # the read model's lineage: feature -> cites -> the page, with its title, date and excerpt
    db = Database(medical.settings.readmodel_db_path)
    projector = Projector(db, medical.store)
    projector.create_tables()
    projector.catch_up()
    graph = feature_lineage(db, "default", features["ldl_hdl_ratio"].feature_id)
    cited = [e["dst_id"] for e in graph["edges"] if e["relation"] == "cites"]
    assert cited == [CIRCULATION]
    node = next(n for n in graph["nodes"] if n["id"] == CIRCULATION)
    assert node["title"].startswith("Total Cholesterol/HDL Ratio") and node["retrieved_at"] and node["excerpt"]

    exported = export_job(medical.store, medical.job_id, medical.settings.data_dir / "out")
    assert exported["status"] == "completed"
    assert exported["llm_usage"]["calls"] == len(medical.anthropic.requests)


def test_medical_job_trace_shows_the_tool_calls_with_model_tokens_latency_cost(medical: Run) -> None:
    schema = medical.traces("schema")
    calls = [t for t in schema if t.kind == "tool_call"]
    assert any(t.message.startswith("run_sql(") and "GROUP BY sex" in t.message for t in calls)
    result = next(t for t in schema if t.kind == "tool_result" and t.message.startswith("run_sql"))
    assert "235" in result.message and "207" in result.message  # the query really ran on the snapshot
    # the model saw the result in its next turn
    second = medical.anthropic.requests[1]
    assert second["messages"][-1]["content"][0]["type"] == "tool_result"
    semantics = next(t for t in schema if t.kind == "decision" and t.message.startswith("semantics"))
    assert json.loads(semantics.data_json)["semantics"]["units"]["bmi"] == "kg/m2"

    research = medical.traces("research")
    searches = [t.message for t in research if t.kind == "tool_call" and t.message.startswith("tavily.search")]
    assert len(searches) == 2
    assert [p for p, _ in medical.tavily.requests] == ["/search", "/search", "/extract"]  # type: ignore[union-attr]

    llm = [json.loads(t.data_json)["llm"] for t in medical.traces() if '"llm"' in t.data_json]
    assert {c["prompt"] for c in llm} == {"schema", "research_queries", "research_synthesis", "ideation", "codegen"}
    first = llm[0]
    assert first["model"] == "claude-sonnet-5-5" and first["prompt_version"] == 1
    assert (first["tokens_in"], first["tokens_out"]) == (1184, 142)
    assert first["cost_usd"] == pytest.approx((1184 * 3 + 142 * 15) / 1e6)
    assert first["latency_ms"] >= 0 and not first["cached"]
    queries = next(c for c in llm if c["prompt"] == "research_queries")
    assert queries["model"] == "claude-haiku-5-5"  # classification: the small model

    usage = job_usage(medical.store, medical.job_id)
    assert usage.total.calls == len(medical.anthropic.requests) == 7  # schema 2, research 2, ideation 1, code 2
    assert usage.total.tokens == sum(c["tokens_in"] + c["tokens_out"] for c in llm)
    assert usage.by_agent["research"].searches == 2
    ideas = [fid for fid, u in usage.by_feature.items() if u.tokens]
    assert ideas, "the ideation call and the competing code are charged to features"


def test_competing_codegen_records_the_winner_and_the_losers_reason(medical: Run) -> None:
    job = load_job(medical.store, medical.job_id)
    assert job is not None
    decision = next(t for t in medical.traces("codegen") if '"competition"' in t.data_json)
    competition = json.loads(decision.data_json)["competition"]
    entries = {e["implementation"]: e for e in competition["entries"]}
    assert set(entries) == {"offline", "claude-sonnet-5-5", "claude-haiku-5-5"}
    assert competition["winner"] in ("offline", "claude-sonnet-5-5")  # they agree; the faster wins
    assert set(entries["offline"]["agrees_with"] + entries["claude-sonnet-5-5"]["agrees_with"]) == {
        "offline",
        "claude-sonnet-5-5",
    }
    haiku = entries["claude-haiku-5-5"]
    assert haiku["ok"] and haiku["result"].startswith("output disagrees with")  # it divides HDL by LDL
    assert "claude-haiku-5-5: output disagrees" in decision.message  # the feed says why it lost
    other = next(name for name in ("offline", "claude-sonnet-5-5") if name != competition["winner"])
    assert entries[other]["result"].startswith("same output, slower")

    feature = next(f for f in job_features(medical.store, job) if f.proposal.name == "ldl_hdl_ratio")
    assert feature.code is not None and feature.execution is not None and feature.execution.ok
    assert feature.code.code_hash == entries[competition["winner"]]["code_hash"]
    # model-written code is never AFEP's trusted code: it runs in a confined process of its own
    assert is_generated(feature.proposal.spec_json, feature.code.code) == (competition["winner"] == "offline")


def test_provider_failing_429_then_529_then_malformed_output_falls_back_and_completes(tmp_path: Path) -> None:
    anthropic = AnthropicReplay([AnthropicReplay.rate_limited("1"), AnthropicReplay.overloaded()], then="malformed")
    run = run_job(tmp_path, anthropic, TavilyReplay())
    job = load_job(run.store, run.job_id)
    assert job is not None and job.status == "completed", job and job.failure
    assert anthropic.answers[:3] == ["HTTP 429", "HTTP 529", "malformed"]
    assert run.sleeps[:2] == [1.0, 1.0]  # retry-after honoured, then exponential backoff
    messages = [t.message for t in run.traces()]
    assert any("rate_limited" in m and "retrying in 1.0 s" in m for m in messages)
    assert any("overloaded" in m and "retrying" in m for m in messages)
    assert any("asking it to repair it" in m for m in messages)
    fallbacks = [m for m in messages if "the offline agent takes over" in m]
    assert any("semantics" in m for m in fallbacks) and any("ideation" in m for m in fallbacks)
    assert any("web research" in m and "malformed output after a repair" in m for m in fallbacks)
    proposers = {f.proposal.proposer for f in job_features(run.store, job)}
    assert proposers <= {"knowledge_base", "operator_search", "feedback"}
    assert all(f.code is not None and "written" not in f.code.code for f in job_features(run.store, job))
    assert job.selected_ids is not None


def test_accepted_research_extends_the_knowledge_base_for_later_offline_jobs(medical: Run, tmp_path: Path) -> None:
    from processors.llm.learning import learn
    from processors.profiling import TableProfile
    from processors.research import research
    from processors.workbench import Workbench

    job = load_job(medical.store, medical.job_id)
    assert job is not None and job.research is not None and job.schema is not None
    features = job_features(medical.store, job)
    # what the job itself accepted was learned by the knowledge agent, said on the feed
    accepted = [
        f
        for f in features
        if f.feature_id in job.selected_ids
        and f.proposal.proposer in ("llm", "web_research")
        and f.proposal.domain_sources
    ]
    learned = [t for t in medical.traces("knowledge") if t.kind == "decision"]
    assert bool(learned) == bool(accepted)
    if accepted:
        assert (medical.settings.data_dir / "knowledge" / "learned.json").exists()

    chosen = [f for f in features if f.proposal.name in ("ldl_hdl_ratio", "metabolic_load")]
    findings = json.loads(job.research.findings_json)
    directory = tmp_path / "knowledge"
    assert learn(directory, chosen, findings) == ["ldl_hdl_ratio", "metabolic_load"]
    assert learn(directory, chosen, findings) == [], "learning twice adds nothing"
    offline = Workbench(datasets_dir=tmp_path, artifacts_dir=tmp_path, knowledge_dir=directory)
    profile = TableProfile.from_dict(json.loads(job.schema.profile_json))
    found = research(profile, offline.knowledge_base())  # the offline research, no model, no web
    known = {k.name: k for k in found.features}
    assert known["ldl_hdl_ratio"].source == CIRCULATION and known["metabolic_load"].source == DIABETES_CARE
    assert known["ldl_hdl_ratio"].spec.columns == ("s2", "s3")
    s3 = found.finding("s3")
    assert s3 is not None and s3.meaning == "HDL cholesterol" and s3.unit == "mg/dL"
