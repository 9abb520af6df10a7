"""``BudgetedLLM``: the model client wrapper that reserves, blocks and settles every call.

It sits between the provider's client and ``RecordingLLM`` (wrap, don't patch). Before each
model call — each one, so an agent's tool loop reserves per call — it prices the worst case
(estimated input tokens plus ``max_tokens``) and reserves it against every applicable limit.
A refused call is never made: a ``budget_blocked`` event goes into the session and
``BudgetExceededError`` carries the polite message out to the errors middleware. After the
call the reservation is settled with the real cost; a failed call releases it. A provider's
numbers are not trusted: a call whose usage was missing or impossible (``Usage.estimated``,
see ``opencell/llm/_usage.py``), or whose price came out negative or not finite, is settled at
no less than its reservation — the worst case — so it can never lower a tally.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from opencell.budgets.limits import CallScope
from opencell.context import current_turn
from opencell.errors import BudgetExceededError
from opencell.guard import guard
from opencell.llm.base import LLMClient, LLMRequest, LLMResponse, TextSink
from opencell.llm.streaming import stream_or_complete
from opencell.llm.usage import estimate_input_tokens, worst_case_usage
from opencell.llm.wrapper import WrapperLLM

if TYPE_CHECKING:
    from opencell.budgets.ledger import BudgetLedger
    from opencell.config import BotConfig
    from opencell.observability.observer import Observability

__all__ = ["BudgetedLLM", "estimate_input_tokens"]


class BudgetedLLM(WrapperLLM):
    """An ``LLMClient`` that asks the ledger before each call and tells it the cost after."""

    def __init__(self, inner: LLMClient, ledger: BudgetLedger, bot: BotConfig,
                 observability: Observability) -> None:
        super().__init__(inner)
        self._ledger = ledger
        self._bot = bot
        self._obs = observability

    def worst_case(self, request: LLMRequest) -> float | None:
        """The most this request can cost in USD; None when the model has no price."""
        cost = self._ledger.prices.price(self.provider, self.model, worst_case_usage(request))
        return None if cost is None else cost.total_usd

    async def complete(self, request: LLMRequest) -> LLMResponse:
        return await self._call(request, self.inner.complete)

    async def stream(self, request: LLMRequest, on_text: TextSink) -> LLMResponse:
        """A streamed call is reserved and settled like any other."""
        return await self._call(
            request, lambda r: stream_or_complete(self.inner, r, on_text))

    async def _call(self, request: LLMRequest,
                    ask: Callable[[LLMRequest], Awaitable[LLMResponse]]) -> LLMResponse:
        turn = current_turn.get()
        session = turn.session if turn is not None else None
        key = session.key if session is not None else None
        call = CallScope(bot=self._bot.name, user=key.user if key else "",
                         platform=key.platform if key else "")
        session_id = session.id if session is not None else None
        estimate = self.worst_case(request)
        try:
            reservation = self._ledger.reserve(call, estimate, bot=self._bot,
                                               session_id=session_id)
        except BudgetExceededError as exc:
            if session_id is not None:
                with guard("recording budget_blocked"):
                    self._obs.custom(session_id, "budget_blocked", {
                        "scope": exc.scope, "period": exc.period, "limit_usd": exc.limit_usd,
                        "spent_usd": round(exc.spent_usd, 6), "reason": exc.reason,
                        "estimate_usd": None if estimate is None else round(estimate, 6),
                        "provider": self.provider, "model": self.model})
            raise
        try:
            response = await ask(request)
        except BaseException:
            self._ledger.release(reservation)
            raise
        cost = response.cost_usd if response.priced else self._price(response)
        usage = response.usage
        untrusted = usage.estimated or min(usage.input_tokens, usage.output_tokens,
                                           usage.cache_read_tokens, usage.cache_write_tokens) < 0
        if cost is not None and (untrusted or not math.isfinite(cost) or cost < 0.0):
            # Never settle a call the provider's numbers cannot vouch for below its worst case.
            cost = max(cost, reservation.amount) if math.isfinite(cost) else reservation.amount
        self._ledger.settle(reservation, cost, session_id=session_id)
        return response

    def _price(self, response: LLMResponse) -> float | None:
        # Billed as the model that answered, like the llm_call record (which, when the call
        # is recorded, has priced it already: see RecordingLLM).
        price = self._ledger.prices.price(self.provider, response.model or self.model,
                                          response.usage)
        return None if price is None else price.total_usd
