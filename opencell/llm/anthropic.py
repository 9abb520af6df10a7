"""The ``claude`` provider: ``LLMClient`` over the anthropic SDK's Messages API."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from opencell.llm._arguments import arguments_from_object, arguments_to_object
from opencell.llm._sdk_errors import (
    Endpoint,
    malformed_response,
    read_response,
    stream_errors,
    translate_sdk_error,
)
from opencell.llm.base import (
    ChatMessage,
    LLMRequest,
    LLMResponse,
    TextSink,
    ToolCall,
    ToolSpec,
    Usage,
)
from opencell.llm.usage import ABSENT, checked_usage, field, missing_usage

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic
    from anthropic.types import (
        ContentBlockParam,
        Message,
        MessageParam,
        ToolParam,
        ToolResultBlockParam,
    )

DEFAULT_BASE_URL = "https://api.anthropic.com"


class AnthropicClient:
    """A Claude model behind the Anthropic Messages API.

    Retries (429, 5xx, connection errors) and timeouts are the SDK's own, configured here;
    whatever still fails is raised as an ``opencell.errors.LLMError``.
    """

    provider: str = "claude"

    def __init__(
        self, *, model: str, api_key: str, base_url: str | None = None,
        timeout: float = 60.0, max_retries: int = 2, key_variable: str = "ANTHROPIC_API_KEY",
    ) -> None:
        # Imported here so that importing OpenCell (e.g. for ``opencell --help``) stays fast.
        import anthropic

        self.model = model
        self.base_url = base_url or DEFAULT_BASE_URL
        self._sdk = anthropic
        self._message_type = anthropic.types.Message
        # An explicit api_key and base_url stop the SDK from reading its own environment
        # variables or credential files: the caller already decided where they come from.
        self._client: AsyncAnthropic = anthropic.AsyncAnthropic(
            api_key=api_key, base_url=self.base_url, timeout=timeout, max_retries=max_retries,
        )
        self._endpoint = Endpoint(
            provider=self.provider, api_name="Anthropic Messages API", base_url=self.base_url,
            key_variable=key_variable, base_url_variable="ANTHROPIC_BASE_URL",
            timeout=timeout, max_retries=max_retries, secret=api_key,
        )

    async def complete(self, request: LLMRequest) -> LLMResponse:
        """One Messages API call; raises ``LLMError`` once the SDK's retries are spent."""
        sdk = self._sdk
        try:
            message = await self._client.messages.create(
                model=self.model,
                max_tokens=request.max_tokens,
                messages=to_anthropic_messages(request.messages),
                system=request.system or sdk.omit,
                tools=[to_anthropic_tool(t) for t in request.tools] or sdk.omit,
                stream=False,
                # This SDK version has no ``temperature`` parameter; the API still reads it.
                extra_body=None if request.temperature is None
                else {"temperature": request.temperature},
            )
        except sdk.AnthropicError as exc:
            raise translate_sdk_error(exc, sdk, self._endpoint) from exc
        except ValueError as exc:  # the SDK's JSON decoding or model validation
            raise malformed_response(exc, self._endpoint) from exc
        return read_response(lambda raw: self._to_response(raw, request), message,
                             self._endpoint)

    async def stream(self, request: LLMRequest, on_text: TextSink) -> LLMResponse:
        """The same call through the SDK's streaming helper (``messages.stream``): each text
        delta goes to ``on_text`` as it arrives; the answer is the stream's final message."""
        sdk = self._sdk
        with stream_errors(sdk, sdk.AnthropicError, self._endpoint, self.provider):
            async with self._client.messages.stream(
                model=self.model,
                max_tokens=request.max_tokens,
                messages=to_anthropic_messages(request.messages),
                system=request.system or sdk.omit,
                tools=[to_anthropic_tool(t) for t in request.tools] or sdk.omit,
                extra_body=None if request.temperature is None
                else {"temperature": request.temperature},
            ) as stream:
                async for event in stream:
                    if event.type == "text" and event.text:
                        await on_text(event.text)
                message = await stream.get_final_message()
                request_id = stream.request_id
        response = read_response(lambda raw: self._to_response(raw, request), message,
                                 self._endpoint)
        if response.request_id is None and request_id:
            response = replace(response, request_id=request_id)
        return response

    def _to_response(self, message: Message | Any, request: LLMRequest) -> LLMResponse:
        if not isinstance(message, self._message_type):
            # A body that is not JSON at all comes back as a plain string.
            raise TypeError(f"expected a Message, got {type(message).__name__}")
        texts: list[str] = []
        calls: list[ToolCall] = []
        for block in message.content:
            if block.type == "text":
                texts.append(block.text)
            elif block.type == "tool_use":
                calls.append(ToolCall(block.id, block.name, arguments_from_object(block.input)))
        return LLMResponse(
            text="".join(texts),
            usage=self._usage(field(message, "usage"), request),
            model=message.model,
            tool_calls=tuple(calls),
            stop_reason=message.stop_reason,
            request_id=getattr(message, "_request_id", None),
            raw_finish={"id": message.id, "stop_reason": message.stop_reason,
                        "stop_sequence": message.stop_sequence},
        )

    def _usage(self, usage: object, request: LLMRequest) -> Usage:
        """The answer's usage, distrusted (see ``opencell/llm/_usage.py``)."""
        if usage is None or usage is ABSENT:
            return missing_usage(request, provider=self.provider)
        return checked_usage(
            request, provider=self.provider, input_tokens=field(usage, "input_tokens"),
            output_tokens=field(usage, "output_tokens"),
            cache_read=field(usage, "cache_read_input_tokens"),
            cache_write=field(usage, "cache_creation_input_tokens"))

    async def aclose(self) -> None:
        await self._client.close()


