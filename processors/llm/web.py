"""`TavilySearch`: the web-search port over Tavily's search and extract endpoints (`tavily-python`).

Tests pass a `requests.Session` whose adapter replays recorded Tavily responses.
Tavily's errors (usage limit, bad key, timeouts, HTTP errors) become `WebSearchError`;
the research agent then keeps to the offline knowledge base.
"""

from __future__ import annotations

import time
from typing import Any

from processors.llm.port import SearchResult, WebPage

MAX_EXCERPT = 1200
MAX_CONTENT = 6000


class WebSearchError(Exception):
    """Search failed (quota, key, timeout, HTTP error): research goes on without the web."""


class TavilySearch:
    name = "tavily"

    def __init__(self, api_key: str, *, session: Any = None, timeout_seconds: float = 30.0) -> None:
        from tavily import TavilyClient

        self._client = TavilyClient(api_key=api_key, session=session)
        self._timeout = timeout_seconds

    def search(self, query: str, max_results: int) -> SearchResult:
        started = time.perf_counter()
        answer = self._guarded(
            lambda: self._client.search(
                query, search_depth="basic", max_results=max_results, include_answer=True, timeout=self._timeout
            )
        )
        pages = tuple(
            WebPage(
                url=str(r.get("url", "")),
                title=str(r.get("title", ""))[:300],
                excerpt=str(r.get("content", ""))[:MAX_EXCERPT],
                score=float(r.get("score") or 0.0),
            )
            for r in answer.get("results", [])
            if str(r.get("url", "")).startswith(("https://", "http://"))
        )
        latency = round((time.perf_counter() - started) * 1000, 1)
        return SearchResult(query, pages, answer.get("answer") or None, latency)

    def extract(self, urls: list[str]) -> dict[str, str]:
        if not urls:
            return {}
        answer = self._guarded(lambda: self._client.extract(urls, timeout=self._timeout))
        return {
            str(r.get("url", "")): str(r.get("raw_content") or "")[:MAX_CONTENT]
            for r in answer.get("results", [])
            if r.get("url")
        }

    @staticmethod
    def _guarded(call: Any) -> dict[str, Any]:
        try:
            result = call()
        except Exception as error:  # noqa: BLE001 - tavily raises its own classes, requests' and builtins
            raise WebSearchError(f"{type(error).__name__}: {str(error)[:300]}") from None
        if not isinstance(result, dict):
            raise WebSearchError(f"unexpected answer of type {type(result).__name__}")
        return result
