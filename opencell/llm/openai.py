"""The ``openai`` and ``moonshot`` providers: ``LLMClient`` over OpenAI-style chat completions.

Moonshot (Kimi) speaks the same API at its own base URL, so it is this class with
``provider="moonshot"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from opencell.llm._arguments import arguments_from_json, arguments_to_json
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
    from openai import AsyncOpenAI
    from openai.types import CompletionUsage
    from openai.types.chat import (
        ChatCompletion,
        ChatCompletionFunctionToolParam,
        ChatCompletionMessageFunctionToolCallParam,
        ChatCompletionMessageParam,
    )

OPENAI_BASE_URL = "https://api.openai.com/v1"
MOONSHOT_BASE_URL = "https://api.moonshot.ai/v1"

# finish_reason → the neutral stop reasons (Anthropic's words, which the runtime reads).
_STOP_REASONS = {"stop": "end_turn", "tool_calls": "tool_use", "function_call": "tool_use",
                 "length": "max_tokens", "content_filter": "refusal"}


class OpenAIClient:
    """A model behind an OpenAI-compatible chat completions API (OpenAI, Moonshot).

    Retries and timeouts are the SDK's own, configured here; whatever still fails is raised as
    an ``opencell.errors.LLMError``.
    """

    def __init__(
        self, *, model: str, api_key: str, base_url: str | None = None,
        timeout: float = 60.0, max_retries: int = 2, provider: str = "openai",
        key_variable: str | None = None,
    ) -> None:
        # Imported here so that importing OpenCell (e.g. for ``opencell --help``) stays fast.
        import openai

        moonshot = provider == "moonshot"
        self.provider = provider
        self.model = model
        self.base_url = base_url or (MOONSHOT_BASE_URL if moonshot else OPENAI_BASE_URL)
        self._sdk = openai
        self._completion_type = openai.types.chat.ChatCompletion
        # An explicit api_key and base_url stop the SDK from reading OPENAI_* variables: for
        # Moonshot they would be the wrong account.
        self._client: AsyncOpenAI = openai.AsyncOpenAI(
            api_key=api_key, base_url=self.base_url, timeout=timeout, max_retries=max_retries,
        )
        key_variable = key_variable or ("MOONSHOT_API_KEY" if moonshot else "OPENAI_API_KEY")
        self._endpoint = Endpoint(
            provider=provider, api_name="OpenAI-compatible chat completions API",
            base_url=self.base_url, key_variable=key_variable,
            base_url_variable="MOONSHOT_BASE_URL" if moonshot else "OPENAI_BASE_URL",
            timeout=timeout, max_retries=max_retries, secret=api_key,
        )
        # OpenAI deprecated max_tokens for max_completion_tokens (reasoning models reject the
        # old name); other OpenAI-compatible servers such as Moonshot document max_tokens.
        self._old_max_tokens = moonshot

    async def complete(self, request: LLMRequest) -> LLMResponse:
        """One chat completion; raises ``LLMError`` once the SDK's retries are spent."""
        sdk = self._sdk
        try:
            completion = await self._client.chat.completions.create(
                model=self.model,
                messages=to_openai_messages(request.system, request.messages),
                tools=[to_openai_tool(t) for t in request.tools] or sdk.omit,
                temperature=sdk.omit if request.temperature is None else request.temperature,
                max_tokens=request.max_tokens if self._old_max_tokens else sdk.omit,
                max_completion_tokens=sdk.omit if self._old_max_tokens else request.max_tokens,
            )
        except sdk.OpenAIError as exc:
            raise translate_sdk_error(exc, sdk, self._endpoint) from exc
        except ValueError as exc:  # the SDK's JSON decoding or model validation
            raise malformed_response(exc, self._endpoint) from exc
        return read_response(lambda raw: self._to_response(raw, request), completion,
                             self._endpoint)

    async def stream(self, request: LLMRequest, on_text: TextSink) -> LLMResponse:
        """The same call through the SDK's streaming helper (``chat.completions.stream``):
        each content delta goes to ``on_text`` as it arrives; the answer is the accumulated
        completion. OpenAI is asked for the usage in the last chunk (``include_usage``);
        servers that do not send it are billed at the worst case, as for ``complete``."""
        sdk = self._sdk
        with stream_errors(sdk, sdk.OpenAIError, self._endpoint, self.provider):
            async with self._client.chat.completions.stream(
                model=self.model,
                messages=to_openai_messages(request.system, request.messages),
                tools=[to_openai_tool(t) for t in request.tools] or sdk.omit,
                temperature=sdk.omit if request.temperature is None else request.temperature,
                max_tokens=request.max_tokens if self._old_max_tokens else sdk.omit,
                max_completion_tokens=sdk.omit if self._old_max_tokens else request.max_tokens,
                stream_options=sdk.omit if self._old_max_tokens else {"include_usage": True},
            ) as stream:
                async for event in stream:
                    if event.type == "content.delta" and event.delta:
                        await on_text(event.delta)
                completion = await stream.get_final_completion()
                request_id = stream._response.headers.get("x-request-id")
        response = read_response(lambda raw: self._to_response(raw, request), completion,
                                 self._endpoint)
        if response.request_id is None and request_id:
            response = replace(response, request_id=request_id)
        return response

    def _to_response(self, completion: ChatCompletion | Any, request: LLMRequest
                     ) -> LLMResponse:
        if not isinstance(completion, self._completion_type):
            # A body that is not JSON at all comes back as a plain string.
            raise TypeError(f"expected a ChatCompletion, got {type(completion).__name__}")
        if not completion.choices:
            raise ValueError("the answer has no choices")
        choice = completion.choices[0]
        message = choice.message
        calls = tuple(
            ToolCall(call.id, call.function.name, arguments_from_json(call.function.arguments))
            for call in message.tool_calls or ()
            if call.type == "function"
        )
        finish = choice.finish_reason
        return LLMResponse(
            text=message.content or "",
            usage=to_usage(field(completion, "usage"), request, provider=self.provider),
            model=completion.model,
            tool_calls=calls,
            stop_reason=_STOP_REASONS.get(finish, finish) if finish else None,
            request_id=getattr(completion, "_request_id", None),
            raw_finish={"id": completion.id, "finish_reason": finish,
                        "system_fingerprint": completion.system_fingerprint},
        )

    async def aclose(self) -> None:
        await self._client.close()


