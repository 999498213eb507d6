"""Per-tenant API rate limits by tier (seed §8.3), as token buckets refilled continuously.

In-process: each gateway replica enforces the limit on its own share of traffic.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

RATE_PER_HOUR: dict[str, int] = {"free": 100, "pro": 1_000, "enterprise": 10_000}


def exhausted(tenant: str, tier: str, limit: int, retry_after: float) -> str:
    """The 429 detail: which tier, and how the operator raises it."""
    return (
        f"tenant {tenant!r} used the {limit} requests/hour of its {tier!r} tier; retry in {int(retry_after)} s, "
        f"or ask the operator to raise the tier: `afep tenants set-tier {tenant} pro` "
        f"({', '.join(f'{t} {n}/h' for t, n in RATE_PER_HOUR.items())})"
    )


class RateLimiter:
    def __init__(
        self,
        tier_of: Callable[[str], str],
        *,
        clock: Callable[[], float] = time.monotonic,
        tier_ttl_seconds: float = 30.0,
    ) -> None:
        self._tier_of = tier_of
        self._clock = clock
        self._tier_ttl = tier_ttl_seconds
        self._buckets: dict[str, tuple[float, float]] = {}  # tenant -> (tokens, last refill time)
        self._tiers: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def tier(self, tenant: str, now: float | None = None) -> str:
        """The tenant's tier as last read (re-read every `tier_ttl_seconds`)."""
        now = self._clock() if now is None else now
        cached = self._tiers.get(tenant)
        if cached is None or now - cached[1] > self._tier_ttl:
            cached = (self._tier_of(tenant), now)
            self._tiers[tenant] = cached
        return cached[0] if cached[0] in RATE_PER_HOUR else "free"

    def _rate(self, tenant: str, now: float) -> int:
        return RATE_PER_HOUR[self.tier(tenant, now)]

    def acquire(self, tenant: str) -> tuple[bool, int, float]:
        """(allowed, hourly limit, seconds until the next request would be allowed)."""
        now = self._clock()
        rate = self._rate(tenant, now)
        per_second = rate / 3600.0
        with self._lock:
            tokens, last = self._buckets.get(tenant, (float(rate), now))
            tokens = min(float(rate), tokens + (now - last) * per_second)
            if tokens >= 1.0:
                self._buckets[tenant] = (tokens - 1.0, now)
                return True, rate, 0.0
            self._buckets[tenant] = (tokens, now)
            return False, rate, math.ceil((1.0 - tokens) / per_second)
