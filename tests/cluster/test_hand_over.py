"""A graceful stop hands its sessions over instead of ending them (issue 13, point 6).

Two runtimes with their own ``Observability`` stand in for two processes on one PostgreSQL
store (``test_conversations.Process``). A stopping process leaves the sessions it served open
with no owner; the next process to get the conversation continues the same session with its
history; a released session that goes idle first is ended once, by a janitor, on the
database's clock.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa

from opencell.config import SessionConfig
from opencell.store import tables
from opencell.store.janitor import Janitor
from opencell.store.store import Store
from tests.cluster.test_conversations import KEY, Process, message
from tests.fakes.clock import ManualClock
from tests.fakes.function_llm import FunctionLLM

pytestmark = pytest.mark.postgres


def stored(url: str) -> tuple[list[Any], list[Any]]:
    """Sessions (id, status, owner, end reason, turns) and their session_end events."""
    store = Store.open(url)
    try:
        with store.reading() as conn:
            s, e = tables.sessions.c, tables.events.c
            rows = conn.execute(sa.select(s.id, s.status, s.owner, s.end_reason, s.messages)
                                .order_by(s.seq)).all()
            ends = conn.execute(sa.select(e.name, e.data).where(e.kind == "session_end")
                                ).all()
        return list(rows), list(ends)
    finally:
        store.close()


async def test_the_next_process_continues_a_handed_over_session_with_its_history(
        postgres_url: str) -> None:
    llm = FunctionLLM(lambda req: f"echo {req.messages[-1].content}")
    a, b = Process(postgres_url, llm), Process(postgres_url, llm)
    try:
        await a.runtime.dispatch(message("m0"))
        await a.runtime.dispatch(message("m1"))
        assert await a.runtime.hand_over({"slack"}) == 1
        await a.close()  # what was handed over is not ended as shutdown
        [(session_id, status, owner, reason, turns)], ends = stored(postgres_url)
        assert (status, owner, reason, turns, ends) == ("open", "", None, 2, [])

        reply = await b.runtime.dispatch(message("m2"))
        assert reply is not None and reply.text == "echo m2"
        assert [m.content for m in llm.requests[-1].messages] == [
            "m0", "echo m0", "m1", "echo m1", "m2"]
        [row], _ = stored(postgres_url)
        assert (row.id, row.status, row.owner, row.messages) == (
            session_id, "open", b.obs.store.owner() if b.obs.store else "", 3)
    finally:
        await a.close()
        await b.close()


async def test_only_the_platforms_named_are_handed_over(postgres_url: str) -> None:
    """A console conversation (one person at one terminal) ends at the stop, as before."""
    a = Process(postgres_url, FunctionLLM(lambda req: "ok"))
    try:
        await a.runtime.dispatch(message("hello"))
        assert await a.runtime.hand_over({"console"}) == 0
    finally:
        await a.close()
    [row], [(name, _)] = stored(postgres_url)
    assert (row.status, row.end_reason, name) == ("success", "shutdown", "shutdown")


async def test_a_released_session_idle_by_the_database_clock_is_ended_once(
        postgres_url: str) -> None:
    clock = ManualClock(1000.0)
    llm = FunctionLLM(lambda req: "ok")
    session = SessionConfig(idle_timeout=60)
    a = Process(postgres_url, llm, clock, session=session)
    b = Process(postgres_url, llm, clock, session=session)
    janitors = [Janitor(p.obs.store) for p in (a, b) if p.obs.store is not None]
    try:
        await a.runtime.dispatch(message("first"))
        assert await a.runtime.hand_over({"slack"}) == 1  # 60 s of idleness left
        assert [j.run_once() for j in janitors] == [0, 0]  # not idle yet: left open
        await b.runtime.dispatch(message("second"))  # continued, then b stops in turn
        clock.advance(61)  # b's copy is past its idle deadline: nothing left to wait
        assert await b.runtime.hand_over({"slack"}) == 1
        assert sorted(j.run_once() for j in janitors) == [0, 1]  # ended once
    finally:
        await a.close()
        await b.close()
    [row], ends = stored(postgres_url)
    assert (row.status, row.end_reason, row.messages) == ("success", "idle_timeout", 2)
    assert [(name, json.loads(data)["reason"]) for name, data in ends] == [
        ("idle_timeout", "idle_timeout")]


async def test_a_session_another_process_serves_now_is_not_released_by_this_one(
        postgres_url: str) -> None:
    llm = FunctionLLM(lambda req: "ok")
    a, b = Process(postgres_url, llm), Process(postgres_url, llm)
    try:
        await a.runtime.dispatch(message("first"))
        await b.runtime.dispatch(message("second"))  # b serves it now
        assert await a.runtime.hand_over({"slack"}) == 0
        await a.close()  # and a's stale copy is dropped, not ended
        [row], ends = stored(postgres_url)
        assert (row.status, ends) == ("open", [])
        assert row.owner not in ("",)
        assert b.runtime.session_for(KEY) is not None
    finally:
        await a.close()
        await b.close()
