"""`AnthropicLLM`: the LLM port over Anthropic's Messages API (the `anthropic` SDK).

The SDK's own retries are off (`max_retries=0`): the session retries, so every attempt,
wait and fallback is a trace the user sees. SDK exceptions become the port's failures:
429 (with its `retry-after`), 529 overload, 5xx, timeouts and connection errors are
`Retryable`; anything else the provider refuses (bad key, bad request) is `Unusable`.
Tests hand in an `httpx2.Client` whose transport replays recorded responses.
"""

from __future__ import annotations

import time
from email.utils import parsedate_to_datetime
from typing import Any

from processors.llm.port import LLMReply, LLMRequest, Retryable, Unusable

# US dollars per million tokens (input, output); the longest matching prefix wins. Models newer than
# this table are priced by family (opus, sonnet, haiku) at the latest list price known here.
PRICES: dict[str, tuple[float, float]] = {
    "claude-opus": (5.0, 25.0),
    "claude-sonnet": (3.0, 15.0),
    "claude-haiku": (1.0, 5.0),
    "claude-opus-4-5": (5.0, 25.0),
    "claude-opus-4-1": (15.0, 75.0),
    "claude-opus-4-0": (15.0, 75.0),
    "claude-opus-4-2": (15.0, 75.0),
    "claude-sonnet-4": (3.0, 15.0),
    "claude-3-7-sonnet": (3.0, 15.0),
    "claude-3-5-sonnet": (3.0, 15.0),
    "claude-haiku-4": (1.0, 5.0),
    "claude-3-5-haiku": (0.8, 4.0),
    "claude-3-haiku": (0.25, 1.25),
}
DEFAULT_PRICE = (3.0, 15.0)


def price(model: str) -> tuple[float, float]:
    """(input, output) US dollars per million tokens of `model`."""
    matches = [prefix for prefix in PRICES if model.startswith(prefix)]
    return PRICES[max(matches, key=len)] if matches else DEFAULT_PRICE


def cost_usd(model: str, tokens_in: int, tokens_out: int) -> float:
    p_in, p_out = price(model)
    return round((tokens_in * p_in + tokens_out * p_out) / 1_000_000, 6)


class AnthropicLLM:
    name = "anthropic"

    def __init__(self, api_key: str, *, http_client: Any = None, timeout_seconds: float = 120.0) -> None:
        import anthropic

        self._client = anthropic.Anthropic(
            api_key=api_key, max_retries=0, timeout=timeout_seconds, http_client=http_client
        )

    def complete(self, request: LLMRequest, model: str) -> LLMReply:
        import anthropic

        params: dict[str, Any] = {
            "model": model,
            "max_tokens": request.max_tokens,
            "system": request.system,
            "messages": list(request.messages),
        }
        if request.tools:
            params["tools"] = list(request.tools)
        if request.tool_choice:
            params["tool_choice"] = request.tool_choice
        started = time.perf_counter()
        try:
            message = self._client.messages.create(**params)
        except anthropic.RateLimitError as error:
            raise Retryable("rate_limited", _detail(error), retry_after(error.response.headers)) from None
        except anthropic.OverloadedError as error:
            raise Retryable("overloaded", _detail(error), retry_after(error.response.headers)) from None
        except anthropic.InternalServerError as error:
            raise Retryable("server_error", _detail(error), retry_after(error.response.headers)) from None
        except anthropic.APITimeoutError:
            raise Retryable("timeout", f"no answer within {self._client.timeout} s") from None
        except anthropic.APIConnectionError as error:
            raise Retryable("connection", str(error) or type(error).__name__) from None
        except anthropic.APIStatusError as error:
            raise Unusable(f"HTTP {error.status_code}: {_detail(error)}") from None
        except anthropic.APIResponseValidationError as error:
            raise Unusable(f"the response did not match the Messages API: {error}") from None
        latency = (time.perf_counter() - started) * 1000
        content = tuple(block.model_dump(mode="json", exclude_none=True) for block in message.content)
        return LLMReply(
            model=message.model,
            content=content,
            stop_reason=message.stop_reason,
            tokens_in=message.usage.input_tokens,
            tokens_out=message.usage.output_tokens,
            latency_ms=round(latency, 1),
        )


def retry_after(headers: Any) -> float | None:
    """Seconds the provider asks to wait (`retry-after-ms`, `retry-after` in seconds or as a date)."""
    if headers is None:
        return None
    try:
        if (ms := headers.get("retry-after-ms")) is not None:
            return max(0.0, float(ms) / 1000)
        value = headers.get("retry-after")
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            when = parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _detail(error: Any) -> str:
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        inner = body.get("error")
        if isinstance(inner, dict) and inner.get("message"):
            return f"{inner.get('type', 'error')}: {inner['message']}"[:300]
    return str(getattr(error, "message", error))[:300]
