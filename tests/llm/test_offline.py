"""OfflineClient: the labelled, deterministic demo model."""

from __future__ import annotations

from typing import Any

import pytest

from opencell.llm import ChatMessage, LLMClient, LLMRequest, ToolCall, ToolSpec
from opencell.llm.offline import OfflineClient, estimate_tokens, find_expression

CLOCK = ToolSpec("current_time", "The current time.", {"type": "object"})
CALCULATOR = ToolSpec("calculator", "Evaluate arithmetic.", {"type": "object"})


def ask(*messages: ChatMessage, **kwargs: Any) -> LLMRequest:
    return LLMRequest(system="You are a demo.", messages=messages, max_tokens=64, **kwargs)


async def test_plain_reply_is_labelled_and_explains_how_to_configure() -> None:
    client = OfflineClient()
    response = await client.complete(ask(ChatMessage("user", "Hello bot")))
    assert response.text.startswith("[offline]")
    assert "Hello bot" in response.text
    assert "offline demo model" in response.text
    assert "llm.provider" in response.text and "ANTHROPIC_API_KEY" in response.text
    assert response.tool_calls == ()
    assert response.stop_reason == "end_turn"
    assert response.model == "offline-demo"
    assert client.provider == "offline" and isinstance(client, LLMClient)


async def test_same_input_same_answer() -> None:
    request = ask(ChatMessage("user", "what is 2+2?"), tools=[CALCULATOR])
    first = await OfflineClient().complete(request)
    assert await OfflineClient().complete(request) == first
    other = await OfflineClient().complete(ask(ChatMessage("user", "what is 3+3?")))
    assert other.request_id != first.request_id


async def test_usage_is_a_rough_count_that_grows_with_the_input() -> None:
    short = await OfflineClient().complete(ask(ChatMessage("user", "hi")))
    long = await OfflineClient().complete(ask(ChatMessage("user", "hi " * 400)))
    assert short.usage.input_tokens >= 1 and short.usage.output_tokens >= 1
    assert long.usage.input_tokens >= short.usage.input_tokens + 290  # 1,200 chars ≈ 300
    assert estimate_tokens("") == 1 and estimate_tokens("one two three") == 4


@pytest.mark.parametrize("question", ["What time is it?", "what's the date today",
                                      "Check the clock please"])
async def test_asks_for_current_time_when_offered(question: str) -> None:
    response = await OfflineClient().complete(ask(ChatMessage("user", question),
                                                  tools=[CLOCK, CALCULATOR]))
    assert response.tool_calls == (ToolCall("offline-call-1", "current_time", {}),)
    assert response.stop_reason == "tool_use"
    assert response.text.startswith("[offline]")
    assert response.usage.output_tokens >= 1


async def test_no_tool_call_when_the_tool_is_not_offered() -> None:
    response = await OfflineClient().complete(ask(ChatMessage("user", "What time is it?"),
                                                  tools=[CALCULATOR]))
    assert response.tool_calls == ()
    assert response.stop_reason == "end_turn"


async def test_calls_the_calculator_with_the_expression() -> None:
    response = await OfflineClient().complete(
        ask(ChatMessage("user", "what is 12*(3+4)?"), tools=[CALCULATOR]))
    assert response.tool_calls == (
        ToolCall("offline-call-1", "calculator", {"expression": "12*(3+4)"}),)


@pytest.mark.parametrize("text, expression", [
    ("what is 12*(3+4)?", "12*(3+4)"),
    ("compute (2 + 3) * 4 please", "(2 + 3) * 4"),
    ("and 7.5 / 2.5?", "7.5 / 2.5"),
    ("(just 2**10)", "2**10"),
    ("I have 3 cats", None),
])
def test_find_expression(text: str, expression: str | None) -> None:
    assert find_expression(text) == expression


async def test_reports_tool_results_and_numbers_calls_after_the_history() -> None:
    first = ToolCall("offline-call-1", "current_time", {})
    history = (
        ChatMessage("user", "What time is it?"),
        ChatMessage("assistant", "[offline] Let me use the current_time tool.",
                    tool_calls=(first,)),
        ChatMessage("tool", "2026-05-01T12:00:00+00:00", tool_call_id=first.id,
                    tool_name="current_time"),
    )
    final = await OfflineClient().complete(ask(*history, tools=[CLOCK, CALCULATOR]))
    assert final.text == "[offline] current_time returned: 2026-05-01T12:00:00+00:00"
    assert final.tool_calls == () and final.stop_reason == "end_turn"

    again = await OfflineClient().complete(ask(
        *history, ChatMessage("assistant", final.text), ChatMessage("user", "and 6*7?"),
        tools=[CLOCK, CALCULATOR]))
    assert again.tool_calls == (ToolCall("offline-call-2", "calculator", {"expression": "6*7"}),)


async def test_reports_a_failed_tool() -> None:
    call = ToolCall("offline-call-1", "calculator", {"expression": "1/0"})
    response = await OfflineClient().complete(ask(
        ChatMessage("user", "1/0?"), ChatMessage("assistant", "", tool_calls=(call,)),
        ChatMessage("tool", "division by zero", tool_call_id=call.id, tool_name="calculator",
                    is_error=True),
        tools=[CALCULATOR]))
    assert response.text == "[offline] calculator failed: division by zero"


async def test_configured_model_name_is_answered() -> None:
    response = await OfflineClient("my-offline").complete(ask(ChatMessage("user", "hi")))
    assert response.model == "my-offline"
