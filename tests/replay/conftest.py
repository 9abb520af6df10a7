"""Replay fixtures: an agent bot on the fake LLM server (real Anthropic SDK), a tool that
counts its runs, and sessions recorded into the test's store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from opencell.config import BotConfig, LLMConfig, OpenCellConfig, StoreConfig
from opencell.observability.observer import Observability
from opencell.runtime import BotRuntime
from tests.fakes.llm_server import FakeLLMServer, RecordedRequest, Step, error, reply, tool_call

SONNET = "claude-sonnet-4-20250514"
HAIKU = "claude-3-5-haiku-20241022"
RUNS: list[int] = []
"""Every real run of ``lookup_order`` (a replay with recorded tools must not add any)."""


def lookup_order(order_id: int) -> str:
    """Look an order up."""
    RUNS.append(order_id)
    return f"order {order_id}: shipped (lookup #{len(RUNS)})"


def system_text(request: RecordedRequest) -> str:
    system = request.json.get("system")
    if isinstance(system, list):
        return "".join(block.get("text", "") for block in system)
    return str(system or "")


def play(request: RecordedRequest) -> Step:
    """The scripted model: names itself in every answer; asks for lookup_order when the
    user mentions an order; fails (400) on "boom" when it is the replay's model."""
    model = request.json["model"]
    if request.tool_results:
        return reply(f"[{model}] {request.tool_results[0][1]}",
                     usage={"input_tokens": 400, "output_tokens": 30})
    text = request.last_user_text
    if text == "boom" and model == HAIKU:
        return error(400, "this model chokes on boom")
    if "order" in text:
        return tool_call("lookup_order", {"order_id": 42},
                         usage={"input_tokens": 300, "output_tokens": 20})
    return reply(f"[{model}] you said: {text}", usage={"input_tokens": 200, "output_tokens": 10})


def agent_config(url: str, *, prompt: str = "You help with orders.") -> BotConfig:
    return BotConfig(name="shop", type="agent", system_prompt=prompt,
                     llm=LLMConfig(provider="claude", model=SONNET, base_url=url,
                                   api_key="sk-ant-test", max_retries=0),
                     tools=[{"name": "lookup_order",
                             "python": "tests.replay.conftest:lookup_order"}])


def agent_yaml(url: str, *, prompt: str = "You help with orders.") -> str:
    return (f"name: shop\ntype: agent\nsystem_prompt: {prompt}\n"
            f"llm: {{provider: claude, model: {SONNET}, base_url: '{url}', "
            "api_key: sk-ant-test, max_retries: 0}\n"
            "tools:\n  - {name: lookup_order, python: 'tests.replay.conftest:lookup_order'}\n")


@pytest.fixture
async def fake() -> AsyncIterator[FakeLLMServer]:
    server = FakeLLMServer(model=play)
    await server.start()
    yield server
    await server.close()


@pytest.fixture(autouse=True)
def fresh_runs() -> None:
    RUNS.clear()


def observability(url: str) -> Observability:
    return Observability.from_config(OpenCellConfig(store=StoreConfig(url=url)))


async def record(runtime: BotRuntime, user: str, *texts: str) -> str:
    """One session of ``texts`` by ``user``; returns its id."""
    session_id = await runtime.start_session(user, "console")
    for text in texts:
        await runtime.process_message(text)
    await runtime.end_session()
    return session_id


def flushed(obs: Observability) -> Any:
    assert obs.recorder.flush(10)
    assert obs.store is not None
    return obs.store
