"""One webhook attempt: an HTTP POST of the signed body, with a timeout, never a redirect.

Any 2xx answer accepts the delivery. Anything else (another status, a refused connection,
no answer within the timeout, a target that `targets.py` refuses) is a failed attempt whose
error says what happened; for an error status, the first bytes of the answer are kept to
help the receiver's owner. Redirects are not followed: the signature is for the URL the
tenant subscribed, and a redirect could lead anywhere. Proxies in HTTPS_PROXY/HTTP_PROXY are
honoured (an egress proxy is the place to restrict where webhooks go).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from domain.validation import printable
from processors.webhooks.targets import TargetRefused, check_resolved

EXCERPT_BYTES = 300


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    error: str  # "" when accepted
    duration_ms: float

    @property
    def accepted(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class HttpSender:
    def __init__(self, timeout_seconds: float, *, allow_private: bool = False) -> None:
        self.timeout_seconds = timeout_seconds
        self.allow_private = allow_private

    def send(self, url: str, body: bytes, headers: dict[str, str]) -> Outcome:
        import httpx  # off the start-up path of the CLI and the API

        started = time.monotonic()

        def elapsed() -> float:
            return round((time.monotonic() - started) * 1000, 3)

        try:
            check_resolved(url, allow_private=self.allow_private)
        except TargetRefused as error:
            return Outcome(None, str(error), elapsed())
        try:
            with (
                httpx.Client(timeout=httpx.Timeout(self.timeout_seconds), follow_redirects=False) as client,
                client.stream("POST", url, content=body, headers=headers) as response,
            ):
                status = response.status_code
                if 200 <= status < 300:
                    return Outcome(status, "", elapsed())
                return Outcome(status, _refusal(status, _excerpt(response)), elapsed())
        except httpx.TimeoutException:
            return Outcome(None, f"no answer within {self.timeout_seconds:g} s (timed out)", elapsed())
        except httpx.HTTPError as error:
            return Outcome(None, printable(f"{type(error).__name__}: {error}", 500), elapsed())


def _excerpt(response: object) -> str:
    read = b""
    try:
        for chunk in response.iter_bytes():  # type: ignore[attr-defined]
            read += chunk
            if len(read) >= EXCERPT_BYTES:
                break
    except Exception:  # noqa: BLE001 - the status is what counts; the excerpt is a courtesy
        return ""
    return printable(read[:EXCERPT_BYTES].decode("utf-8", "replace").strip(), EXCERPT_BYTES)


def _refusal(status: int, excerpt: str) -> str:
    if 300 <= status < 400:
        text = f"the receiver answered HTTP {status} (a redirect; they are not followed: subscribe the final URL)"
    else:
        text = f"the receiver answered HTTP {status}"
    return f"{text}: {excerpt}" if excerpt else text
