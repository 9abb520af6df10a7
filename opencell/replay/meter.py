"""What a replay's model calls used and cost, and the replay's own spending cap.

:class:`Meter` wraps the replaying runtime's (recording, pricing) model client: it sees each
call's priced answer, its latency, and stops calls once the run's :class:`Spend` — a budget
scope of its own, apart from the bot's budgets — has reached ``--max-usd``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from opencell.errors import BudgetExceededError
from opencell.llm.base import LLMClient, LLMRequest, LLMResponse
from opencell.replay.recording import Tally


@dataclass(slots=True)
class Spend:
    """One replay run's spending (a batch shares one): its own scope, capped at ``max_usd``."""

    max_usd: float | None = None
    spent_usd: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    def check(self) -> None:
        if self.max_usd is not None and self.spent_usd >= self.max_usd:
            message = (f"replay budget reached: spent ${self.spent_usd:.4f} of "
                       f"--max-usd ${self.max_usd:.4f}")
            raise BudgetExceededError(message, user_message=message, scope="replay",
                                      period="run", limit_usd=self.max_usd,
                                      spent_usd=self.spent_usd, reason="over_budget")


class Meter:
    """An :class:`LLMClient` wrapper that tallies the current turn's calls."""

    def __init__(self, inner: LLMClient, spend: Spend) -> None:
        self._inner = inner
        self._spend = spend
        self.tally = Tally()
        self.latency_ms = 0.0

    @property
    def provider(self) -> str:
        return self._inner.provider

    @property
    def model(self) -> str:
        return self._inner.model

    def take(self) -> tuple[Tally, float]:
        """The tally and model latency since the last ``take`` (one turn's)."""
        out = (self.tally, self.latency_ms)
        self.tally, self.latency_ms = Tally(), 0.0
        return out

    async def complete(self, request: LLMRequest) -> LLMResponse:
        self._spend.check()
        started = time.perf_counter()
        try:
            response = await self._inner.complete(request)
        except Exception:
            self.tally.add_call(model=self._inner.model, failed=True)
            raise
        finally:
            self.latency_ms += (time.perf_counter() - started) * 1000.0
        usage = response.usage
        cost = response.cost_usd if response.priced else None
        self.tally.add_call(model=response.model, input_tokens=usage.input_tokens,
                            output_tokens=usage.output_tokens,
                            cache_read_tokens=usage.cache_read_tokens,
                            cache_write_tokens=usage.cache_write_tokens, cost_usd=cost)
        self._spend.spent_usd += cost or 0.0
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()
