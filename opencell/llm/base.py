"""The provider-neutral model interface: one Protocol, the request and the response it speaks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

Role = Literal["user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens one model call used, as the provider reported them.

    ``input_tokens`` excludes cached tokens (Anthropic's convention); OpenAI-style providers
    report cached tokens inside ``prompt_tokens``, so their wrapper subtracts them.
    ``estimated`` is True when the provider's numbers were missing or impossible and these
    are the call's worst case instead (see ``opencell/llm/_usage.py``).
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    estimated: bool = field(default=False, kw_only=True)

    @property
    def total_tokens(self) -> int:
        return (
            self.input_tokens + self.output_tokens + self.cache_read_tokens
            + self.cache_write_tokens
        )


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The model asks for one tool to run."""

    id: str
    name: str
    arguments: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool as the model sees it: name, description and JSON schema of its arguments."""

    name: str
    description: str
    parameters: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Attachment:
    """Binary content a tool returned (an MCP image), for providers that can show it."""

    kind: Literal["image"]
    mime_type: str
    data: str
    """Base64, as the tool sent it."""


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One entry of a conversation's history, in neutral form.

    ``assistant`` messages may carry ``tool_calls``; each call is answered by one ``tool``
    message with the matching ``tool_call_id``.
    """

    role: Role
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str = ""
    tool_name: str = ""
    is_error: bool = False
    attachments: tuple[Attachment, ...] = ()
    """``tool`` messages: images the tool returned; providers that cannot take them see only
    ``content`` (which describes them)."""


@dataclass(frozen=True, slots=True)
class LLMRequest:
    """Everything one model call needs."""

    system: str
    messages: Sequence[ChatMessage]
    max_tokens: int
    tools: Sequence[ToolSpec] = ()
    temperature: float | None = None


@dataclass(frozen=True, slots=True)
class LLMResponse:
    """What the model answered."""

    text: str
    usage: Usage
    model: str
    """The model as the provider answered (may differ from the one requested)."""
    tool_calls: tuple[ToolCall, ...] = ()
    stop_reason: str | None = None
    request_id: str | None = None
    raw_finish: Mapping[str, Any] = field(default_factory=dict)
    priced: bool = False
    """The call was priced (by the recording wrapper), so ``cost_usd`` is its cost."""
    cost_usd: float | None = None
    """What the call cost in USD once ``priced``; None then means the model has no price."""


@runtime_checkable
class LLMClient(Protocol):
    """A chat model. Implementations map SDK errors into ``opencell.errors.LLMError``."""

    @property
    def provider(self) -> str:
        """``claude``, ``openai``, ``moonshot`` or ``offline``."""

    @property
    def model(self) -> str:
        """The model requested."""

    async def complete(self, request: LLMRequest) -> LLMResponse: ...

    async def aclose(self) -> None: ...


TextSink = Callable[[str], Awaitable[None]]
"""Receives the answer's text as the model writes it, one piece (delta) at a time."""


@runtime_checkable
class StreamingLLM(Protocol):
    """An ``LLMClient`` that can also stream: ``stream`` calls ``on_text`` with each piece of
    the answer's text as it arrives and returns the same ``LLMResponse`` ``complete`` would.

    Optional: ``opencell.llm.streaming.stream_or_complete`` falls back to ``complete`` (one
    piece, the whole text) for a client without it.
    """

    async def stream(self, request: LLMRequest, on_text: TextSink) -> LLMResponse: ...
