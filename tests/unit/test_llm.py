"""The LLM session's policy (retries, budget, cache, coalescing, repair, refusal) through the real
`anthropic` SDK on a recorded transport; formulas to specs and canonical expressions; choosing a
winner among competing implementations; the prompt files."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx2
import numpy as np
import pytest
from pydantic import BaseModel

from commands.memory_store import InMemoryEventStore
from commands.unit_of_work import execute, load_job
from domain.envelope import Context
from domain.job import RequestJob
from domain.spec import FeatureSpec
from processors.codegen import UnsupportedSpec, generate_code
from processors.llm import BudgetExhausted, Limits, LLMServices, LLMUnavailable, Models
from processors.llm.claude import AnthropicLLM, cost_usd, retry_after
from processors.llm.competition import Entry, compete
from processors.llm.expressions import canonical, formula_spec
from processors.llm.ideas import merge, web_proposals
from processors.llm.prompts import prompt
from processors.llm.session import tool_request
from processors.llm.web_research import WebFeature
from sandbox.limits import SandboxResult
from tests.llm_replay import AnthropicReplay, recorded


class Plan(BaseModel):
    domain: str
    queries: list[str]


def job(store: InMemoryEventStore, at: Any, budget: int | None = None) -> Any:
    command = RequestJob("j1", "p", "data.csv", None, "y", "auto", 60.0, 0, 1, 10, llm_budget_tokens=budget)
    execute(store, [(command, Context(at=at, actor="t", correlation_id="j1"))])
    return load_job(store, "j1")


def services(replay: AnthropicReplay, tmp_path: Path | None = None, **limits: Any) -> tuple[LLMServices, list[float]]:
    sleeps: list[float] = []
    return (
        LLMServices(
            llm=AnthropicLLM("test-key", http_client=replay.client()),
            models=Models("claude-sonnet-5-5", "claude-haiku-5-5"),
            limits=Limits(**limits),
            data_dir=tmp_path,
            sleep=sleeps.append,
        ),
        sleeps,
    )


def plan_request(columns: str = "- a: numeric") -> Any:
    return tool_request(
        "research_queries",
        tools=({"name": "plan_queries", "description": "d", "input_schema": Plan.model_json_schema()},),
        force="plan_queries",
        max_queries=2,
        target="y",
        task="regression",
        known_domains="none",
        columns=columns,
    )


def test_rate_limit_and_overload_are_retried_with_retry_after_then_backoff(at: Any) -> None:
    replay = AnthropicReplay([AnthropicReplay.rate_limited("3"), AnthropicReplay.overloaded()])
    svc, sleeps = services(replay)
    store = InMemoryEventStore()
    session = svc.session(store, job(store, at), "research")
    plan = session.structured(plan_request(), "plan_queries", Plan)
    assert plan.domain.startswith("medical") and len(plan.queries) == 2
    assert sleeps == [3.0, 1.0]
    kinds = [(t.kind, t.message.split(":")[1].strip()) for t in session.traces[:2]]
    assert kinds == [("tool_result", "rate_limited"), ("tool_result", "overloaded")]
    call = session.traces[-1].data["llm"]  # type: ignore[index]
    assert call["model"] == "claude-haiku-5-5" and call["prompt"] == "research_queries"
    assert (call["tokens_in"], call["tokens_out"]) == (702, 61) and call["cost_usd"] == cost_usd(
        "claude-haiku-5-5", 702, 61
    )


def test_a_retry_after_longer_than_allowed_hands_the_work_to_the_offline_agent(at: Any) -> None:
    replay = AnthropicReplay([AnthropicReplay.rate_limited("3600")])
    svc, sleeps = services(replay, max_wait_seconds=30)
    store = InMemoryEventStore()
    session = svc.session(store, job(store, at), "research")
    with pytest.raises(LLMUnavailable, match="retry-after 3600"):
        session.ask(plan_request())
    assert sleeps == [] and len(replay.requests) == 1


def test_retries_end_after_max_attempts(at: Any) -> None:
    replay = AnthropicReplay([AnthropicReplay.overloaded() for _ in range(5)])
    svc, sleeps = services(replay, max_attempts=3)
    store = InMemoryEventStore()
    with pytest.raises(LLMUnavailable, match="gave up after 3 attempts"):
        svc.session(store, job(store, at), "research").ask(plan_request())
    assert sleeps == [0.5, 1.0] and len(replay.requests) == 3


def test_malformed_output_is_sent_back_once_for_repair(at: Any) -> None:
    replay = AnthropicReplay([httpx2.Response(200, json=recorded("anthropic/malformed"))])
    svc, _ = services(replay)
    store = InMemoryEventStore()
    session = svc.session(store, job(store, at), "research")
    plan = session.structured(plan_request(), "plan_queries", Plan)
    assert plan.queries
    repair = replay.requests[1]["messages"]
    assert (
        repair[-2]["role"] == "assistant" and "Your last answer could not be used" in repair[-1]["content"][0]["text"]
    )
    assert any("asking it to repair it" in t.message for t in session.traces)


def test_malformed_twice_and_refusals_are_unavailable(at: Any) -> None:
    replay = AnthropicReplay(then="malformed")
    svc, _ = services(replay)
    store = InMemoryEventStore()
    with pytest.raises(LLMUnavailable, match="malformed output after a repair"):
        svc.session(store, job(store, at), "research").structured(plan_request(), "plan_queries", Plan)
    refusal = {**recorded("anthropic/research_queries"), "stop_reason": "refusal", "content": []}
    replay = AnthropicReplay([httpx2.Response(200, json=refusal)])
    svc, _ = services(replay)
    with pytest.raises(LLMUnavailable, match="refused"):
        svc.session(store, job(store, at), "research").ask(plan_request("- b: numeric"))


def test_a_bad_key_is_not_retried(at: Any) -> None:
    bad = httpx2.Response(
        401, json={"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}
    )
    replay = AnthropicReplay([bad])
    svc, sleeps = services(replay)
    store = InMemoryEventStore()
    with pytest.raises(LLMUnavailable, match="HTTP 401"):
        svc.session(store, job(store, at), "research").ask(plan_request())
    assert sleeps == []


def test_the_budget_counts_what_the_job_spent_and_stops_calls(at: Any) -> None:
    replay = AnthropicReplay()
    svc, _ = services(replay)
    store = InMemoryEventStore()
    current = job(store, at, budget=800)
    session = svc.session(store, current, "research")
    session.ask(plan_request())  # 763 tokens: under the budget before the call
    execute(store, [(t, Context(at=at, actor="agent:research", correlation_id="j1")) for t in session.drain()])
    again = svc.session(store, current, "ideation")  # a new session reads the spend back from the log
    assert again.used_tokens == 763
    again.ask(plan_request("- c: numeric"))
    with pytest.raises(BudgetExhausted, match="1,526 of 800 tokens"):
        again.ask(plan_request("- d: numeric"))
    with pytest.raises(BudgetExhausted):
        again.ask(plan_request("- e: numeric"))
    said = [t for t in again.traces if t.data and "llm_budget" in t.data]
    assert len(said) == 1 and said[0].kind == "decision" and len(replay.requests) == 2


def test_identical_requests_are_cached_and_coalesced(tmp_path: Path, at: Any) -> None:
    gate = threading.Event()
    replay = AnthropicReplay()
    slow = replay.__call__

    def handler(request: httpx2.Request) -> httpx2.Response:
        gate.wait(5)
        return slow(request)

    svc = LLMServices(
        llm=AnthropicLLM("test-key", http_client=httpx2.Client(transport=httpx2.MockTransport(handler))),
        models=Models("claude-sonnet-5-5", "claude-haiku-5-5"),
        data_dir=tmp_path,
    )
    store = InMemoryEventStore()
    session = svc.session(store, job(store, at), "research")
    replies: list[Any] = []
    threads = [threading.Thread(target=lambda: replies.append(session.ask(plan_request()))) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    gate.set()
    for t in threads:
        t.join()
    assert len(replay.requests) == 1, "three identical calls in flight made one request"
    assert sorted(r.cached for r in replies) == [False, True, True]
    later = svc.session(store, job(store, at), "research").ask(plan_request())
    assert later.cached and len(replay.requests) == 1, "answered from the on-disk cache"
    assert session.used_tokens == 763, "only the call that was made is billed"
    assert any(p.suffix == ".json" for p in (tmp_path / "llm" / "responses").rglob("*"))


def test_retry_after_forms() -> None:
    assert retry_after(httpx2.Headers({"retry-after-ms": "1500"})) == 1.5
    assert retry_after(httpx2.Headers({"retry-after": "7"})) == 7.0
    assert retry_after(httpx2.Headers({})) is None
    assert 0 <= retry_after(httpx2.Headers({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"})) <= 1  # type: ignore[operator]


def test_formulas_become_checked_specs_and_duplicates_share_one_canonical_form() -> None:
    cols = ["weight", "height", "chol", "hdl"]
    bmi = formula_spec("`weight` / (height / 100) ** 2", cols, "BMI_kg_m2")
    assert bmi == FeatureSpec(
        "formula", ("weight", "height"), (("expr", "x0 / (x1 / 100) ** 2"), ("label", "bmi_kg_m2"))
    )
    generate_code(bmi)
    assert canonical(formula_spec("chol / hdl", cols, "a")) == canonical(FeatureSpec("ratio", ("chol", "hdl")))
    assert canonical(formula_spec("hdl * chol + 1", cols, "a")) == canonical(formula_spec("1 + chol * hdl", cols, "b"))
    assert canonical(formula_spec("hdl / chol", cols, "a")) != canonical(FeatureSpec("ratio", ("chol", "hdl")))
    for bad in ("glucose / hdl", "__import__('os')", "chol.real", "open(chol)", "weight if hdl else chol", "3 + 4"):
        with pytest.raises(UnsupportedSpec):
            formula_spec(bad, cols, "x")


def test_merge_keeps_the_first_of_each_computation_and_joins_their_sources() -> None:
    cols = ["chol", "hdl"]
    web = web_proposals([WebFeature("tc_hdl", formula_spec("chol / hdl", cols, "tc_hdl").to_dict(), "r", ("u1",))])
    from processors.ideation import Proposal

    offline = [
        Proposal(
            "ratio_chol_hdl",
            "d",
            "r",
            FeatureSpec("ratio", ("chol", "hdl")),
            ("chol", "hdl"),
            0.5,
            "operator_search",
            ("u2",),
        ),
        Proposal("tc_hdl", "d", "r", FeatureSpec("diff", ("chol", "hdl")), ("chol", "hdl"), 0.5, "operator_search"),
    ]
    kept, duplicates = merge(web, offline, 10, set())
    assert [p.name for p in kept] == ["tc_hdl", "tc_hdl_operator_search"]
    assert kept[0].domain_sources == ("u1", "u2") and duplicates == [("ratio_chol_hdl", "tc_hdl")]


def test_the_winner_agrees_with_most_then_is_fastest_and_every_loser_has_a_reason() -> None:
    right = np.array([[1.0], [2.0], [np.nan]])
    results = {
        "offline": SandboxResult(True, None, right, 0.020, None),
        "fast": SandboxResult(True, None, right.copy(), 0.005, None),
        "wrong": SandboxResult(True, None, np.array([[1.0], [2.5], [np.nan]]), 0.001, None),
        "crash": SandboxResult.failure("error", "ZeroDivisionError", 0.01),
    }
    entries = [
        Entry("fast", "def feature(df, ref):\n    return 1\n"),
        Entry("wrong", "def feature(df, ref):\n    return 2\n"),
        Entry("crash", "def feature(df, ref):\n    return 3\n"),
        Entry("sneaky", "import os\n\ndef feature(df, ref):\n    return os.getcwd()\n"),
        Entry("silent", None, reason="no code: malformed output after a repair"),
    ]
    code = generate_code(FeatureSpec("ratio", ("a", "b")))
    order = ["offline", "fast", "wrong", "crash"]

    def run(codes: list[str], sample: Any) -> list[SandboxResult]:
        assert len(codes) == 4 and sample == "sample"  # the policy kept `sneaky` out of the sandbox
        return [results[name] for name in order]

    outcome = compete(entries, code, "sample", run)
    assert outcome.winner.label == "fast"
    reasons = {e.label: why for e, why in outcome.losers}
    assert reasons["offline"].startswith("same output, slower: 20.0 ms against 5.0 ms")
    assert reasons["wrong"].startswith("output disagrees with fast (1 of 3 rows differ, largest difference 0.5)")
    assert reasons["crash"] == "failed in the sandbox: ZeroDivisionError"
    assert reasons["sneaky"].startswith("refused by the AST policy")
    assert reasons["silent"] == "no code: malformed output after a repair"
    assert json.loads(json.dumps(outcome.summary()))["winner"] == "fast"


def test_when_no_two_agree_the_generator_is_the_reference() -> None:
    code = generate_code(FeatureSpec("ratio", ("a", "b")))
    outcome = compete(
        [Entry("m", "def feature(df, ref):\n    return 1\n")],
        code,
        None,
        lambda codes, sample: [
            SandboxResult(True, None, np.array([[1.0]]), 0.02, None),
            SandboxResult(True, None, np.array([[2.0]]), 0.01, None),
        ],
    )
    assert outcome.winner.label == "offline"
    assert outcome.losers[0][1].startswith("no two implementations agree")


def test_every_prompt_is_versioned_and_renders() -> None:
    names = [p.stem for p in (Path(__file__).parents[2] / "processors" / "llm" / "prompts").glob("*.md")]
    assert set(names) == {"schema", "research_queries", "research_synthesis", "ideation", "codegen", "repair"}
    for name in names:
        p = prompt(name)
        assert p.version >= 1 and p.task in ("reasoning", "classification", "code")
        fields = set(__import__("re").findall(r"\$(\w+)", p.template))
        assert p.render(**{f: "x" for f in fields})


def test_cli_refuses_a_bad_llm_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    from gateway.cli import main

    data = tmp_path / "d.csv"
    data.write_text("a,y\n1,0\n")
    for option, value in (("--llm-budget", "-5"), ("--llm-budget-usd", "nan")):
        monkeypatch.setattr(
            "sys.argv", ["afep", "run", str(data), "--target", "y", option, value, "--data-dir", str(tmp_path)]
        )
        with pytest.raises(SystemExit) as done:
            main()
        assert done.value.code == 2
        assert f"afep: {option} must be" in capsys.readouterr().err


def test_timeouts_are_retried_then_handed_over(at: Any) -> None:
    calls: list[int] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        calls.append(1)
        raise httpx2.ReadTimeout("timed out", request=request)

    svc = LLMServices(
        llm=AnthropicLLM("test-key", http_client=httpx2.Client(transport=httpx2.MockTransport(handler))),
        limits=Limits(max_attempts=2),
        sleep=lambda seconds: None,
    )
    store = InMemoryEventStore()
    session = svc.session(store, job(store, at), "schema")
    with pytest.raises(LLMUnavailable, match="timeout"):
        session.ask(plan_request())
    assert len(calls) == 2 and "timeout: no answer within" in session.traces[0].message


def test_the_schema_agents_sql_is_read_only_and_checked(tmp_path: Path) -> None:
    import polars as pl

    from processors.llm.semantics import _run_tool
    from processors.profiling import profile_table

    frame = pl.DataFrame({"age": [30, 40, 50, 60] * 10, "bmi": [20.0, 25.0, 30.0, 35.0] * 10, "y": [0, 1] * 20})
    snapshot = tmp_path / "snap.parquet"
    frame.write_parquet(snapshot)
    profile = profile_table(frame, "y", "classification")
    text, failed = _run_tool(
        "run_sql", {"sql": "SELECT y, AVG(bmi) AS b FROM data GROUP BY y ORDER BY y"}, profile, snapshot, frame
    )
    assert not failed and text.splitlines() == ["y,b", "0,25.0", "1,30.0"]
    for sql in (
        "DELETE FROM data",
        "SELECT * FROM read_csv('/etc/passwd')",
        "COPY data TO '/tmp/x.csv'",
        "SELECT 1; SELECT 2",
    ):
        text, failed = _run_tool("run_sql", {"sql": sql}, profile, snapshot, frame)
        assert failed, sql
    assert _run_tool("column_profile", {"column": "nope"}, profile, snapshot, frame)[1]
    assert _run_tool("sample_rows", {"n": 2}, profile, snapshot, frame)[0].splitlines()[0] == "age,bmi,y"
