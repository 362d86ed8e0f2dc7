"""A per-client token bucket, in memory: enough to stop one bot hammering the subscribe form.

Each key (a client IP) holds up to ``burst`` tokens, refilled at ``per_minute``
tokens a minute. Time is passed in, so tests drive it without sleeping. One
process only: several `drip serve` processes each keep their own buckets.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass


@dataclass(frozen=True)
class RateLimit:
    per_minute: float = 10.0  # sustained rate; 0 turns the limit off
    burst: int = 5

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0


class TokenBucket:
    """Buckets keyed by client; :meth:`take` answers how long to wait, 0 when allowed."""

    # Past this many keys, full buckets are dropped: they carry no information.
    _PRUNE_AT = 10_000

    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self._rate = limit.per_minute / 60.0
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, updated at)
        self._lock = threading.Lock()

    def take(self, key: str, now: float) -> float:
        """Spend one token for ``key`` at ``now`` (seconds); seconds to wait when none is left."""
        if not self.limit.enabled:
            return 0.0
        with self._lock:
            tokens, updated = self._buckets.get(key, (float(self.limit.burst), now))
            tokens = min(float(self.limit.burst), tokens + max(0.0, now - updated) * self._rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                if len(self._buckets) > self._PRUNE_AT:
                    self._prune(now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self._rate

    def retry_after(self, wait: float) -> int:
        """Whole seconds for a Retry-After header: never 0 for a refused request."""
        return max(1, math.ceil(wait))

    def _prune(self, now: float) -> None:
        full = [
            key
            for key, (tokens, updated) in self._buckets.items()
            if tokens + (now - updated) * self._rate >= self.limit.burst
        ]
        for key in full:
            del self._buckets[key]
