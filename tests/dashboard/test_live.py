"""Live updates: the SSE stream tells the sessions list and an open session's page what changed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from opencell.dashboard import queries
from opencell.dashboard.live import LiveFeed, event_stream, timeline_after
from opencell.dashboard.state import read_store
from opencell.observability.facade import AgentOpsFacade
from opencell.records import Record, new_session_id
from opencell.store import tables
from opencell.store.store import Store
from tests.dashboard.conftest import ServerThread, observability
from tests.fakes.waiting import WAIT


def read_events(url: str, out: queue.Queue[tuple[str, Any]], stop: threading.Event) -> None:
    """Collect (event, data) pairs from an SSE response until ``stop``."""
    with httpx.Client(timeout=httpx.Timeout(30, read=30)) as client:
        with client.stream("GET", url) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            kind = "message"
            for line in response.iter_lines():
                if stop.is_set():
                    return
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    out.put((kind, json.loads(line[6:])))
                    if kind == "bye":
                        return


def wait_for(events: queue.Queue[tuple[str, Any]], kind: str,
             match: Any = lambda data: True, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got, data = events.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            break
        if got == kind and match(data):
            return data
    raise AssertionError(f"no '{kind}' event within {timeout}s")


def listen(url: str) -> Iterator[queue.Queue[tuple[str, Any]]]:
    events: queue.Queue[tuple[str, Any]] = queue.Queue()
    stop = threading.Event()
    thread = threading.Thread(target=read_events, args=(url, events, stop), daemon=True)
    thread.start()
    try:
        yield events
    finally:
        stop.set()


def test_the_stream_announces_new_sessions_and_a_watched_sessions_events(
        served: ServerThread, isolated_store: str) -> None:
    obs = observability(isolated_store)
    ops = AgentOpsFacade(obs)
    sid = ops.start_session(bot_name="live", user_id="erin", platform="api")
    assert ops.flush(5)
    try:
        everything = listen(f"{served.url}/api/stream")
        all_events = next(everything)
        # The feed sends its first tick to whoever listens when it first polls; a stream
        # that connects later gets ticks only when something changes. So the second stream
        # connects only once the first has its tick (before, under load, it could be late).
        tick = wait_for(all_events, "tick")
        assert tick["open_sessions"] == 1
        watched = listen(f"{served.url}/api/stream?session={sid}&after=0")
        session_events = next(watched)
        # The watched stream first catches up on what the page already had (after=0).
        caught_up = wait_for(session_events, "timeline")
        assert [e["kind"] for e in caught_up["events"]] == ["session_start"]
        ops.track_cost(sid, provider="claude", model="claude-sonnet-4-20250514",
                       input_tokens=1500, output_tokens=800)
        ops.track_event(sid, "vote", {"winner": "b"})
        assert ops.flush(5)
        update = wait_for(session_events, "timeline",
                          lambda d: any(e["kind"] == "custom" for e in d["events"]))
        (custom,) = [e for e in update["events"] if e["kind"] == "custom"]
        assert (custom["name"], custom["data"]) == ("vote", {"winner": "b"})
        before = tick["cost_today_usd"]
        costly = wait_for(all_events, "tick", lambda d: d["cost_today_usd"] > before)
        assert round(costly["cost_today_usd"] - before, 6) == 0.0165
        ops.end_session(sid, success=True)
        assert ops.flush(5)
        ended = wait_for(all_events, "sessions", lambda d: d["ended"])
        assert ended["ended"] == [{"id": sid, "reason": "explicit", "status": "success"}]
        second = ops.start_session(bot_name="live", user_id="frank", platform="api")
        assert ops.flush(5)
        started = wait_for(all_events, "sessions", lambda d: d["started"])
        assert started["started"][0]["id"] == second
    finally:
        obs.close()


def test_stopping_the_server_ends_open_streams(conversations: dict[str, str],
                                               isolated_store: str) -> None:
    with ServerThread(isolated_store) as served:
        stream = listen(f"{served.url}/api/stream")
        events = next(stream)
        wait_for(events, "tick")
    # The server said goodbye on the open stream: it ended it rather than waiting for the
    # client (uvicorn would cut a stream that held the shutdown up, without a "bye").
    assert wait_for(events, "bye") == {}


def test_an_unknown_session_cannot_be_watched(served: ServerThread) -> None:
    response = httpx.get(f"{served.url}/api/stream?session=nope", timeout=10)
    assert response.status_code == 404


async def test_an_event_committed_while_the_feed_starts_reaches_the_page(
        tmp_path: Path) -> None:
    """A page's stream subscribes, catches up on what it missed, then hears the feed. The
    feed's first poll only marks where it starts; when that poll came after the catch-up,
    an event committed between the two reached neither (CI, on PostgreSQL under load: a live
    session page never showed its tool call)."""
    store = Store.open(f"sqlite:///{tmp_path / 'live.db'}")
    sid = new_session_id()
    store.write_batch([Record("session_start", sid, time.time(), "live",
                              {"bot": "live", "platform": "api"})])
    with store.reading() as conn:
        seq = int(conn.execute(sa.select(tables.sessions.c.seq)).scalar_one())
        seen = queries.last_event_id(conn)
    first_poll, release, caught_up = threading.Event(), threading.Event(), asyncio.Event()
    loop = asyncio.get_running_loop()

    def read(query: Any) -> Any:
        if not first_poll.is_set():  # the feed's first poll, slowed as a loaded machine does
            first_poll.set()
            release.wait(WAIT)
        return read_store(store, query)

    def catch_up() -> list[dict[str, Any]]:
        missed = read_store(store, lambda conn: timeline_after(conn, seq, seen))
        loop.call_soon_threadsafe(caught_up.set)
        return missed

    feed = LiveFeed(read, interval=0.05)
    stream = event_stream(feed, seq, catch_up=catch_up)
    timelines: asyncio.Queue[str] = asyncio.Queue()

    async def page() -> None:
        async for text in stream:
            await timelines.put(text)

    reader = asyncio.create_task(page())
    try:
        await asyncio.to_thread(first_poll.wait, WAIT)
        with contextlib.suppress(TimeoutError):  # before the fix the catch-up ran now
            await asyncio.wait_for(caught_up.wait(), 1.0)
        store.write_batch([Record("tool_call", sid, time.time(), "search", {"q": "x"},
                                  12.0, True)])
        release.set()
        deadline = time.monotonic() + WAIT  # keepalives come every 15 s: a deadline, not a
        while "search" not in await asyncio.wait_for(timelines.get(),  # wait per message
                                                     max(0.01, deadline - time.monotonic())):
            pass
    finally:
        release.set()
        await feed.close()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
        store.close()
