"""One agent's LLM work for one job: budget, cache, coalescing, retries, repair, traces.

`LLMServices` is what the workbench carries when a provider is configured (None: offline).
An agent opens an `LLMSession` per reaction; every call it makes through `ask` or
`structured` becomes an AgentTraced event (collected in `traces`, drained by the agent)
with the model, tokens in and out, latency, cost and the prompt's name and version.

- Budget: the job's tokens (in + out) and dollars spent so far are read back from its
  traces when the session opens; a call is refused with `BudgetExhausted` once either is
  spent, and the feed says so once per agent.
- Identical requests: answered from the on-disk cache (cost 0), or coalesced with a
  call already in flight.
- Failures: 429 (honouring `retry-after`), 529, 5xx, timeouts are retried with
  exponential backoff; output that does not match the expected tool schema is sent back
  once for repair; a refusal, a bad request or retries used up raise `LLMUnavailable`,
  and the agent hands the work to its offline twin.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from commands.store import EventStore
from commands.unit_of_work import Trace
from domain.job import Job
from domain.validation import printable
from processors.llm.cache import ResponseCache, SearchCache
from processors.llm.claude import cost_usd
from processors.llm.port import (
    LLM,
    BudgetExhausted,
    Limits,
    LLMReply,
    LLMRequest,
    LLMUnavailable,
    Models,
    Retryable,
    Unusable,
    WebSearch,
)
from processors.llm.prompts import prompt
from processors.llm.usage import job_usage

M = TypeVar("M", bound=BaseModel)
MAX_MESSAGE = 600


@dataclass
class LLMServices:
    """The providers and their policy, built once per runtime from settings (or injected by tests)."""

    llm: LLM
    models: Models = field(default_factory=Models)
    limits: Limits = field(default_factory=Limits)
    search: WebSearch | None = None
    data_dir: Path | None = None  # responses and searches are cached under <data dir>/llm
    sleep: Callable[[float], None] = time.sleep
    _cache: ResponseCache | None = None
    _search_cache: SearchCache | None = None

    @property
    def cache(self) -> ResponseCache:
        if self._cache is None:
            self._cache = ResponseCache(None if self.data_dir is None else self.data_dir / "llm" / "responses")
        return self._cache

    @property
    def search_cache(self) -> SearchCache:
        if self._search_cache is None:
            self._search_cache = SearchCache(None if self.data_dir is None else self.data_dir / "llm" / "searches")
        return self._search_cache

    @property
    def knowledge_dir(self) -> Path | None:
        """Where accepted research extends the knowledge base (one JSON file per domain)."""
        return None if self.data_dir is None else self.data_dir / "knowledge"

    def session(self, store: EventStore, job: Job, agent: str) -> LLMSession:
        return LLMSession(self, store, job, agent)


class LLMSession:
    def __init__(self, services: LLMServices, store: EventStore, job: Job, agent: str) -> None:
        self.services = services
        self.job_id = job.job_id
        self.agent = agent
        request = job.request
        tokens = getattr(request, "llm_budget_tokens", None)
        self.budget_tokens: int = services.limits.budget_tokens if tokens is None else int(tokens)
        usd = getattr(request, "llm_budget_usd", None)
        self.budget_usd: float | None = services.limits.budget_usd if usd is None else float(usd)
        spent = job_usage(store, job.job_id)
        self.used_tokens = spent.total.tokens
        self.used_usd = spent.total.cost_usd
        self.traces: list[Trace] = []
        self._lock = threading.RLock()
        self._said_exhausted = False

    # ---------------------------------------------------------------- traces

    def trace(self, kind: str, message: str, data: dict[str, Any] | None = None) -> None:
        with self._lock:
            self.traces.append(Trace(self.job_id, self.agent, kind, printable(message, MAX_MESSAGE), data))

    def drain(self) -> list[Trace]:
        with self._lock:
            out, self.traces = self.traces, []
        return out

    # ---------------------------------------------------------------- budget

    def exhausted(self) -> str | None:
        """Why no more calls may be made for this job, or None."""
        if self.used_tokens >= self.budget_tokens:
            return f"{self.used_tokens:,} of {self.budget_tokens:,} tokens used"
        if self.budget_usd is not None and self.used_usd >= self.budget_usd:
            return f"${self.used_usd:.4f} of ${self.budget_usd:.4f} spent"
        return None

    def check_budget(self) -> None:
        with self._lock:
            reason = self.exhausted()
            if reason is None:
                return
            if not self._said_exhausted:
                self._said_exhausted = True
                self.trace(
                    "decision",
                    f"LLM budget exhausted ({reason}): no more LLM calls for this job; the offline agents take over",
                    {
                        "llm_budget": {
                            "exhausted": True,
                            "used_tokens": self.used_tokens,
                            "budget_tokens": self.budget_tokens,
                            "used_usd": self.used_usd,
                            "budget_usd": self.budget_usd,
                        }
                    },
                )
        raise BudgetExhausted(reason)

    # ----------------------------------------------------------------- calls

    def model_for(self, request: LLMRequest) -> str:
        return self.services.models.for_task(request.task)

    def ask(self, request: LLMRequest, *, model: str | None = None, feature_ids: tuple[str, ...] = ()) -> LLMReply:
        """One call (cached, coalesced, retried); its trace carries the usage."""
        model = model or self.model_for(request)
        self.check_budget()
        key = request.key(model)
        cache = self.services.cache
        reply = cache.get(key)
        waited = False
        if reply is None:
            reply, waited = cache.coalesced(key, lambda: self._call(request, model))
            if waited:
                reply = LLMReply.from_dict(reply.to_dict(), cached=True)
            else:
                cache.put(key, reply)
        billed = not reply.cached
        cost = cost_usd(reply.model, reply.tokens_in, reply.tokens_out) if billed else 0.0
        with self._lock:
            if billed:
                self.used_tokens += reply.tokens_in + reply.tokens_out
                self.used_usd = round(self.used_usd + cost, 6)
        llm = {
            "provider": self.services.llm.name,
            "model": reply.model,
            "prompt": request.prompt,
            "prompt_version": request.prompt_version,
            "tokens_in": reply.tokens_in,
            "tokens_out": reply.tokens_out,
            "latency_ms": reply.latency_ms if billed else 0.0,
            "cost_usd": cost,
            "cached": not billed,
            "stop_reason": reply.stop_reason,
        }
        said = reply.text.strip() or ", ".join(f"calls {b.get('name')}" for b in reply.tool_uses) or "(no content)"
        how = "answered from the cache" if not billed else f"{reply.tokens_in} in / {reply.tokens_out} out tokens"
        self.trace(
            "thought",
            f"{reply.model} ({request.prompt} v{request.prompt_version}, {how}): {said}",
            {"llm": llm, **({"feature_ids": list(feature_ids)} if feature_ids else {})},
        )
        if reply.stop_reason == "refusal":
            raise LLMUnavailable(f"{reply.model} refused the request")
        return reply

    def _call(self, request: LLMRequest, model: str) -> LLMReply:
        limits = self.services.limits
        last = ""
        for attempt in range(1, limits.max_attempts + 1):
            try:
                return self.services.llm.complete(request, model)
            except Retryable as error:
                last = str(error)
                wait = error.retry_after if error.retry_after is not None else min(8.0, 0.5 * 2 ** (attempt - 1))
                if attempt == limits.max_attempts:
                    break
                if wait > limits.max_wait_seconds:
                    self.trace(
                        "decision",
                        f"{model}: {error}; it asks to wait {wait:.0f} s, more than {limits.max_wait_seconds:.0f} s: "
                        "giving up on this call",
                        {"retry": {"kind": error.kind, "attempt": attempt, "wait_s": wait, "model": model}},
                    )
                    raise LLMUnavailable(f"{error} (retry-after {wait:.0f} s)") from None
                self.trace(
                    "tool_result",
                    f"{model}: {error}; retrying in {wait:.1f} s (attempt {attempt + 1} of {limits.max_attempts})",
                    {"retry": {"kind": error.kind, "attempt": attempt, "wait_s": wait, "model": model}},
                )
                self.services.sleep(wait)
            except Unusable as error:
                self.trace("tool_result", f"{model}: {error}", {"error": {"kind": "unusable", "model": model}})
                raise LLMUnavailable(str(error)) from None
        raise LLMUnavailable(f"gave up after {limits.max_attempts} attempts; last: {last}")

    def structured(
        self,
        request: LLMRequest,
        tool: str,
        schema: type[M],
        *,
        model: str | None = None,
        feature_ids: tuple[str, ...] = (),
    ) -> M:
        """The input of the reply's `tool` call, validated by `schema`; sent back once for repair."""
        reply = self.ask(request, model=model, feature_ids=feature_ids)
        for attempt in (1, 2):
            try:
                return _parse(reply, tool, schema)
            except MalformedOutput as error:
                problem = str(error)
                if attempt == 2:
                    self.trace("decision", f"{reply.model} answered malformed output again ({problem[:200]})")
                    raise LLMUnavailable(f"malformed output after a repair: {problem[:300]}") from None
                self.trace(
                    "thought",
                    f"{reply.model}'s answer does not match {tool}: {problem[:300]}; asking it to repair it",
                    {"repair": {"tool": tool, "problem": problem[:1000]}},
                )
                reply = self.ask(_repair(request, reply, tool, problem), model=model, feature_ids=feature_ids)
        raise AssertionError("unreachable")


