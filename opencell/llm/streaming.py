"""Streaming helpers shared by the providers and the wrappers around them.

``stream_or_complete`` is how every caller asks for a streamed answer: a client with
``stream`` (the providers, the wrappers) streams; any other ``LLMClient`` (a user's own, a
test's fake) answers with ``complete`` and its whole text is passed on as one piece — so a
bot with ``stream: true`` works with every client, it only streams with those that can.
"""

from __future__ import annotations

from opencell.llm.base import LLMClient, LLMRequest, LLMResponse, TextSink


async def stream_or_complete(llm: LLMClient, request: LLMRequest,
                             on_text: TextSink) -> LLMResponse:
    """``llm.stream(request, on_text)`` if the client streams, else ``complete`` in one piece."""
    stream = getattr(llm, "stream", None)
    if stream is not None:
        response: LLMResponse = await stream(request, on_text)
        return response
    response = await llm.complete(request)
    if response.text:
        await on_text(response.text)
    return response


def broken_stream_message(exc: BaseException) -> str:
    """Why a stream stopped midway, for ``LLMConnectionError`` (the SDKs raise their HTTP
    library's own errors when a connection breaks after the response has started)."""
    detail = str(exc) or type(exc).__name__
    return f"the answer's stream broke off midway ({type(exc).__name__}: {detail[:200]})"
