"""The conversation the exporter tests replay: two turns, the first with one tool call."""

from __future__ import annotations

from typing import Any

from opencell.config import BotConfig, LLMConfig
from opencell.llm.base import LLMRequest, ToolCall, Usage
from opencell.messages import ConversationKey, IncomingMessage
from opencell.observability.observer import Observability
from opencell.runtime import BotRuntime
from opencell.tools import tool
from tests.fakes.function_llm import FunctionLLM, answer

MODEL = "claude-sonnet-4-20250514"


@tool
def lookup(item: str) -> str:
    """Look an item up in the stock list.

    Args:
        item: What to look up.
    """
    return f"{item}: 3 in stock"


def play(request: LLMRequest) -> Any:
    last = request.messages[-1]
    if last.role == "user" and "widgets" in last.content:
        return answer("let me check", model=MODEL, usage=Usage(100, 20, 50, 0),
                      calls=[ToolCall(id="call-1", name="lookup",
                                      arguments={"item": "widget"})])
    return answer(f"answer to {last.content}", model=MODEL, usage=Usage(120, 30))


def message(text: str) -> IncomingMessage:
    key = ConversationKey(bot="shop", platform="test", channel="c1", user="u1")
    return IncomingMessage(key=key, text=text, user_id="u1", user_name="Uma")


@tool
def broken_lookup(item: str) -> str:
    """Look an item up (the inventory service is down).

    Args:
        item: What to look up.
    """
    raise ConnectionError(f"inventory service down for {item}")


def shop_bot(tool: str = "lookup") -> BotConfig:
    return BotConfig(name="shop", type="agent", llm=LLMConfig(provider="claude", model=MODEL),
                     tools=[{"name": "lookup",
                             "python": f"tests.exporters._conversation:{tool}"}],
                     tags=["support"])


async def two_turns(obs: Observability) -> str:
    """Run the conversation to its end (shutdown); returns the session id."""
    runtime = BotRuntime(shop_bot(), llm=FunctionLLM(play, provider="claude", model=MODEL),
                         observability=obs)
    first = await runtime.dispatch(message("how many widgets do you have?"))
    assert first is not None and "answer to" in first.text
    second = await runtime.dispatch(message("thanks"))
    assert second is not None
    session = runtime.session_for(message("x").key)
    assert session is not None
    session_id = session.id
    await runtime.aclose()
    return session_id
