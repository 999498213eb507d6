"""Recorded transports for the real SDKs, no network.

`AnthropicReplay` is an `httpx2.MockTransport` handler for the `anthropic` SDK: it answers each
Messages API request with the recorded response for that step (schema turns, query planning,
synthesis, ideation, one per coding model), or with a scripted sequence of failures first.
`TavilyReplay` is a `requests` transport adapter for `tavily-python`'s session: recorded search
results by normalised query, and the recorded extract. Both keep what they were sent.
"""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path
from typing import Any

import httpx2
import requests
from requests.adapters import BaseAdapter

FIXTURES = Path(__file__).parent / "fixtures" / "llm"


def recorded(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())  # type: ignore[no-any-return]


def step_of(body: dict[str, Any]) -> str:
    """Which recorded answer a request gets, from the tools it offers (as a model would see them)."""
    tools = {t["name"] for t in body.get("tools", [])}
    if "report_semantics" in tools:
        turns = sum(1 for m in body["messages"] if m["role"] == "assistant")
        return f"schema_{min(turns + 1, 2)}"
    if "plan_queries" in tools:
        return "research_queries"
    if "report_research" in tools:
        return "research_synthesis"
    if "propose_features" in tools:
        return "ideation"
    if "submit_code" in tools:
        return "codegen_haiku" if "haiku" in body["model"] else "codegen_sonnet"
    raise AssertionError(f"no recorded answer for tools {sorted(tools)}")


class AnthropicReplay:
    def __init__(self, script: list[httpx2.Response] | None = None, *, then: str | None = None) -> None:
        self.script = deque(script or [])
        self.then = then  # after the script: always this recorded answer (None: the step's own)
        self.requests: list[dict[str, Any]] = []
        self.answers: list[str] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        assert request.url.path == "/v1/messages"
        key = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ")
        assert key == "test-key", "the SDK sends the configured key"
        self.requests.append(body)
        if self.script:
            response = self.script.popleft()
            self.answers.append(f"HTTP {response.status_code}")
            return response
        name = self.then or step_of(body)
        self.answers.append(name)
        payload = recorded(f"anthropic/{name}")
        payload["model"] = body["model"]
        return httpx2.Response(200, json=payload, headers={"request-id": f"req_{len(self.requests):04d}"})

    def client(self) -> httpx2.Client:
        return httpx2.Client(transport=httpx2.MockTransport(self))

    @staticmethod
    def rate_limited(retry_after: str = "1") -> httpx2.Response:
        return httpx2.Response(
            429,
            json=recorded("anthropic/rate_limited"),
            headers={"retry-after": retry_after, "anthropic-ratelimit-input-tokens-remaining": "0"},
        )

    @staticmethod
    def overloaded() -> httpx2.Response:
        return httpx2.Response(529, json=recorded("anthropic/overloaded"))


class TavilyReplay(BaseAdapter):
    def __init__(self) -> None:
        super().__init__()
        self.searches = {
            " ".join(body["query"].lower().split()): body for body in (recorded(f"tavily/search_{i}") for i in (1, 2))
        }
        self.requests: list[tuple[str, dict[str, Any]]] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        body = json.loads(request.body or "{}")
        path = str(request.url).removeprefix("https://api.tavily.com")
        self.requests.append((path, body))
        assert request.headers["Authorization"] == "Bearer tvly-test-key"
        if path == "/search":
            answer = self.searches.get(" ".join(body["query"].lower().split()))
            payload = answer or {"query": body["query"], "results": [], "answer": None, "images": []}
        elif path == "/extract":
            payload = recorded("tavily/extract")
        else:
            raise AssertionError(f"unexpected Tavily call {path}")
        response = requests.Response()
        response.status_code = 200
        response._content = json.dumps(payload).encode()
        response.headers["content-type"] = "application/json"
        response.url = str(request.url)
        response.request = request
        return response

    def close(self) -> None:
        pass

    def session(self) -> requests.Session:
        session = requests.Session()
        session.mount("https://api.tavily.com", self)
        return session
