"""Per-user rate limiting (token bucket) in front of the model."""

from __future__ import annotations

import time
from dataclasses import dataclass

from opencell.config import RateLimitConfig, parse_rate
from opencell.context import TurnContext
from opencell.messages import Reply
from opencell.types import Clock, Handler


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


class RateLimitMiddleware:
    """Allows ``per_user`` messages per period per user, refilled continuously.

    A user over the limit gets ``message`` without the model being called. Buckets of users
    idle long enough to be full again are pruned, so memory follows active users only.
    """

    def __init__(self, config: RateLimitConfig, *, clock: Clock = time.monotonic) -> None:
        self.capacity, period = parse_rate(config.per_user)
        self.refill_per_second = self.capacity / period
        self.message = config.message
        self._period = period
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._next_prune = clock() + period

    def allow(self, user: str) -> bool:
        now = self._clock()
        if now >= self._next_prune:
            self._prune(now)
        bucket = self._buckets.get(user)
        if bucket is None:
            bucket = self._buckets[user] = _Bucket(float(self.capacity), now)
        else:
            bucket.tokens = min(self.capacity,
                                bucket.tokens + (now - bucket.stamp) * self.refill_per_second)
            bucket.stamp = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True

    def _prune(self, now: float) -> None:
        self._buckets = {u: b for u, b in self._buckets.items() if now - b.stamp < self._period}
        self._next_prune = now + self._period

    async def __call__(self, ctx: TurnContext, call_next: Handler) -> Reply | None:
        if not self.allow(ctx.message.user_id):
            return Reply(text=self.message)
        return await call_next(ctx)
