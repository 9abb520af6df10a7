"""Live updates: the SSE stream tells the sessions list and an open session's page what changed."""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx

from opencell.observability.facade import AgentOpsFacade
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
