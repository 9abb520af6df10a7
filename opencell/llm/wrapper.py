"""``WrapperLLM``: the base of every model client that wraps another (record, enforce budgets).

A wrapper overrides ``complete`` (and ``stream``, where it must see streamed calls too)
and delegates the rest, so a new wrapper cannot forget to
forward ``aclose`` or report the inner client's provider and model (pydantic-ai's
``WrapperModel`` is the model for this).
"""

from __future__ import annotations

from opencell.llm.base import LLMClient, LLMRequest, LLMResponse, TextSink
from opencell.llm.streaming import stream_or_complete


class WrapperLLM:
    """An ``LLMClient`` around ``inner``: same provider and model, same ``aclose``."""

    def __init__(self, inner: LLMClient) -> None:
        self.inner = inner

    @property
    def provider(self) -> str:
        return self.inner.provider

    @property
    def model(self) -> str:
        return self.inner.model

    async def complete(self, request: LLMRequest) -> LLMResponse:
        return await self.inner.complete(request)

    async def stream(self, request: LLMRequest, on_text: TextSink) -> LLMResponse:
        if type(self).complete is not WrapperLLM.complete:
            # A subclass that wraps only ``complete`` must never be bypassed by a stream:
            # its answer goes out in one piece instead.
            response = await self.complete(request)
            if response.text:
                await on_text(response.text)
            return response
        return await stream_or_complete(self.inner, request, on_text)

    async def aclose(self) -> None:
        await self.inner.aclose()
