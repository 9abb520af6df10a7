"""Streaming through the real anthropic and openai SDKs against the fake's SSE streams."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from opencell.errors import LLMError
from opencell.llm import ChatMessage, LLMRequest, ToolSpec
from opencell.llm.anthropic import AnthropicClient
from opencell.llm.offline import OfflineClient
from opencell.llm.openai import OpenAIClient
from opencell.llm.streaming import stream_or_complete
from tests.fakes.llm_server import FakeLLMServer, streamed, tool_call

LONG = "Streaming answers arrive piece by piece, " * 6
CALC = ToolSpec("calculator", "Evaluate.", {"type": "object", "properties": {
    "expression": {"type": "string"}}})


@pytest.fixture(params=["claude", "openai", "moonshot"])
async def client(request: pytest.FixtureRequest, llm_server: FakeLLMServer
                 ) -> AsyncIterator[AnthropicClient | OpenAIClient]:
    made: AnthropicClient | OpenAIClient
    if request.param == "claude":
        made = AnthropicClient(model="claude-test", api_key="sk-ant-test",
                               base_url=llm_server.url, max_retries=0, timeout=5)
    else:
        made = OpenAIClient(model="gpt-test", api_key="sk-test", provider=request.param,
                            base_url=llm_server.openai_base_url, max_retries=0, timeout=5)
    yield made
    await made.aclose()


def ask(text: str = "hi", tools: tuple[ToolSpec, ...] = ()) -> LLMRequest:
    return LLMRequest(system="Be brief.", messages=[ChatMessage("user", text)],
                      max_tokens=64, tools=tools)


async def test_a_streamed_answer_arrives_in_pieces_and_equals_the_complete_one(
        llm_server: FakeLLMServer, client: AnthropicClient | OpenAIClient) -> None:
    llm_server.push(streamed(LONG, 10), streamed(LONG, 10))
    pieces: list[str] = []

    async def sink(piece: str) -> None:
        pieces.append(piece)

    response = await client.stream(ask(), sink)
    whole = await client.complete(ask())

    assert len(pieces) == len(LONG) // 10 + 1
    assert "".join(pieces) == response.text == whole.text == LONG
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    assert response.stop_reason == "end_turn"
    assert response.request_id == "req_fake_1"
    assert llm_server.requests[0].json["stream"] is True
    assert "stream" not in llm_server.requests[1].json or not llm_server.requests[1].json[
        "stream"]


async def test_a_streamed_tool_call_is_read_whole(
        llm_server: FakeLLMServer, client: AnthropicClient | OpenAIClient) -> None:
    llm_server.push(tool_call("calculator", {"expression": "2+2"}, text="Let me see."))
    pieces: list[str] = []

    async def sink(piece: str) -> None:
        pieces.append(piece)

    response = await client.stream(ask("2+2?", (CALC,)), sink)

    assert [(c.name, dict(c.arguments)) for c in response.tool_calls] == [
        ("calculator", {"expression": "2+2"})]
    assert response.stop_reason == "tool_use"
    assert "".join(pieces) == "Let me see."


async def test_a_stream_that_breaks_midway_raises_an_llm_error_after_its_first_pieces(
        llm_server: FakeLLMServer, client: AnthropicClient | OpenAIClient) -> None:
    llm_server.push(streamed(LONG, 10, break_after=3))
    pieces: list[str] = []

    async def sink(piece: str) -> None:
        pieces.append(piece)

    with pytest.raises(LLMError):
        await client.stream(ask(), sink)
    assert "".join(pieces) == LONG[:30]


async def test_a_client_without_stream_answers_in_one_piece() -> None:
    offline = OfflineClient()

    class Plain:
        provider, model = "offline", "plain"

        async def complete(self, request: LLMRequest):  # type: ignore[no-untyped-def]
            return await offline.complete(request)

        async def aclose(self) -> None:
            return None

    pieces: list[str] = []

    async def sink(piece: str) -> None:
        pieces.append(piece)

    response = await stream_or_complete(Plain(), ask(), sink)  # type: ignore[arg-type]
    assert pieces == [response.text]
    pieces.clear()
    streamed_response = await offline.stream(ask(), sink)
    assert len(pieces) > 5 and "".join(pieces) == streamed_response.text
