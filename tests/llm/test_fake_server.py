"""The fake LLM server itself: scripting by function, request helpers and thread mode."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from opencell.llm import ChatMessage, LLMRequest, ToolCall
from opencell.llm.anthropic import AnthropicClient
from opencell.llm.openai import OpenAIClient
from tests.fakes.llm_server import (
    ANTHROPIC_PATH,
    OPENAI_PATH,
    FakeLLMServer,
    RecordedRequest,
    Step,
    reply,
    tool_call,
)


def clock_model(request: RecordedRequest) -> Step:
    """Plays a model that asks for the time, then reports the tool's answer."""
    if request.tool_results:
        return reply(f"The time is {request.tool_results[0][1]}.")
    return tool_call("current_time", id="call_clock")


async def test_a_function_plays_the_model_for_both_apis(llm_server: FakeLLMServer) -> None:
    llm_server.model = clock_model
    claude = AnthropicClient(model="c", api_key="k", base_url=llm_server.url, max_retries=0)
    gpt = OpenAIClient(model="g", api_key="k", base_url=llm_server.openai_base_url,
                       max_retries=0)
    try:
        for client in (claude, gpt):
            question = ChatMessage("user", "time?")
            first = await client.complete(LLMRequest("", [question], 32))
            assert first.tool_calls == (ToolCall("call_clock", "current_time", {}),)
            history = [question, ChatMessage("assistant", "", tool_calls=first.tool_calls),
                       ChatMessage("tool", "12:00", tool_call_id="call_clock")]
            final = await client.complete(LLMRequest("", history, 32))
            assert final.text == "The time is 12:00."
    finally:
        await claude.aclose()
        await gpt.aclose()
    assert [r.path for r in llm_server.requests] == [ANTHROPIC_PATH] * 2 + [OPENAI_PATH] * 2
    assert all(r.last_user_text == "time?" for r in llm_server.requests[::2])


async def test_without_a_script_it_echoes(llm_server: FakeLLMServer) -> None:
    client = OpenAIClient(model="g", api_key="k", base_url=llm_server.openai_base_url)
    try:
        response = await client.complete(LLMRequest("", [ChatMessage("user", "ping")], 8))
    finally:
        await client.aclose()
    assert response.text == "echo: ping"


def post(url: str, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as answer:
        return json.loads(answer.read()), answer.headers["Content-Type"]


def test_thread_mode_serves_plain_blocking_clients() -> None:
    fake = FakeLLMServer([reply("from a thread")])
    url = fake.start_in_thread()
    try:
        body, content_type = post(f"{url}/v1/messages", {
            "model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
        second, _ = post(f"{url}/v1/chat/completions", {
            "model": "m", "messages": [{"role": "user", "content": "again"}]})
    finally:
        fake.stop_thread()
    assert content_type == "application/json"
    assert body["content"] == [{"type": "text", "text": "from a thread"}]
    assert second["choices"][0]["message"]["content"] == "echo: again"
    assert len(fake.requests) == 2
