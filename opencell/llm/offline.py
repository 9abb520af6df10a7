"""The ``offline`` provider: a deterministic demo model that needs no network and no key.

It exists so that ``opencell chat bots/demo.yaml`` works out of the box and so that every
code path after the model (tool calls, usage, costs, sessions) runs without a provider. Every
reply starts with ``[offline]`` so nobody mistakes it for a real model.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence

from opencell.llm.base import ChatMessage, LLMRequest, LLMResponse, TextSink, ToolCall, Usage

DEFAULT_MODEL = "offline-demo"
LABEL = "[offline]"

_TIME_WORDS = re.compile(
    r"\b(time|date|clock|today|what day|which day)\b", re.IGNORECASE)
_NUMBER = r"\d+(?:\.\d+)?"
_OPERAND = rf"[(\s]*-?{_NUMBER}[)\s]*"
_EXPRESSION = re.compile(rf"{_OPERAND}(?:(?:\*\*|[-+*/%])\s*{_OPERAND})+")


class OfflineClient:
    """A stand-in model: echoes, and calls ``current_time`` / ``calculator`` when offered.

    Deterministic: the same request always gets the same answer, ids and token counts.
    """

    provider: str = "offline"

    def __init__(self, model: str = DEFAULT_MODEL) -> None:
        self.model = model or DEFAULT_MODEL

    async def complete(self, request: LLMRequest) -> LLMResponse:
        results = _trailing_tool_results(request.messages)
        call: ToolCall | None = None
        if results:
            text = "\n".join(_report(m) for m in results)
        else:
            said = _last_user_text(request.messages)
            call = _pick_tool(said, {t.name for t in request.tools}, request.messages)
            if call is not None:
                text = f"{LABEL} Let me use the {call.name} tool."
            else:
                text = _echo(said)
        calls = (call,) if call else ()
        # Rough counts (about 4 characters a token) and a digest of what identifies the
        # request, without walking the text: the pipeline benchmark runs through this model.
        prompt_chars = len(request.system) + sum(_chars(m) for m in request.messages)
        prompt_chars += sum(len(t.name) + len(t.description) + 1 for t in request.tools)
        answer = " ".join([text, *(json.dumps(dict(c.arguments)) for c in calls)])
        last = request.messages[-1] if request.messages else None
        identity = (f"{self.model}\n{len(request.messages)}\n{prompt_chars}\n"
                    f"{_message_text(last) if last else ''}\n{request.system}\n"
                    f"{','.join(t.name for t in request.tools)}")
        digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
        return LLMResponse(
            text=text,
            usage=Usage(input_tokens=max(1, -(-prompt_chars // 4)),
                        output_tokens=estimate_tokens(answer)),
            model=self.model,
            tool_calls=calls,
            stop_reason="tool_use" if calls else "end_turn",
            request_id=f"offline-{digest}",
        )

    async def stream(self, request: LLMRequest, on_text: TextSink) -> LLMResponse:
        """``complete``'s answer, handed to ``on_text`` a word at a time (no delay: the
        offline model is as fast as a model can be)."""
        response = await self.complete(request)
        for piece in re.findall(r"\S+\s*|\s+", response.text):
            await on_text(piece)
        return response

    async def aclose(self) -> None:
        return None


def estimate_tokens(text: str) -> int:
    """A rough token count (about 4 characters a token), never below 1."""
    return max(1, -(-len(text) // 4))


def _chars(message: ChatMessage) -> int:
    if not message.tool_calls:
        return len(message.content)
    return len(_message_text(message))


def find_expression(text: str) -> str | None:
    """The first arithmetic expression in ``text`` (``"what is 12*(3+4)?"`` → ``12*(3+4)``)."""
    match = _EXPRESSION.search(text)
    if match is None:
        return None
    expression = match.group().strip()
    # The operand pattern may swallow a parenthesis that belongs to the surrounding prose.
    while expression.count("(") > expression.count(")") and expression.startswith("("):
        expression = expression[1:].strip()
    while expression.count(")") > expression.count("(") and expression.endswith(")"):
        expression = expression[:-1].strip()
    return expression


def _pick_tool(said: str, offered: set[str], history: Sequence[ChatMessage]) -> ToolCall | None:
    # Numbered by the calls already in the history, so ids stay unique and deterministic.
    n = 1 + sum(len(m.tool_calls) for m in history)
    if "current_time" in offered and _TIME_WORDS.search(said):
        return ToolCall(f"offline-call-{n}", "current_time", {})
    expression = find_expression(said) if "calculator" in offered else None
    if expression:
        return ToolCall(f"offline-call-{n}", "calculator", {"expression": expression})
    return None


def _trailing_tool_results(messages: Sequence[ChatMessage]) -> list[ChatMessage]:
    results: list[ChatMessage] = []
    for message in reversed(messages):
        if message.role != "tool":
            break
        results.insert(0, message)
    return results


def _report(result: ChatMessage) -> str:
    name = result.tool_name or "the tool"
    verb = "failed" if result.is_error else "returned"
    return f"{LABEL} {name} {verb}: {result.content}"


def _last_user_text(messages: Sequence[ChatMessage]) -> str:
    for message in reversed(messages):
        if message.role == "user":
            return message.content
    return ""


def _echo(said: str) -> str:
    quoted = f"You said: “{said.strip()}”. " if said.strip() else ""
    return (
        f"{LABEL} {quoted}I am the offline demo model, so I can only echo you (and use the "
        "current_time and calculator tools). To talk to a real model, set llm.provider in the "
        "bot's YAML to claude, openai or moonshot and set ANTHROPIC_API_KEY, OPENAI_API_KEY "
        "or MOONSHOT_API_KEY."
    )


def _message_text(message: ChatMessage) -> str:
    if not message.tool_calls:
        return message.content
    calls = " ".join(f"{c.name} {json.dumps(dict(c.arguments))}" for c in message.tool_calls)
    return f"{message.content} {calls}".strip()
