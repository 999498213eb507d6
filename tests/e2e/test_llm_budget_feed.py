"""An exhausted LLM budget over the HTTP API: LLM use stops, the offline agents finish the job,
and the SSE feed says so; the job and its usage show the tokens spent (real `anthropic` SDK,
recorded transport, no network)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest

from gateway.app import create_app
from gateway.auth import create_api_key
from gateway.runtime_wiring import build_runtime, build_store
from gateway.settings import Settings
from processors.llm import Limits, LLMServices, Models
from processors.llm.claude import AnthropicLLM
from processors.sources.policy import tenant_folder
from tests.llm_replay import AnthropicReplay

pytestmark = [pytest.mark.clickhouse, pytest.mark.slow]


@pytest.fixture
def api(tmp_path: Path, serve: Any) -> Iterator[tuple[str, dict[str, str], AnthropicReplay]]:
    from sklearn.datasets import load_diabetes

    settings = Settings(data_dir=tmp_path / "state", secret_key="an-e2e-secret-that-is-long-enough!")
    area = settings.data_dir / "uploads" / tenant_folder("acme")
    area.mkdir(parents=True)
    pl.from_pandas(load_diabetes(as_frame=True, scaled=False).frame).write_csv(area / "diabetes.csv")
    store = build_store(settings)
    runtime = build_runtime(settings, store)
    replay = AnthropicReplay()
    runtime.bench.llm = LLMServices(
        llm=AnthropicLLM("test-key", http_client=replay.client()),
        models=Models("claude-sonnet-5-5", "claude-haiku-5-5", ("claude-sonnet-5-5",)),
        limits=Limits(budget_tokens=1_000_000),
        data_dir=settings.data_dir,
        sleep=lambda seconds: None,
    )
    runtime.start(poll_seconds=0.1)
    with serve(create_app(settings, store=store, runtime=runtime)) as url:
        headers = {"Authorization": f"Bearer {create_api_key(settings, 'acme', 'admin')}"}
        assert httpx.post(f"{url}/projects", json={"name": "p", "id": "p1"}, headers=headers).status_code == 201
        yield url, headers, replay
    runtime.stop()
    store.close()


def test_an_exhausted_token_budget_stops_llm_use_and_shows_on_the_sse_feed(api) -> None:
    url, headers, replay = api
    body = {
        "project_id": "p1",
        "source": "upload://diabetes.csv",
        "target": "target",
        "max_candidates": 20,
        "llm_budget_tokens": 1000,  # the schema agent's first call alone spends 1,326
    }
    created = httpx.post(f"{url}/jobs", json=body, headers=headers)
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]

    traces: list[dict[str, Any]] = []
    end = None
    params = {"event_types": "agent_trace,job_completed,job_failed"}
    with httpx.stream("GET", f"{url}/jobs/{job_id}/events", params=params, headers=headers, timeout=180) as feed:
        event: dict[str, Any] = {}
        for line in feed.iter_lines():
            if line.startswith("event:"):
                event["event"] = line.partition(":")[2].strip()
            elif line.startswith("data:"):
                event["data"] = json.loads(line.partition(":")[2])
            elif not line and "data" in event:
                if event["event"] == "agent_trace":
                    traces.append(event["data"])
                elif event["event"] in ("job_completed", "job_failed"):
                    end = event["event"]
                    break
                event = {}
    assert end == "job_completed"
    assert len(replay.requests) == 1, "one call, then the budget was spent: no more LLM calls"
    exhausted = [t for t in traces if (t["trace"]["data"] or {}).get("llm_budget", {}).get("exhausted")]
    assert exhausted, "the feed says the budget is exhausted"
    first = exhausted[0]
    assert first["agent_type"] == "schema" and first["trace"]["type"] == "decision"
    assert "LLM budget exhausted (1,326 of 1,000 tokens used)" in first["trace"]["content"]
    assert "offline agents take over" in first["trace"]["content"]
    agents = {t["agent_type"] for t in exhausted}
    assert {"schema", "ideation", "codegen"} <= agents  # each agent that would have used the model says so
    calls = [t for t in traces if "llm" in (t["trace"]["data"] or {})]
    assert [c["trace"]["data"]["llm"]["tokens_in"] for c in calls] == [1184]

    job = httpx.get(f"{url}/jobs/{job_id}", headers=headers).json()
    assert job["llm_usage"]["tokens"] == 1326 and job["llm_usage"]["budget_exhausted"] is True
    usage = httpx.get(f"{url}/jobs/{job_id}/usage", headers=headers).json()
    assert usage["by_agent"]["schema"]["calls"] == 1 and usage["by_feature"] == {}
    refused = httpx.post(f"{url}/jobs", json={**body, "llm_budget_tokens": -1}, headers=headers)
    assert refused.status_code == 422
