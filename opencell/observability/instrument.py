"""Wrappers that record model and tool calls into the current session (wrap, don't patch).

``RecordingLLM`` wraps every bot's model, so it is also where text crossing the model boundary
is made valid UTF-8: a lone surrogate (a terminal's bad byte, a JSON ``\\udce9`` escape from a
platform or a model) would make the SDK fail to encode the next request, and every later turn
of the conversation with it. Requests and responses are checked with one ``isascii`` per text
and copied only when something had to be replaced.
"""

from __future__ import annotations

import dataclasses
import time
from urllib.parse import urlsplit

from opencell.context import current_turn
from opencell.errors import ToolExecutionError, ToolTimeoutError
from opencell.guard import guard
from opencell.llm.base import (
    LLMClient,
    LLMRequest,
    LLMResponse,
    TextSink,
    ToolCall,
    ToolSpec,
)
from opencell.llm.streaming import stream_or_complete
from opencell.llm.wrapper import WrapperLLM
from opencell.observability.observer import Observability
from opencell.records import valid_text, valid_value
from opencell.tools import ToolInvoker, ToolResult

FAILING_TOOL_ERRORS = (ToolExecutionError, ToolTimeoutError)
"""Tool errors that fail the turn (the tool broke); refusals and bad arguments do not."""


class RecordingLLM(WrapperLLM):
    """An ``LLMClient`` that records every call (success or failure) as an ``llm_call``.

    Answers are made valid UTF-8 on the way through (a lone surrogate from a model must not
    break the conversation; what goes *in* — the user's text, tool results — the runtime made
    valid where it entered, so the history is never walked again here). The answer comes back
    ``priced``: the record's cost rides on it, so a budget wrapper outside settles with the
    same number instead of pricing the call again.
    """

    def __init__(self, inner: LLMClient, observability: Observability) -> None:
        super().__init__(inner)
        self._obs = observability
        self._server = server_of(inner)

    async def complete(self, request: LLMRequest) -> LLMResponse:
        turn = current_turn.get()
        session = turn.session if turn is not None else None
        if session is None:
            return valid_response(await self.inner.complete(request))
        number = turn.number if turn is not None else 0
        wall, start = time.time(), time.perf_counter()
        try:
            response = valid_response(await self.inner.complete(request))
        except Exception as exc:
            self._record(session.id, number, request, None, wall, start, exc)
            raise
        recorded, cost = self._record(session.id, number, request, response, wall, start, None)
        if not recorded:
            return response
        # Built directly: dataclasses.replace costs about 4 µs a call on this hot path.
        return LLMResponse(text=response.text, usage=response.usage, model=response.model,
                           tool_calls=response.tool_calls, stop_reason=response.stop_reason,
                           request_id=response.request_id, raw_finish=response.raw_finish,
                           priced=True, cost_usd=cost)

    async def stream(self, request: LLMRequest, on_text: TextSink) -> LLMResponse:
        """A streamed call, recorded like ``complete`` plus its time to first token and
        streaming duration (first piece to last). Each piece is made valid UTF-8 before it
        is passed on; a stream that breaks midway is recorded as failed, with the timing of
        what did arrive."""
        turn = current_turn.get()
        session = turn.session if turn is not None else None
        first: list[float] = []

        async def timed(piece: str) -> None:
            if not first:
                first.append(time.perf_counter())
            await on_text(valid_text(piece))

        if session is None:
            return valid_response(await stream_or_complete(self.inner, request, timed))
        number = turn.number if turn is not None else 0
        wall, start = time.time(), time.perf_counter()
        try:
            response = valid_response(await stream_or_complete(self.inner, request, timed))
        except Exception as exc:
            self._record(session.id, number, request, None, wall, start, exc,
                         stream=_timing(start, first))
            raise
        recorded, cost = self._record(session.id, number, request, response, wall, start,
                                      None, stream=_timing(start, first))
        if not recorded:
            return response
        return dataclasses.replace(response, priced=True, cost_usd=cost)

    def _record(self, session_id: str, turn: int, request: LLMRequest,
                response: LLMResponse | None, wall: float, start: float,
                error: Exception | None,
                stream: dict[str, float | None] | None = None) -> tuple[bool, float | None]:
        """(recorded, the call's cost); not recorded when recording itself failed."""
        with guard("recording llm_call"):
            return True, self._obs.llm_call(
                session_id, provider=self.provider, model=self.model, request=request,
                response=response, started=wall, error=error,
                duration_ms=(time.perf_counter() - start) * 1000, turn=turn or None,
                server=self._server, stream=stream)
        return False, None


def _timing(start: float, first: list[float]) -> dict[str, float | None]:
    """A streamed call's ``time_to_first_token_ms`` and ``streaming_ms`` (None: nothing
    arrived), measured from ``start`` (the call) and ``first`` (its first piece)."""
    end = time.perf_counter()
    if not first:
        return {"time_to_first_token_ms": None, "streaming_ms": None}
    return {"time_to_first_token_ms": (first[0] - start) * 1000,
            "streaming_ms": (end - first[0]) * 1000}


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
        turn = current_turn.get()
        session = turn.session if turn is not None else None
        if turn is not None and session is not None:
            with guard("recording tool_call"):
                number = turn.number or None
                self._obs.tool_call(session.id, call=call, result=result, started=wall,
                                    duration_ms=(time.perf_counter() - start) * 1000,
                                    turn=number)
                if isinstance(result.error, FAILING_TOOL_ERRORS):
                    turn.failed = True
                    self._obs.error(session.id, result.error,
                                    context={"tool": call.name, "call_id": call.id},
                                    turn=number)
        return result


def server_of(client: object) -> str | None:
    """``host:port`` of the client's API (its ``base_url``), or None (offline, fakes)."""
    base = getattr(client, "base_url", None)
    if not isinstance(base, str) or "://" not in base:
        return None
    parts = urlsplit(base)
    if not parts.hostname:
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.hostname}:{port}"


def valid_response(response: LLMResponse) -> LLMResponse:
    """``response`` with its text and tool calls valid UTF-8 (the same object if so)."""
    if not response.tool_calls and response.text.isascii():
        return response
    text = valid_text(response.text)
    calls = tuple(_valid_call(c) for c in response.tool_calls)
    if text is response.text and all(
            a is b for a, b in zip(calls, response.tool_calls, strict=True)):
        return response
    return dataclasses.replace(response, text=text, tool_calls=calls)


def _valid_call(call: ToolCall) -> ToolCall:
    arguments = call.arguments if type(call.arguments) is dict else dict(call.arguments)
    checked = valid_value(arguments)
    name, call_id = valid_text(call.name), valid_text(call.id)
    if checked is call.arguments and name is call.name and call_id is call.id:
        return call
    return ToolCall(call_id, name, checked)
