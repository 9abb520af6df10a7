"""AnthropicClient against the loopback fake: request shapes and response mapping."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from opencell.llm import INVALID_JSON_KEY, ChatMessage, LLMRequest, ToolCall, ToolSpec
from opencell.llm.anthropic import AnthropicClient
from tests.fakes.llm_server import ANTHROPIC_PATH, FakeLLMServer, malformed, reply, tool_call

CLOCK = ToolSpec("current_time", "The current time.", {"type": "object", "properties": {
    "tz": {"type": "string"}}})


@pytest.fixture
async def claude(llm_server: FakeLLMServer) -> AsyncIterator[AnthropicClient]:
    client = AnthropicClient(model="claude-test", api_key="sk-ant-test",
                             base_url=llm_server.url, max_retries=0, timeout=5)
    yield client
    await client.aclose()


def ask(*messages: ChatMessage, **kwargs: Any) -> LLMRequest:
    return LLMRequest(system="Be brief.", messages=messages, max_tokens=64, **kwargs)


async def test_text_reply_maps_text_usage_model_and_request_id(
    llm_server: FakeLLMServer, claude: AnthropicClient,
) -> None:
    llm_server.push(reply("Hello there.", model="claude-test-20990101", usage={
        "input_tokens": 12, "output_tokens": 7,
        "cache_read_input_tokens": 100, "cache_creation_input_tokens": 30}))

    response = await claude.complete(ask(ChatMessage("user", "hi")))

    assert response.text == "Hello there."
    assert (response.usage.input_tokens, response.usage.output_tokens) == (12, 7)
    assert (response.usage.cache_read_tokens, response.usage.cache_write_tokens) == (100, 30)
    assert response.model == "claude-test-20990101"  # as answered, not as requested
    assert response.stop_reason == "end_turn"
    assert response.request_id == "req_fake_1"
    assert response.tool_calls == ()

    path, sent, headers = llm_server.requests[0]
    assert path == ANTHROPIC_PATH
    # This SDK version sends the key as a bearer token; older ones used x-api-key.
    assert headers.get("x-api-key", headers.get("Authorization")) in (
        "sk-ant-test", "Bearer sk-ant-test")
    assert sent["model"] == "claude-test"
    assert sent["max_tokens"] == 64
    assert sent["system"] == "Be brief."
    assert sent["messages"] == [{"role": "user", "content": "hi"}]
    assert "tools" not in sent and "temperature" not in sent


async def test_null_cache_counts_become_zero(
    llm_server: FakeLLMServer, claude: AnthropicClient,
) -> None:
    llm_server.push(reply("ok", usage={"cache_read_input_tokens": None,
                                       "cache_creation_input_tokens": None}))
    usage = (await claude.complete(ask(ChatMessage("user", "hi")))).usage
    assert (usage.cache_read_tokens, usage.cache_write_tokens) == (0, 0)
    assert usage.input_tokens == 10


async def test_several_text_blocks_are_joined(
    llm_server: FakeLLMServer, claude: AnthropicClient,
) -> None:
    llm_server.push(malformed({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-test",
        "content": [{"type": "text", "text": "one, "}, {"type": "text", "text": "two"}],
        "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": 2}}))
    response = await claude.complete(ask(ChatMessage("user", "count")))
    assert response.text == "one, two"
    assert response.usage.cache_read_tokens == 0  # fields absent from the body


async def test_temperature_is_sent_when_set(
    llm_server: FakeLLMServer, claude: AnthropicClient,
) -> None:
    await claude.complete(ask(ChatMessage("user", "hi"), temperature=0.2))
    assert llm_server.requests[0].json["temperature"] == 0.2


async def test_tool_round_trip(llm_server: FakeLLMServer, claude: AnthropicClient) -> None:
    llm_server.push(tool_call("current_time", {"tz": "UTC"}, id="toolu_1", text="Checking."))
    first = await claude.complete(ask(ChatMessage("user", "what time is it?"), tools=[CLOCK]))

    assert first.stop_reason == "tool_use"
    assert first.text == "Checking."
    assert first.tool_calls == (ToolCall("toolu_1", "current_time", {"tz": "UTC"}),)
    assert llm_server.requests[0].json["tools"] == [{
        "name": "current_time", "description": "The current time.",
        "input_schema": {"type": "object", "properties": {"tz": {"type": "string"}}}}]

    second_call = ToolCall("toolu_2", "current_time", {})
    history = (
        ChatMessage("user", "what time is it?"),
        ChatMessage("assistant", "Checking.", tool_calls=(*first.tool_calls, second_call)),
        ChatMessage("tool", "12:00 UTC", tool_call_id="toolu_1", tool_name="current_time"),
        ChatMessage("tool", "no such zone", tool_call_id="toolu_2", tool_name="current_time",
                    is_error=True),
    )
    llm_server.push(reply("It is noon."))
    final = await claude.complete(ask(*history, tools=[CLOCK]))

    assert final.text == "It is noon."
    sent = llm_server.requests[1].json["messages"]
    assert sent[1] == {"role": "assistant", "content": [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_1", "name": "current_time", "input": {"tz": "UTC"}},
        {"type": "tool_use", "id": "toolu_2", "name": "current_time", "input": {}},
    ]}
    # Both results of one assistant turn travel in ONE user message.
    assert sent[2:] == [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "12:00 UTC",
         "is_error": False},
        {"type": "tool_result", "tool_use_id": "toolu_2", "content": "no such zone",
         "is_error": True},
    ]}]


async def test_user_text_after_tool_results_joins_their_turn(
    llm_server: FakeLLMServer, claude: AnthropicClient,
) -> None:
    call = ToolCall("toolu_1", "current_time", {})
    await claude.complete(ask(
        ChatMessage("user", "time?"),
        ChatMessage("assistant", "", tool_calls=(call,)),
        ChatMessage("tool", "12:00", tool_call_id="toolu_1"),
        ChatMessage("user", "and tomorrow?"),
    ))
    sent = llm_server.requests[0].json["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[1]["content"] == [{"type": "tool_use", "id": "toolu_1",
                                   "name": "current_time", "input": {}}]
    assert sent[2]["content"][1] == {"type": "text", "text": "and tomorrow?"}


async def test_invalid_arguments_from_history_are_sent_as_an_empty_object(
    llm_server: FakeLLMServer, claude: AnthropicClient,
) -> None:
    # An OpenAI-style invalid call replayed to Claude: tool_use.input must be an object.
    call = ToolCall("call_1", "calculator", {INVALID_JSON_KEY: '{"expression": "2+'})
    await claude.complete(ask(
        ChatMessage("user", "2+2?"),
        ChatMessage("assistant", "", tool_calls=(call,)),
        ChatMessage("tool", "invalid arguments", tool_call_id="call_1", is_error=True),
    ))
    assert llm_server.requests[0].json["messages"][1]["content"][0]["input"] == {}
