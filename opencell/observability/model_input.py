"""What a model call was sent, recorded as the change since the session's previous call.

A conversation's history is re-sent on every model call, so storing each call's whole input
would grow the store quadratically with the conversation. :class:`InputDeltas` keeps, per
session, the messages of its previous call (references to the history's own, immutable
``ChatMessage`` objects: no copy) and records each call as

- ``input``: ``{"from": d, "keep": k, "add": [...], "n": total, "call": i}`` — the call's
  messages are the previous call's ``[d:d+k]`` followed by ``add`` (``d`` > 0 when the
  history window dropped its oldest turns); ``call`` numbers the session's calls, so a
  reader can tell a gap (a record lost) from a chain it can follow;
- ``system``: the system prompt, only when it differs from the previous call's;
- ``tools_offered``: the tools' definitions, only when they differ from the previous call's.

Readers rebuild the whole input with :func:`opencell.transcript.rebuild`. Finding the shared
prefix compares object identities (the history keeps the very same message objects from one
call to the next), so recording a call costs O(messages) pointer comparisons plus the
redaction of what is new.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import islice
from operator import is_
from typing import Any

from opencell.llm.base import ChatMessage, LLMRequest, ToolCall, ToolSpec

Redact = Callable[[str], str]
RedactValue = Callable[[Any], Any]


class _Sent:
    """The previous call of one session: its messages, system prompt and tools."""

    __slots__ = ("calls", "messages", "system", "tools")

    def __init__(self) -> None:
        self.calls = 0
        self.messages: tuple[ChatMessage, ...] = ()
        self.system: str | None = None
        self.tools: tuple[ToolSpec, ...] | None = None


class InputDeltas:
    """Per-session state for recording each model call's input as a delta."""

    def __init__(self) -> None:
        self._sessions: dict[str, _Sent] = {}

    def forget(self, session_id: str) -> None:
        """The session ended: drop its state."""
        self._sessions.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._sessions)

    def fields(self, session_id: str, request: LLMRequest, redact: Redact,
               redact_value: RedactValue) -> dict[str, Any]:
        """The record fields for ``request`` (see the module docstring); updates the state."""
        sent = self._sessions.get(session_id)
        if sent is None:
            sent = self._sessions[session_id] = _Sent()
        messages = tuple(request.messages)
        start, keep = _overlap(sent.messages, messages)
        sent.calls += 1
        out: dict[str, Any] = {"input": {
            "from": start, "keep": keep, "n": len(messages), "call": sent.calls,
            "add": [encode(m, redact, redact_value) for m in islice(messages, keep, None)]}}
        system = request.system
        if sent.system is None or (system is not sent.system and system != sent.system):
            out["system"] = redact(system) if system else ""
            sent.system = system
        tools = request.tools
        if sent.tools is None or not _same_tools(sent.tools, tools):
            out["tools_offered"] = [tool_definition(t, redact_value) for t in tools]
            sent.tools = tuple(tools)
        sent.messages = messages
        return out


def _overlap(before: tuple[ChatMessage, ...], now: tuple[ChatMessage, ...]) -> tuple[int, int]:
    """(d, k): ``now`` starts with ``before[d:d+k]`` (k as large as possible)."""
    if not before or not now:
        return 0, 0
    first = now[0]
    if before[0] is first or before[0] == first:
        start = 0
    else:
        try:
            start = before.index(first)  # the history window dropped its oldest turns
        except ValueError:
            return 0, 0
    count = min(len(before) - start, len(now))
    if all(map(is_, islice(before, start, start + count), islice(now, 0, count))):
        return start, count
    keep = 0
    for a, b in zip(islice(before, start, start + count), now, strict=False):
        if a is not b and a != b:
            break
        keep += 1
    return start, keep


def _same_tools(before: tuple[ToolSpec, ...], now: Sequence[ToolSpec]) -> bool:
    if len(before) != len(now):
        return False
    return all(a is b or a == b for a, b in zip(before, now, strict=True))


def encode(message: ChatMessage, redact: Redact, redact_value: RedactValue) -> dict[str, Any]:
    """One message as stored: role and redacted content, plus its tool calls or tool answer."""
    out: dict[str, Any] = {"role": message.role, "content": redact(message.content)}
    if message.tool_calls:
        out["tool_calls"] = [call_dict(c, redact_value) for c in message.tool_calls]
    if message.role == "tool":
        out["tool_call_id"] = message.tool_call_id
        if message.tool_name:
            out["name"] = message.tool_name
        if message.is_error:
            out["is_error"] = True
    return out


def call_dict(call: ToolCall, redact_value: RedactValue) -> dict[str, Any]:
    """A tool call the model asked for: id, name and redacted arguments."""
    return {"id": call.id, "name": call.name, "arguments": redact_value(call.arguments)}


def tool_definition(spec: ToolSpec, redact_value: RedactValue) -> dict[str, Any]:
    """A tool as offered to the model: name, description and JSON schema."""
    return {"name": spec.name, "description": spec.description,
            "parameters": redact_value(spec.parameters)}