def to_anthropic_tool(spec: ToolSpec) -> ToolParam:
    """A neutral ``ToolSpec`` as a Messages API tool definition."""
    return {"name": spec.name, "description": spec.description,
            "input_schema": dict(spec.parameters)}


def to_anthropic_messages(messages: Sequence[ChatMessage]) -> list[MessageParam]:
    """Neutral history → Messages API ``messages``.

    Consecutive ``tool`` messages become one user message of ``tool_result`` blocks (the API
    wants every result of one assistant turn in the next user turn), and a user message right
    after them joins that turn as a text block.
    """
    out: list[MessageParam] = []
    results: list[ContentBlockParam] | None = None  # the open user turn of tool results
    for m in messages:
        if m.role == "tool":
            block: ToolResultBlockParam = {
                "type": "tool_result", "tool_use_id": m.tool_call_id,
                "content": _result_content(m), "is_error": m.is_error,
            }
            if results is None:
                results = []
                out.append({"role": "user", "content": results})
            results.append(block)
            continue
        if m.role == "user" and results is not None:
            if m.content:
                results.append({"type": "text", "text": m.content})
            results = None
            continue
        results = None
        out.append(_plain_or_blocks(m))
    return out


def _result_content(m: ChatMessage) -> Any:
    """A tool result's text, with the images it returned as image blocks after it."""
    if not m.attachments:
        return m.content
    blocks: list[Any] = [{"type": "text", "text": m.content}] if m.content else []
    blocks += [{"type": "image", "source": {"type": "base64", "media_type": a.mime_type,
                                             "data": a.data}}
               for a in m.attachments if a.kind == "image"]
    return blocks


def _plain_or_blocks(m: ChatMessage) -> MessageParam:
    if m.role == "user" or not m.tool_calls:
        role: Any = m.role
        return {"role": role, "content": m.content}
    blocks: list[ContentBlockParam] = []
    if m.content:
        blocks.append({"type": "text", "text": m.content})
    for call in m.tool_calls:
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name,
                       "input": arguments_to_object(call.arguments)})
    return {"role": "assistant", "content": blocks}
