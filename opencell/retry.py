"""Exponential back-off with jitter: the one formula every retry loop in OpenCell uses.

The recorder (store outages), the exporters (backend outages) and the budget webhooks each
wait ``start × 2^(attempt-1)`` seconds, capped, times a random factor so that processes that
failed together do not retry together.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """``start × 2^(attempt-1)`` capped at ``cap``, times a random factor in [1-jitter, 1]."""

    start: float = 1.0
    cap: float = 60.0
    jitter: float = 0.5

    def __call__(self, attempt: int) -> float:
        delay = min(self.cap, self.start * 2.0 ** min(max(attempt - 1, 0), 30))
        return delay * random.uniform(1.0 - self.jitter, 1.0) if self.jitter else delay
