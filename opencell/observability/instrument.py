"""Wrappers that record model and tool calls into the current session (wrap, don't patch)."""

from __future__ import annotations

import time
from dataclasses import replace

from opencell.errors import ToolExecutionError, ToolTimeoutError
from opencell.guard import guard
from opencell.llm.base import LLMClient, LLMRequest, LLMResponse, ToolCall, ToolSpec
from opencell.llm.wrapper import WrapperLLM
from opencell.observability.observer import Observability
from opencell.sessions import current_session
from opencell.tools import ToolInvoker, ToolResult

FAILING_TOOL_ERRORS = (ToolExecutionError, ToolTimeoutError)
"""Tool errors that fail the turn (the tool broke); refusals and bad arguments do not."""


class RecordingLLM(WrapperLLM):
    """An ``LLMClient`` that records every call (success or failure) as an ``llm_call``.

    The answer comes back ``priced``: the record's cost rides on it, so a budget wrapper
    outside settles with the same number instead of pricing the call again.
    """

    def __init__(self, inner: LLMClient, observability: Observability) -> None:
        super().__init__(inner)
        self._obs = observability

    async def complete(self, request: LLMRequest) -> LLMResponse:
        session = current_session.get()
        if session is None:
            return await self.inner.complete(request)
        wall, start = time.time(), time.perf_counter()
        try:
            response = await self.inner.complete(request)
        except Exception as exc:
            self._record(session.id, request, None, wall, start, exc)
            raise
        cost = self._record(session.id, request, response, wall, start, None)
        return replace(response, priced=True, cost_usd=cost)

    def _record(self, session_id: str, request: LLMRequest, response: LLMResponse | None,
                wall: float, start: float, error: Exception | None) -> float | None:
        with guard("recording llm_call"):
            return self._obs.llm_call(session_id, provider=self.provider, model=self.model,
                                      request=request, response=response, started=wall,
                                      duration_ms=(time.perf_counter() - start) * 1000,
                                      error=error)
        return None


class RecordingTools:
    """A ``ToolInvoker`` that records every call as a ``tool_call``.

    A tool that raised or timed out also records an ``error`` with the stack and marks the
    turn failed; the model still gets the error as the tool's result.
    """

    def __init__(self, inner: ToolInvoker, observability: Observability) -> None:
        self.inner = inner
        self._obs = observability

    def specs(self, *, user_id: str | None = None) -> list[ToolSpec]:
        return self.inner.specs(user_id=user_id)

    async def invoke(self, call: ToolCall, *, user_id: str) -> ToolResult:
        wall, start = time.time(), time.perf_counter()
        result = await self.inner.invoke(call, user_id=user_id)
        session = current_session.get()
        if session is not None:
            with guard("recording tool_call"):
                self._obs.tool_call(session.id, call=call, result=result, started=wall,
                                    duration_ms=(time.perf_counter() - start) * 1000)
                if isinstance(result.error, FAILING_TOOL_ERRORS):
                    session.turn_failed = True
                    self._obs.error(session.id, result.error,
                                    context={"tool": call.name, "call_id": call.id})
        return result
