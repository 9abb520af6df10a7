"""A model played by a Python function: the in-process fake LLM for core tests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from opencell.llm.base import LLMRequest, LLMResponse, ToolCall, Usage

Play = Callable[[LLMRequest], "LLMResponse | str | Awaitable[LLMResponse | str]"]


def answer(text: str = "", *, calls: list[ToolCall] | None = None,
           usage: Usage | None = None, model: str = "fake-model") -> LLMResponse:
    """Build a response the way a provider wrapper would."""
    return LLMResponse(text=text, usage=usage or Usage(10, 5), model=model,
                       tool_calls=tuple(calls or ()),
                       stop_reason="tool_use" if calls else "end_turn", request_id="req-fake")


@dataclass
class FunctionLLM:
    """``LLMClient`` whose answers come from ``play(request)``; keeps every request."""

    play: Play
    provider: str = "offline"
    model: str = "fake-model"
    requests: list[LLMRequest] = field(default_factory=list)
    closed: bool = False

    async def complete(self, request: LLMRequest) -> LLMResponse:
        self.requests.append(request)
        result = self.play(request)
        if isinstance(result, Awaitable):
            result = await result
        return answer(result, model=self.model) if isinstance(result, str) else result

    async def aclose(self) -> None:
        self.closed = True