def to_usage(usage: CompletionUsage | object, request: LLMRequest, *,
             provider: str = "openai") -> Usage:
    """The answer's usage, distrusted (see ``opencell/llm/_usage.py``).

    OpenAI counts cached tokens inside ``prompt_tokens``; ``Usage`` counts them apart. An
    OpenAI-compatible server may leave ``usage`` out: the call is then its worst case.
    """
    if usage is None or usage is ABSENT:
        return missing_usage(request, provider=provider)
    details = field(usage, "prompt_tokens_details")
    cached = field(details, "cached_tokens")
    if cached is ABSENT or cached is None or cached == 0:
        # Moonshot reports its context cache hits as a top-level ``cached_tokens``.
        top = field(usage, "cached_tokens")
        if top is not ABSENT and top is not None:
            cached = top
    return checked_usage(
        request, provider=provider, input_tokens=field(usage, "prompt_tokens"),
        output_tokens=field(usage, "completion_tokens"), cache_read=cached,
        cache_write=field(details, "cache_write_tokens"), cache_in_input=True)


def to_openai_tool(spec: ToolSpec) -> ChatCompletionFunctionToolParam:
    """A neutral ``ToolSpec`` as a chat completions function tool."""
    return {"type": "function", "function": {
        "name": spec.name, "description": spec.description, "parameters": dict(spec.parameters),
    }}


def to_openai_messages(
    system: str, messages: Sequence[ChatMessage],
) -> list[ChatCompletionMessageParam]:
    """The system prompt and the neutral history as chat completions ``messages``."""
    out: list[ChatCompletionMessageParam] = []
    if system:
        out.append({"role": "system", "content": system})
    for m in messages:
        if m.role == "user":
            out.append({"role": "user", "content": m.content})
        elif m.role == "tool":
            # The API has no error flag for tool results; say it in the content instead.
            content = f"Error: {m.content}" if m.is_error else m.content
            out.append({"role": "tool", "tool_call_id": m.tool_call_id, "content": content})
        elif m.tool_calls:
            calls: list[ChatCompletionMessageFunctionToolCallParam] = [
                {"id": c.id, "type": "function",
                 "function": {"name": c.name, "arguments": arguments_to_json(c.arguments)}}
                for c in m.tool_calls
            ]
            out.append({"role": "assistant", "content": m.content or None, "tool_calls": calls})
        else:
            out.append({"role": "assistant", "content": m.content})
    return out
