"""The LLM port and the web-search port: what the agents ask, what comes back, what can go wrong.

An adapter (`AnthropicLLM`, the scripted `KnowledgeBaseLLM`) turns an `LLMRequest` into an
`LLMReply` for one model, or raises one of the typed failures below; retries, the job's
budget, the cache and the traces live in `session.py`, the same for every adapter.
Messages, tools and content blocks use the Messages API's JSON shapes (plain dicts).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal, Protocol

Task = Literal["reasoning", "classification", "code"]


@dataclass(frozen=True)
class LLMRequest:
    """One Messages API call, model-independent: the session picks the model for `task`."""

    task: Task
    prompt: str  # the prompt file's name (processors/llm/prompts/<prompt>.md)
    prompt_version: int
    system: str
    messages: tuple[dict[str, Any], ...]
    tools: tuple[dict[str, Any], ...] = ()
    tool_choice: dict[str, Any] | None = None
    max_tokens: int = 2048

    def key(self, model: str) -> str:
        """What identical requests share: the cache and coalescing key."""
        body = {
            "model": model,
            "system": self.system,
            "messages": self.messages,
            "tools": self.tools,
            "tool_choice": self.tool_choice,
            "max_tokens": self.max_tokens,
        }
        return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class LLMReply:
    model: str
    content: tuple[dict[str, Any], ...]  # {"type": "text", "text"} | {"type": "tool_use", "id", "name", "input"}
    stop_reason: str | None
    tokens_in: int
    tokens_out: int
    latency_ms: float = 0.0
    cached: bool = False

    @property
    def text(self) -> str:
        return "".join(str(b.get("text", "")) for b in self.content if b.get("type") == "text")

    @property
    def tool_uses(self) -> list[dict[str, Any]]:
        return [b for b in self.content if b.get("type") == "tool_use"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "content": list(self.content),
            "stop_reason": self.stop_reason,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "latency_ms": self.latency_ms,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, cached: bool = False) -> LLMReply:
        return cls(
            model=str(data["model"]),
            content=tuple(data["content"]),
            stop_reason=data.get("stop_reason"),
            tokens_in=int(data["tokens_in"]),
            tokens_out=int(data["tokens_out"]),
            latency_ms=float(data.get("latency_ms", 0.0)),
            cached=cached,
        )


class LLM(Protocol):
    """A chat model behind the Messages API's shapes."""

    name: str  # the provider, for traces: "anthropic", "scripted"

    def complete(self, request: LLMRequest, model: str) -> LLMReply: ...


# ------------------------------------------------------------------- failures


class LLMError(Exception):
    """Something the provider did that the agent must handle (retry, repair or go offline)."""


@dataclass
class Retryable(LLMError):
    """Rate limited (429), overloaded (529), a 5xx or a timeout: worth another try after `retry_after`."""

    kind: Literal["rate_limited", "overloaded", "server_error", "timeout", "connection"]
    detail: str
    retry_after: float | None = None

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}"


class Unusable(LLMError):
    """A failure another try would meet again (bad key, bad request): hand the work to the offline agent."""


class LLMUnavailable(LLMError):
    """Gave up after retries, a refusal or output that could not be repaired: the offline agent takes over."""


class BudgetExhausted(LLMError):
    """The job's LLM token or cost budget is spent: no more LLM calls for this job."""


# ----------------------------------------------------------------- web search


@dataclass(frozen=True)
class WebPage:
    url: str
    title: str
    excerpt: str
    score: float = 0.0
    content: str = ""  # the extracted text, when extracted

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "title": self.title, "excerpt": self.excerpt, "score": self.score}


@dataclass(frozen=True)
class SearchResult:
    query: str
    pages: tuple[WebPage, ...]
    answer: str | None = None
    latency_ms: float = 0.0


class WebSearch(Protocol):
    """Search the web and read pages (Tavily)."""

    name: str

    def search(self, query: str, max_results: int) -> SearchResult: ...

    def extract(self, urls: list[str]) -> dict[str, str]: ...


@dataclass(frozen=True)
class Models:
    """Which model does which task (settings: a large model for reasoning and code review, a small one
    for classification, and the models that compete on code)."""

    large: str = "claude-sonnet-5-5"
    small: str = "claude-haiku-5-5"
    coders: tuple[str, ...] = ("claude-sonnet-5-5", "claude-haiku-5-5")

    def for_task(self, task: Task) -> str:
        return self.small if task == "classification" else self.large


@dataclass
class Limits:
    """Per-deployment defaults; a job's own budget (`--llm-budget`) overrides `budget_tokens`."""

    budget_tokens: int = 400_000
    budget_usd: float | None = None
    max_attempts: int = 4  # per call, 429/529/5xx/timeouts included
    max_wait_seconds: float = 30.0  # the longest retry-after honoured; longer: give up and go offline
    competing_features: int = 5  # features whose code several models write (the rest: offline generator)
    schema_turns: int = 6  # tool-use turns of the schema agent
    search_queries: int = 3
