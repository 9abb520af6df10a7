"""One conversation served by several processes on one PostgreSQL store (SCALE-OUT.md D5).

Two runtimes with their own ``Observability`` (their own store connections, recorders and
trackers: what two processes have) take turns in one conversation, as a load balancer would
send them. There must be one session, every model call must see the whole history whichever
runtime handled the earlier turns, turns must not overlap, and idle expiry must end the
session once, where it was last served.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa

from opencell.config import BotConfig, LLMConfig, OpenCellConfig, SessionConfig, StoreConfig
from opencell.llm.base import LLMRequest, ToolCall
from opencell.messages import ConversationKey, IncomingMessage
from opencell.observability.observer import Observability
from opencell.runtime import BotRuntime
from opencell.store import tables
from opencell.store.store import Store
from tests.fakes.clock import ManualClock
from tests.fakes.function_llm import FunctionLLM, answer

pytestmark = pytest.mark.postgres

KEY = ConversationKey(bot="t", platform="slack", channel="C1", user="alice", thread="1.2")


def message(text: str) -> IncomingMessage:
    return IncomingMessage(key=KEY, text=text, user_id="alice")


class Process:
    """One runtime with its own observability: a stand-in for one worker."""

    def __init__(self, url: str, llm: FunctionLLM, clock: ManualClock | None = None,
                 **bot_fields: Any) -> None:
        self.obs = Observability.from_config(OpenCellConfig(store=StoreConfig(url=url)))
        config = BotConfig(name="t", llm=LLMConfig(provider="offline"), **bot_fields)
        self.runtime = BotRuntime(config, llm=llm, observability=self.obs, clock=clock)

    async def close(self) -> None:
        await self.runtime.aclose()
        self.obs.close()


@pytest.fixture
async def pair(postgres_url: str) -> AsyncIterator[tuple[Process, Process, FunctionLLM]]:
    llm = FunctionLLM(lambda req: f"echo {req.messages[-1].content}")
    a, b = Process(postgres_url, llm), Process(postgres_url, llm)
    yield a, b, llm
    await a.close()
    await b.close()


def stored_sessions(url: str) -> list[Any]:
    store = Store.open(url)
    try:
        with store.reading() as conn:
            s = tables.sessions.c
            return list(conn.execute(sa.select(s.id, s.status, s.messages, s.end_reason)
                                     .order_by(s.seq)).all())
    finally:
        store.close()


async def test_turns_on_alternating_processes_share_one_session_and_its_history(
        pair: tuple[Process, Process, FunctionLLM], postgres_url: str) -> None:
    a, b, llm = pair
    for i, process in enumerate([a, b, a, a, b]):
        reply = await process.runtime.dispatch(message(f"m{i}"))
        assert reply is not None and reply.text == f"echo m{i}"
    last = llm.requests[-1]
    assert [m.content for m in last.messages] == [
        "m0", "echo m0", "m1", "echo m1", "m2", "echo m2", "m3", "echo m3", "m4"]
    rows = stored_sessions(postgres_url)
    assert [(row.status, row.messages) for row in rows] == [("open", 5)]
    # Turn numbers go on across processes (a turn's trace id derives from its number).
    store = Store.open(postgres_url)
    try:
        with store.reading() as conn:
            e = tables.events.c
            data = conn.execute(sa.select(e.data).where(e.kind == "message")
                                .order_by(e.ts)).scalars().all()
    finally:
        store.close()
    assert [json.loads(d)["turn"] for d in data] == [1, 2, 3, 4, 5]


async def test_an_agents_tool_calls_survive_the_hand_over(postgres_url: str) -> None:
    def play(req: LLMRequest) -> Any:
        if req.messages[-1].role == "user" and req.messages[-1].content == "add":
            return answer(calls=[ToolCall(id="c1", name="calculator",
                                          arguments={"expression": "6*7"})])
        return f"saw {len(req.messages)}"

    llm = FunctionLLM(play)
    fields = {"type": "agent", "tools": [{"name": "calculator"}]}
    a, b = Process(postgres_url, llm, **fields), Process(postgres_url, llm, **fields)
    try:
        await a.runtime.dispatch(message("add"))
        await b.runtime.dispatch(message("and?"))
        roles = [(m.role, m.tool_call_id) for m in llm.requests[-1].messages]
        assert roles == [("user", ""), ("assistant", ""), ("tool", "c1"), ("assistant", ""),
                         ("user", "")]
    finally:
        await a.close()
        await b.close()


async def test_turns_of_one_conversation_never_overlap_across_processes(
        postgres_url: str) -> None:
    running: list[int] = []
    most = [0]

    async def slow(req: LLMRequest) -> str:
        running.append(1)
        most[0] = max(most[0], len(running))
        await asyncio.sleep(0.05)
        running.pop()
        return "ok"

    llm = FunctionLLM(slow)
    a, b = Process(postgres_url, llm), Process(postgres_url, llm)
    try:
        await asyncio.gather(*(p.runtime.dispatch(message(f"m{i}"))
                               for i, p in enumerate([a, b, a, b, a, b])))
        assert most[0] == 1
        assert len(llm.requests[-1].messages) == 11  # five earlier turns and this one
        assert [(row.status, row.messages) for row in stored_sessions(postgres_url)] == [
            ("open", 6)]
    finally:
        await a.close()
        await b.close()


async def test_only_the_process_that_served_last_ends_an_idle_session(
        postgres_url: str) -> None:
    clock = ManualClock(1000.0)
    llm = FunctionLLM(lambda req: "ok")
    session = SessionConfig(idle_timeout=60)
    a = Process(postgres_url, llm, clock, session=session)
    b = Process(postgres_url, llm, clock, session=session)
    try:
        await a.runtime.dispatch(message("first"))
        clock.advance(30)
        await b.runtime.dispatch(message("second"))  # b serves it now
        clock.advance(40)  # a's copy is idle (70 s), b's is not (40 s)
        assert a.runtime.sessions.sweep() and not b.runtime.sessions.sweep()
        assert a.obs.recorder.flush(5)
        assert [row.status for row in stored_sessions(postgres_url)] == ["open"]
        clock.advance(30)
        assert b.runtime.sessions.sweep()
        assert b.obs.recorder.flush(5)
        rows = stored_sessions(postgres_url)
        assert [(row.status, row.end_reason) for row in rows] == [("success", "idle_timeout")]
    finally:
        await a.close()
        await b.close()


async def test_a_retry_delivered_to_another_process_is_answered_once(
        pair: tuple[Process, Process, FunctionLLM], postgres_url: str) -> None:
    """A Slack retry (same message, same ts) reaching another worker behind a load balancer
    is dropped there; so is a duplicate that arrives while the first is still being answered."""
    a, b, llm = pair
    original = IncomingMessage(key=KEY, text="hello", user_id="alice", message_id="1700.01")
    first, retry = await asyncio.gather(a.runtime.dispatch(original),
                                        b.runtime.dispatch(original))
    answered = [r for r in (first, retry) if r is not None]
    assert len(answered) == 1 and len(llm.requests) == 1
    assert await a.runtime.dispatch(original) is None  # later, on the first worker too
    nxt = IncomingMessage(key=KEY, text="next", user_id="alice", message_id="1700.02")
    assert await b.runtime.dispatch(nxt) is not None
    assert [(row.status, row.messages) for row in stored_sessions(postgres_url)] == [
        ("open", 2)]
