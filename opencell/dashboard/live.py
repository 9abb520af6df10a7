"""Live updates: one poller per dashboard watches the store and feeds every SSE subscriber.

The store is the only channel between the bots and the dashboard (they may be separate
processes), so the feed polls it: ``max(events.id)`` once per ``interval`` (an index lookup),
and only when that moved, the new ``session_start``/``session_end`` events for the sessions
list, each watched session's new events for its replay page, and a small ``tick`` (open
sessions, cost today and this month) for the running totals. Subscribers get bounded queues;
one that falls behind gets a ``resync`` message instead of an ever-growing backlog. Under a
heavy ingest the feed skips ahead rather than reading every event: pages only need to know
that something changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import Connection

from opencell.dashboard import queries
from opencell.store import reads as store_queries
from opencell.store.tables import events, sessions

log = logging.getLogger("opencell.dashboard")

T = TypeVar("T")
Reader = Callable[[Callable[[Connection], T]], T]

MAX_SCAN = 20_000
"""Past this many new events in one poll the feed skips ahead (clients resync)."""
QUEUE_SIZE = 256
KEEPALIVE_S = 15.0
BASELINE_WAIT_S = 5.0
"""How long a new subscriber waits for the feed's first poll (a store that does not answer)."""


@dataclass(eq=False)
class Subscriber:
    """One SSE client: an optional watched session (by ``seq``) and its outgoing queue."""

    session_seq: int | None
    queue: asyncio.Queue[tuple[str, Any]] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_SIZE))

    def offer(self, kind: str, payload: Any) -> None:
        try:
            self.queue.put_nowait((kind, payload))
        except asyncio.QueueFull:
            with contextlib.suppress(asyncio.QueueEmpty):
                while True:
                    self.queue.get_nowait()
            self.queue.put_nowait(("resync", {}))


class LiveFeed:
    """Polls the store while anyone listens; fans changes out to subscribers."""

    def __init__(self, read: Reader[Any], interval: float = 1.0) -> None:
        self._read = read
        self.interval = interval
        self._subscribers: set[Subscriber] = set()
        self._task: asyncio.Task[None] | None = None
        self._last_id: int | None = None
        self._baseline = asyncio.Event()
        self._closing = False

    @contextlib.asynccontextmanager
    async def subscribe(self, session_seq: int | None = None) -> AsyncIterator[Subscriber]:
        """Register a subscriber for the duration of the ``async with`` block."""
        subscriber = Subscriber(session_seq)
        if self._closing:
            subscriber.offer("bye", {})
        self._subscribers.add(subscriber)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(),
                                                                name="opencell-dashboard-feed")
        try:
            if not self._closing:
                # The feed's first poll marks where it starts. A subscriber's catch-up must
                # read after that mark, or an event committed between the two reaches neither.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._baseline.wait(), BASELINE_WAIT_S)
            yield subscriber
        finally:
            self._subscribers.discard(subscriber)

    async def close(self) -> None:
        """Say goodbye to every subscriber (their streams end) and stop polling."""
        self._closing = True
        self._baseline.set()
        for subscriber in list(self._subscribers):
            subscriber.offer("bye", {})
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    async def _run(self) -> None:
        last_tick = 0.0
        while self._subscribers and not self._closing:
            try:
                changed = await asyncio.to_thread(self._read, self._poll)
            except Exception as exc:  # noqa: BLE001 - a failing store must not end the feed
                log.warning("live feed poll failed error=%s: %s", type(exc).__name__, exc)
                changed = None
            self._baseline.set()
            now = time.monotonic()
            if changed is not None:
                self._publish(changed)
                last_tick = now
            elif now - last_tick >= KEEPALIVE_S:
                last_tick = now
            await asyncio.sleep(self.interval)
        self._baseline.set()
        self._task = None

    def _poll(self, conn: Connection) -> dict[str, Any] | None:
        newest = queries.last_event_id(conn)
        if self._last_id is None:
            self._last_id = newest
            return {"tick": queries.tick(conn), "sessions": None, "timelines": {}}
        if newest <= self._last_id:
            return None
        first = self._last_id
        skipped = newest - first > MAX_SCAN
        low = newest - MAX_SCAN if skipped else first
        e, s = events.c, sessions.c
        changes: dict[str, Any] = {"tick": queries.tick(conn), "timelines": {}}
        rows = conn.execute(
            sa.select(e.id, e.kind, e.name, e.success, s.id.label("session_id"), s.bot,
                      s.user_id)
            .join_from(events, sessions, e.session_seq == s.seq)
            .where(e.id > low, e.id <= newest, e.kind.in_(("session_start", "session_end")))
            .order_by(e.id).limit(200)).all()
        changes["sessions"] = {
            "new_events": newest - first, "skipped": skipped,
            "started": [{"id": r.session_id, "bot": r.bot, "user_id": r.user_id}
                        for r in rows if r.kind == "session_start"],
            "ended": [{"id": r.session_id, "reason": r.name,
                       "status": "success" if r.success else "failed"}
                      for r in rows if r.kind == "session_end"]}
        for seq in {sub.session_seq for sub in self._subscribers} - {None}:
            found = conn.execute(
                sa.select(*store_queries.EVENT_COLUMNS)
                .where(e.session_seq == seq, e.id > first, e.id <= newest)
                .order_by(e.id).limit(500)).mappings().all()
            if found:
                changes["timelines"][seq] = store_queries.event_dicts(conn, found)
        self._last_id = newest
        return changes

    def _publish(self, changes: dict[str, Any]) -> None:
        for subscriber in list(self._subscribers):
            subscriber.offer("tick", changes["tick"])
            if subscriber.session_seq is None:
                if changes["sessions"] is not None:
                    subscriber.offer("sessions", changes["sessions"])
            elif subscriber.session_seq in changes["timelines"]:
                subscriber.offer("timeline", {"events": changes["timelines"][
                    subscriber.session_seq]})


def timeline_after(conn: Connection, session_seq: int, after: int,
                   limit: int = 500) -> list[dict[str, Any]]:
    """A session's events with an id above ``after`` (a page catching up on what it missed)."""
    e = events.c
    rows = conn.execute(sa.select(*store_queries.EVENT_COLUMNS)
                        .where(e.session_seq == session_seq, e.id > after)
                        .order_by(e.id).limit(limit)).mappings().all()
    return store_queries.event_dicts(conn, rows)


def sse(kind: str, payload: Any) -> str:
    """One server-sent event (``data`` is one line of JSON)."""
    return f"event: {kind}\ndata: {json.dumps(payload, default=str)}\n\n"


async def event_stream(feed: LiveFeed, session_seq: int | None, *,
                       catch_up: Callable[[], list[dict[str, Any]]] | None = None,
                       ) -> AsyncIterator[str]:
    """The text of one ``text/event-stream`` response, until the client or server leaves.

    ``catch_up`` runs once the subscription is in place, so no event falls between it and
    the feed (an event may come twice: clients de-duplicate by id).
    """
    yield "retry: 3000\n\n"
    async with feed.subscribe(session_seq) as subscriber:
        if catch_up is not None:
            missed = await asyncio.to_thread(catch_up)
            if missed:
                yield sse("timeline", {"events": missed})
        while True:
            try:
                kind, payload = await asyncio.wait_for(subscriber.queue.get(), KEEPALIVE_S)
            except TimeoutError:
                yield ": keepalive\n\n"
                continue
            yield sse(kind, payload)
            if kind == "bye":
                return