class MalformedOutput(ValueError):
    pass


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


def _parse(reply: LLMReply, tool: str, schema: type[M]) -> M:
    uses = [b for b in reply.tool_uses if b.get("name") == tool]
    if uses:
        payload: Any = uses[0].get("input")
    else:
        text = reply.text.strip()
        fenced = _FENCE.search(text)
        try:
            payload = json.loads(fenced.group(1) if fenced else text)
        except ValueError as error:
            raise MalformedOutput(f"no {tool} call, and the text is not JSON ({error})") from None
    try:
        return schema.model_validate(payload)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}" for e in error.errors()[:5])
        raise MalformedOutput(problems) from None


def _repair(request: LLMRequest, reply: LLMReply, tool: str, problem: str) -> LLMRequest:
    text = prompt("repair").render(problem=problem[:1000], tool=tool)
    uses = reply.tool_uses
    answer: list[dict[str, Any]] = [{"type": "text", "text": text}]
    if uses:  # every tool_use needs its tool_result in the next user turn
        answer = [
            *({"type": "tool_result", "tool_use_id": b["id"], "is_error": True, "content": text} for b in uses),
        ]
    assistant = [b for b in reply.content if b.get("type") in ("text", "tool_use")] or [
        {"type": "text", "text": "(empty)"}
    ]
    return LLMRequest(
        task=request.task,
        prompt=request.prompt,
        prompt_version=request.prompt_version,
        system=request.system,
        messages=(*request.messages, {"role": "assistant", "content": assistant}, {"role": "user", "content": answer}),
        tools=request.tools,
        tool_choice=request.tool_choice,
        max_tokens=request.max_tokens,
    )


def tool_request(
    prompt_name: str,
    /,
    *,
    tools: tuple[dict[str, Any], ...],
    force: str | None = None,
    max_tokens: int = 2048,
    user: str = "Go ahead.",
    **values: Any,
) -> LLMRequest:
    """A request from the prompt file `prompt_name` rendered with `values` as the system prompt."""
    p = prompt(prompt_name)
    return LLMRequest(
        task=p.task,  # type: ignore[arg-type]
        prompt=p.name,
        prompt_version=p.version,
        system=p.render(**values),
        messages=({"role": "user", "content": user},),
        tools=tools,
        tool_choice={"type": "tool", "name": force} if force else None,
        max_tokens=max_tokens,
    )


def tool_schema(name: str, description: str, model: type[BaseModel]) -> dict[str, Any]:
    """A Messages API tool whose input is `model`'s JSON schema."""
    return {"name": name, "description": description, "input_schema": model.model_json_schema()}
