"""Streaming in the core: the console prints pieces as they arrive, agent turns stream only
their final answer (a status line for tool steps), the turn records a streamed llm_call, and
``/feedback`` rates the previous answer in any adapter."""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from opencell.adapters.console import ConsoleAdapter
from opencell.config import BotConfig, OpenCellConfig, StoreConfig
from opencell.llm.base import LLMRequest, LLMResponse, TextSink, ToolCall, Usage
from opencell.messages import ConversationKey
from opencell.observability.observer import Observability
from opencell.runtime import BotRuntime
from opencell.store import feedback as feedback_rows
from opencell.tools import tool
from tests.fakes.waiting import until


@tool
def lookup(item: str) -> str:
    """Look an item up.

    Args:
        item: What to look up.
    """
    return f"{item}: 3 in stock"


class GatedModel:
    """A streaming model whose answers wait at a gate between their pieces."""

    provider, model = "offline", "gated"

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.calls = 0

    async def complete(self, request: LLMRequest) -> LLMResponse:
        raise AssertionError("a streaming bot should stream")

    async def stream(self, request: LLMRequest, on_text: TextSink) -> LLMResponse:
        self.calls += 1
        last = request.messages[-1]
        if request.tools and last.role == "user":  # an agent's first step: a tool call
            await on_text("Let me look that up.")
            return LLMResponse(text="Let me look that up.", usage=Usage(5, 5), model="gated",
                               tool_calls=(ToolCall("c1", "lookup", {"item": "widget"}),),
                               stop_reason="tool_use")
        await on_text("First half, ")
        await self.gate.wait()
        await on_text("second half.")
        return LLMResponse(text="First half, second half.", usage=Usage(5, 5), model="gated")

    async def aclose(self) -> None:
        return None


class _Whole:
    """``GatedModel`` seen only through ``complete`` (piped output never streams)."""

    provider, model = "offline", "gated"

    def __init__(self, inner: GatedModel) -> None:
        self.inner = inner

    async def complete(self, request: LLMRequest) -> LLMResponse:
        pieces: list[str] = []

        async def keep(piece: str) -> None:
            pieces.append(piece)

        return await self.inner.stream(request, keep)

    async def aclose(self) -> None:
        return None


@pytest.fixture
async def observability(isolated_store: str) -> AsyncIterator[Observability]:
    obs = Observability.from_config(OpenCellConfig(store=StoreConfig(url=isolated_store)))
    yield obs
    obs.close()


def console_bot(**fields: Any) -> BotConfig:
    return BotConfig.model_validate({"name": "demo", "llm": {"provider": "offline"},
                                     "platforms": {"console": {}}, **fields})


class Terminal(io.StringIO):
    """A terminal for the console adapter (interactive: it streams there)."""

    def isatty(self) -> bool:
        return True

    @property
    def text(self) -> str:
        """What a person reads: the output without the colour codes."""
        return re.sub(r"\x1b\[[0-9;]*m", "", self.getvalue())


async def run_console(bot: BotConfig, runtime: BotRuntime, lines: list[str], *,
                      interactive: bool = True) -> tuple[ConsoleAdapter, Terminal]:
    out = Terminal() if interactive else io.StringIO()
    stdin_type = Terminal if interactive else io.StringIO
    adapter = ConsoleAdapter(bot, stdin=stdin_type("".join(f"{x}\n" for x in lines)),
                             stdout=out)
    adapter.feedback = runtime.observability.feedback
    await adapter.start(runtime.dispatch)
    return adapter, out


async def test_the_console_prints_each_piece_as_it_arrives(observability: Observability) -> None:
    bot = console_bot()
    model = GatedModel()
    runtime = BotRuntime(bot, llm=model, observability=observability)
    adapter, out = await run_console(bot, runtime, ["hello"])
    await until(lambda: "First half, " in out.text, "the first piece on screen")
    assert "second half" not in out.text  # still being written
    model.gate.set()
    await asyncio.wait_for(adapter.finished.wait(), 30)
    # Once complete, the live view gives way (its last erase) to the whole reply, rendered.
    frames, final = out.text.rsplit("\x1b[2K", 1)
    assert "demo\n" in frames
    assert [line.rstrip() for line in final.splitlines()] == ["First half, second half.",
                                                              "you>"]


async def test_piped_output_keeps_one_whole_reply_per_line(
        observability: Observability) -> None:
    bot = console_bot()
    model = GatedModel()
    model.gate.set()
    runtime = BotRuntime(bot, llm=_Whole(model), observability=observability)
    adapter, out = await run_console(bot, runtime, ["hello"], interactive=False)
    await asyncio.wait_for(adapter.finished.wait(), 30)
    assert out.getvalue() == "First half, second half.\n"
    await runtime.aclose()
    await runtime.aclose()


async def test_an_agent_turn_streams_a_status_line_then_only_the_final_answer(
        observability: Observability) -> None:
    bot = console_bot(type="agent", tools=[{"name": "lookup",
                                            "python": "tests.core.test_streaming:lookup"}])
    model = GatedModel()
    model.gate.set()
    runtime = BotRuntime(bot, llm=model, observability=observability)
    adapter, out = await run_console(bot, runtime, ["how many widgets?"])
    await asyncio.wait_for(adapter.finished.wait(), 30)
    # The step's own words and the status line are redrawn away, like an edited message:
    # once complete, the live view gives way (its last erase) to the answer alone, rendered.
    frames, final = out.text.rsplit("\x1b[2K", 1)
    assert "demo\n" in frames
    assert [line.rstrip() for line in final.splitlines()] == ["First half, second half.",
                                                              "you>"]
    await runtime.aclose()


async def test_feedback_command_rates_the_previous_answer_in_the_console(
        observability: Observability) -> None:
    bot = console_bot()
    runtime = BotRuntime(bot, observability=observability)
    adapter, out = await run_console(bot, runtime, [
        "/feedback good", "hello", "/feedback bad not what I asked", "/feedback meh"],
        interactive=False)
    await asyncio.wait_for(adapter.finished.wait(), 30)
    lines = out.getvalue().splitlines()
    assert lines[0] == "There is no answer of mine in this conversation to rate yet."
    assert lines[2:] == ["Thanks for the feedback!", "Usage: /feedback good|bad [comment]"]
    await observability.feedback.settle()
    session = runtime.session_for(ConversationKey(bot="demo", platform="console",
                                                  channel="console", user="you"))
    assert session is not None
    [rating] = feedback_rows.session_feedback(observability.store, session.id)
    assert (rating["turn"], rating["value"], rating["comment"], rating["source"]) == (
        "2", "bad", "not what I asked", "command")
    await runtime.aclose()


async def test_track_feedback_refuses_a_value_that_is_not_good_or_bad(
        observability: Observability) -> None:
    from opencell.observability.facade import AgentOpsFacade

    with pytest.raises(ValueError, match="'good' or 'bad'"):
        AgentOpsFacade(observability).track_feedback("s", "great")
