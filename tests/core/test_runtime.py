"""BotRuntime: conversational and agent turns, history bounds, ordering, the Python API."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from opencell.config import BotConfig, LLMConfig, SessionConfig, ToolEntry
from opencell.errors import OpenCellError
from opencell.llm.base import LLMRequest, ToolCall
from opencell.messages import ConversationKey, IncomingMessage
from opencell.runtime import BotRuntime
from tests.fakes.function_llm import FunctionLLM, answer
from tests.fakes.waiting import InFlight


def bot(**fields: Any) -> BotConfig:
    base: dict[str, Any] = {"name": "t", "llm": LLMConfig(provider="offline")}
    return BotConfig(**(base | fields))


def message(text: str, user: str = "u", channel: str = "c") -> IncomingMessage:
    key = ConversationKey(bot="t", platform="test", channel=channel, user=user)
    return IncomingMessage(key=key, text=text, user_id=user)


async def test_conversational_turn_sends_system_prompt_and_history() -> None:
    llm = FunctionLLM(lambda req: f"echo {req.messages[-1].content}")
    runtime = BotRuntime(bot(system_prompt="Be brief."), llm=llm)
    with pytest.raises(OpenCellError, match="start_session"):
        await runtime.process_message("x")
    await runtime.start_session("alice", "api")
    assert await runtime.process_message("one") == "echo one"
    assert await runtime.process_message("two") == "echo two"
    second = llm.requests[1]
    assert second.system == "Be brief."
    assert [(m.role, m.content) for m in second.messages] == [
        ("user", "one"), ("assistant", "echo one"), ("user", "two")]


async def test_history_is_bounded_by_whole_turns() -> None:
    llm = FunctionLLM(lambda req: "ok")
    runtime = BotRuntime(bot(session=SessionConfig(history_turns=2)), llm=llm)
    for text in ["a", "b", "c", "d"]:
        await runtime.dispatch(message(text))
    last = llm.requests[-1]
    assert [m.content for m in last.messages] == ["b", "ok", "c", "ok", "d"]


async def test_agent_runs_tools_until_a_final_answer() -> None:
    def play(req: LLMRequest) -> Any:
        if req.messages[-1].role == "user":
            return answer(calls=[ToolCall(id="c1", name="calculator",
                                          arguments={"expression": "6*7"})])
        return f"the answer is {req.messages[-1].content}"

    llm = FunctionLLM(play)
    runtime = BotRuntime(bot(type="agent", tools=[ToolEntry(name="calculator")]), llm=llm)
    reply = await runtime.dispatch(message("what is 6*7?"))
    assert reply is not None and reply.text.startswith("the answer is") and "42" in reply.text
    assert [t.name for t in llm.requests[0].tools] == ["calculator"]
    tool_message = llm.requests[1].messages[-1]
    assert (tool_message.role, tool_message.tool_call_id, tool_message.is_error) == (
        "tool", "c1", False)


async def test_agent_cannot_call_a_tool_its_yaml_does_not_list() -> None:
    def play(req: LLMRequest) -> Any:
        if req.messages[-1].role == "user":
            return answer(calls=[ToolCall(id="c1", name="http_get",
                                          arguments={"url": "http://127.0.0.1:1/"})])
        return "done"

    llm = FunctionLLM(play)
    runtime = BotRuntime(bot(type="agent", tools=[ToolEntry(name="current_time")]), llm=llm)
    await runtime.dispatch(message("fetch it"))
    result = llm.requests[1].messages[-1]
    assert result.is_error and "not" in result.content and "http_get" in result.content


async def test_agent_stops_after_max_iterations() -> None:
    llm = FunctionLLM(lambda req: answer(calls=[ToolCall(id=f"c{len(req.messages)}",
                                                         name="current_time", arguments={})]))
    runtime = BotRuntime(bot(type="agent", tools=["current_time"], max_iterations=3), llm=llm)
    reply = await runtime.dispatch(message("loop forever"))
    assert len(llm.requests) == 3
    assert reply is not None and "3 steps" in reply.text


async def test_a_failing_model_gives_a_polite_reply_and_keeps_no_broken_history() -> None:
    calls = {"n": 0}

    def play(req: LLMRequest) -> str:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("provider exploded")
        return f"fine, history has {len(req.messages)}"

    runtime = BotRuntime(bot(), llm=FunctionLLM(play))
    first = await runtime.dispatch(message("one"))
    assert first is not None and first.failed and first.text == runtime.config.error_message
    second = await runtime.dispatch(message("two"))
    assert second is not None and second.text == "fine, history has 1"


async def test_one_conversation_in_order_different_conversations_concurrently() -> None:
    order: list[str] = []
    gauge = InFlight()

    async def play(req: LLMRequest) -> str:
        text = req.messages[-1].content
        if text.endswith("slow"):  # held until all eight slow turns are in the model at once
            await gauge.together(8)
        order.append(text)
        return text

    runtime = BotRuntime(bot(), llm=FunctionLLM(play))
    await asyncio.gather(
        runtime.dispatch(message("a-slow", user="a")),
        runtime.dispatch(message("a-fast", user="a")),
        *(runtime.dispatch(message(f"{u}-slow", user=u)) for u in "bcdefgh"),
    )
    assert order.index("a-slow") < order.index("a-fast")  # a-fast waited for a-slow
    assert gauge.most == 8  # eight slow turns in parallel, not one after the other
    assert not runtime._turnstiles  # per-conversation locks are released


async def test_end_session_forgets_history() -> None:
    llm = FunctionLLM(lambda req: str(len(req.messages)))
    runtime = BotRuntime(bot(), llm=llm)
    await runtime.start_session("u")
    assert await runtime.process_message("a") == "1"
    assert await runtime.process_message("b") == "3"
    await runtime.end_session(success=True)
    await runtime.start_session("u")
    assert await runtime.process_message("c") == "1"
