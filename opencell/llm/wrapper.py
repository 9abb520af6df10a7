"""``WrapperLLM``: the base of every model client that wraps another (record, enforce budgets).

A wrapper overrides ``complete`` and delegates the rest, so a new wrapper cannot forget to
forward ``aclose`` or report the inner client's provider and model (pydantic-ai's
``WrapperModel`` is the model for this).
"""

from __future__ import annotations

from opencell.llm.base import LLMClient, LLMRequest, LLMResponse


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

    async def aclose(self) -> None:
        await self.inner.aclose()
