"""OpenAIClient (OpenAI and Moonshot) against the loopback fake: shapes and mapping."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from opencell.llm import INVALID_JSON_KEY, ChatMessage, LLMRequest, ToolCall, ToolSpec
from opencell.llm.openai import OpenAIClient
from tests.fakes.llm_server import OPENAI_PATH, FakeLLMServer, reply, tool_call

CALCULATOR = ToolSpec("calculator", "Evaluate arithmetic.", {
    "type": "object", "properties": {"expression": {"type": "string"}},
    "required": ["expression"]})


@pytest.fixture
async def gpt(llm_server: FakeLLMServer) -> AsyncIterator[OpenAIClient]:
    client = OpenAIClient(model="gpt-test", api_key="sk-test",
                          base_url=llm_server.openai_base_url, max_retries=0, timeout=5)
    yield client
    await client.aclose()


def ask(*messages: ChatMessage, **kwargs: Any) -> LLMRequest:
    return LLMRequest(system="Be brief.", messages=messages, max_tokens=64, **kwargs)


async def test_text_reply_maps_usage_without_cached_tokens_in_input(
    llm_server: FakeLLMServer, gpt: OpenAIClient,
) -> None:
    llm_server.push(reply("Hello.", model="gpt-test-2099", usage={
        "prompt_tokens": 100, "completion_tokens": 7,
        "prompt_tokens_details": {"cached_tokens": 40}}))

    response = await gpt.complete(ask(ChatMessage("user", "hi")))

    assert response.text == "Hello."
    assert response.usage.input_tokens == 60  # prompt_tokens counts the cached ones too
    assert response.usage.cache_read_tokens == 40
    assert response.usage.output_tokens == 7
    assert response.usage.total_tokens == 107
    assert response.model == "gpt-test-2099"
    assert response.stop_reason == "end_turn"
    assert response.raw_finish["finish_reason"] == "stop"
    assert response.request_id == "req_fake_1"

    path, sent, headers = llm_server.requests[0]
    assert path == OPENAI_PATH
    assert headers["Authorization"] == "Bearer sk-test"
    assert sent["model"] == "gpt-test"
    assert sent["max_completion_tokens"] == 64 and "max_tokens" not in sent
    assert sent["messages"] == [{"role": "system", "content": "Be brief."},
                                {"role": "user", "content": "hi"}]
    assert "tools" not in sent and "temperature" not in sent


async def test_missing_prompt_details_mean_no_cache(
    llm_server: FakeLLMServer, gpt: OpenAIClient,
) -> None:
    llm_server.push(reply("ok", usage={"prompt_tokens": 30, "prompt_tokens_details": None}))
    usage = (await gpt.complete(ask(ChatMessage("user", "hi")))).usage
    assert (usage.input_tokens, usage.cache_read_tokens) == (30, 0)


async def test_cache_write_tokens_are_split_out(
    llm_server: FakeLLMServer, gpt: OpenAIClient,
) -> None:
    llm_server.push(reply("ok", usage={"prompt_tokens": 100, "prompt_tokens_details": {
        "cached_tokens": 20, "cache_write_tokens": 50}}))
    usage = (await gpt.complete(ask(ChatMessage("user", "hi")))).usage
    assert (usage.input_tokens, usage.cache_read_tokens, usage.cache_write_tokens) == (30, 20, 50)


async def test_length_finish_and_temperature(
    llm_server: FakeLLMServer, gpt: OpenAIClient,
) -> None:
    llm_server.push(reply("cut sh", stop_reason="length"))
    response = await gpt.complete(ask(ChatMessage("user", "hi"), temperature=0.3))
    assert response.stop_reason == "max_tokens"
    assert llm_server.requests[0].json["temperature"] == 0.3


async def test_tool_round_trip(llm_server: FakeLLMServer, gpt: OpenAIClient) -> None:
    llm_server.push(tool_call("calculator", {"expression": "12*(3+4)"}, id="call_1"))
    first = await gpt.complete(ask(ChatMessage("user", "12*(3+4)?"), tools=[CALCULATOR]))

    assert first.stop_reason == "tool_use"
    assert first.tool_calls == (ToolCall("call_1", "calculator", {"expression": "12*(3+4)"}),)
    assert llm_server.requests[0].json["tools"] == [{"type": "function", "function": {
        "name": "calculator", "description": "Evaluate arithmetic.",
        "parameters": CALCULATOR.parameters}}]

    llm_server.push(reply("84."))
    await gpt.complete(ask(
        ChatMessage("user", "12*(3+4)?"),
        ChatMessage("assistant", "", tool_calls=first.tool_calls),
        ChatMessage("tool", "84", tool_call_id="call_1", tool_name="calculator"),
        ChatMessage("tool", "division by zero", tool_call_id="call_2", is_error=True),
        tools=[CALCULATOR],
    ))
    sent = llm_server.requests[1].json["messages"]
    assert sent[2] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "calculator", "arguments": '{"expression": "12*(3+4)"}'}}]}
    assert sent[3] == {"role": "tool", "tool_call_id": "call_1", "content": "84"}
    # The API has no is_error flag: the failure is said in the content.
    assert sent[4] == {"role": "tool", "tool_call_id": "call_2",
                       "content": "Error: division by zero"}


async def test_unparseable_arguments_are_kept_raw_and_sent_back_unchanged(
    llm_server: FakeLLMServer, gpt: OpenAIClient,
) -> None:
    raw = '{"expression": "2+'
    llm_server.push(tool_call("calculator", raw, id="call_9"))
    response = await gpt.complete(ask(ChatMessage("user", "2+2?"), tools=[CALCULATOR]))
    assert response.tool_calls[0].arguments == {INVALID_JSON_KEY: raw}

    await gpt.complete(ask(
        ChatMessage("user", "2+2?"),
        ChatMessage("assistant", "", tool_calls=response.tool_calls),
        ChatMessage("tool", "bad JSON", tool_call_id="call_9", is_error=True),
    ))
    sent_call = llm_server.requests[1].json["messages"][2]["tool_calls"][0]
    assert sent_call["function"]["arguments"] == raw


async def test_moonshot_sends_max_tokens_and_reads_its_cached_tokens(
    llm_server: FakeLLMServer,
) -> None:
    kimi = OpenAIClient(model="kimi-test", api_key="sk-moon", provider="moonshot",
                        base_url=llm_server.openai_base_url, max_retries=0)
    llm_server.push(reply("Hi.", usage={"prompt_tokens": 50, "cached_tokens": 20,
                                        "prompt_tokens_details": None}))
    try:
        response = await kimi.complete(ask(ChatMessage("user", "hi")))
    finally:
        await kimi.aclose()
    assert kimi.provider == "moonshot"
    sent = llm_server.requests[0].json
    assert sent["max_tokens"] == 64 and "max_completion_tokens" not in sent
    assert (response.usage.input_tokens, response.usage.cache_read_tokens) == (30, 20)
