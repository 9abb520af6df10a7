"""A model call's input and output in the shapes tracing backends read natively.

- OpenTelemetry GenAI semantic conventions: ``gen_ai.input.messages`` /
  ``gen_ai.output.messages`` (messages of typed parts: ``text``, ``tool_call``,
  ``tool_call_response``), ``gen_ai.system_instructions``, ``gen_ai.tool.definitions``, and
  the convention's finish reasons (``stop``, ``length``, ``content_filter``, ``tool_call``,
  ``error``).
- OpenInference (Arize Phoenix): ``llm.input_messages.{i}.message.*`` /
  ``llm.output_messages.{i}.message.*`` flattened, ``llm.tools.{i}.tool.json_schema``, and an
  ``input.value`` that carries the *whole* input (chat-completions JSON), so a backend that
  shows it in preference to the messages shows the same thing.

Every function takes the stored, already redacted message dicts (``opencell.transcript``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from opencell.transcript import ModelInput

FINISH_REASONS = {
    "end_turn": "stop", "stop": "stop", "stop_sequence": "stop", "pause_turn": "stop",
    "tool_use": "tool_call", "tool_calls": "tool_call", "function_call": "tool_call",
    "max_tokens": "length", "length": "length", "model_context_window_exceeded": "length",
    "refusal": "content_filter", "content_filter": "content_filter",
}
"""Provider stop reasons (Anthropic's words, which the runtime uses) → the conventions'."""


def finish_reason(raw: object) -> str:
    """The conventions' finish reason for a stored stop reason (unknown ones as they are)."""
    text = str(raw or "stop")
    return FINISH_REASONS.get(text, text)


def as_json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def _arguments(value: object) -> Any:
    return value if isinstance(value, Mapping) else {}


# ------------------------------------------------------------ GenAI conventions

def parts(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One stored message as GenAI message parts."""
    content = message.get("content")
    if message.get("role") == "tool":
        return [{"type": "tool_call_response", "id": str(message.get("tool_call_id") or ""),
                 "response": content if content is not None else ""}]
    out: list[dict[str, Any]] = []
    if content:
        out.append({"type": "text", "content": content})
    for call in message.get("tool_calls") or ():
        if isinstance(call, Mapping):
            out.append({"type": "tool_call", "id": str(call.get("id") or ""),
                        "name": str(call.get("name") or ""),
                        "arguments": _arguments(call.get("arguments"))})
    return out


def genai_messages(messages: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``gen_ai.input.messages``: every message of the input, in order."""
    return [{"role": str(m.get("role") or "user"), "parts": parts(m)} for m in messages]


def output_message(data: Mapping[str, Any]) -> dict[str, Any]:
    """The model's answer as a stored message (text and tool calls)."""
    return {"role": "assistant", "content": data.get("completion") or "",
            "tool_calls": [c for c in data.get("completion_calls") or ()
                           if isinstance(c, Mapping)]}


def genai_output(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``gen_ai.output.messages``: the answer with its tool calls and finish reason."""
    return [{"role": "assistant", "parts": parts(output_message(data)),
             "finish_reason": finish_reason(data.get("stop_reason"))}]


def system_instructions(system: str) -> list[dict[str, str]]:
    return [{"type": "text", "content": system}]


def tool_definitions(tools: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "function", "name": str(t.get("name") or ""),
             "description": str(t.get("description") or ""),
             "parameters": t.get("parameters") or {}} for t in tools]


# ------------------------------------------------------------ OpenInference

def chat_messages(model_input: ModelInput) -> list[dict[str, Any]]:
    """The input as chat-completions messages (system first): what ``input.value`` holds."""
    out: list[dict[str, Any]] = []
    if model_input.system:
        out.append({"role": "system", "content": model_input.system})
    if model_input.missing:
        out.append({"role": "system", "content":
                    f"[{model_input.missing} earlier messages were not recorded]"})
    for m in model_input.messages:
        out.append(chat_message(m))
    return out


def chat_message(m: Mapping[str, Any]) -> dict[str, Any]:
    role = str(m.get("role") or "user")
    item: dict[str, Any] = {"role": role, "content": m.get("content") or ""}
    if role == "tool":
        item["tool_call_id"] = str(m.get("tool_call_id") or "")
    calls = [c for c in m.get("tool_calls") or () if isinstance(c, Mapping)]
    if calls:
        item["tool_calls"] = [{"id": str(c.get("id") or ""), "type": "function", "function": {
            "name": str(c.get("name") or ""),
            "arguments": as_json(_arguments(c.get("arguments")))}} for c in calls]
    return item


def input_value(model_input: ModelInput) -> str:
    """``input.value``: the whole input as JSON (messages, and the tools offered)."""
    value: dict[str, Any] = {"messages": chat_messages(model_input)}
    if model_input.tools:
        value["tools"] = tool_definitions(model_input.tools)
    return as_json(value)


def flat_messages(prefix: str, messages: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """OpenInference's flattened ``{prefix}.{i}.message.*`` attributes."""
    out: dict[str, Any] = {}
    for i, m in enumerate(messages):
        key = f"{prefix}.{i}.message"
        out[f"{key}.role"] = str(m.get("role") or "user")
        out[f"{key}.content"] = str(m.get("content") or "")
        if m.get("tool_call_id"):
            out[f"{key}.tool_call_id"] = str(m["tool_call_id"])
        for j, call in enumerate(m.get("tool_calls") or ()):
            function = call.get("function") or {}
            call_key = f"{key}.tool_calls.{j}.tool_call"
            out[f"{call_key}.id"] = str(call.get("id") or "")
            out[f"{call_key}.function.name"] = str(function.get("name") or "")
            out[f"{call_key}.function.arguments"] = str(function.get("arguments") or "{}")
    return out


def flat_tools(tools: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """``llm.tools.{i}.tool.json_schema``: each tool offered, as a function schema."""
    return {f"llm.tools.{i}.tool.json_schema": as_json({"type": "function", "function": {
        "name": str(t.get("name") or ""), "description": str(t.get("description") or ""),
        "parameters": t.get("parameters") or {}}}) for i, t in enumerate(tools)}
