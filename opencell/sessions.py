"""Sessions: one per conversation, opened on its first message, closed when idle or ended.

Idle expiry is a deadline attribute plus a lazy min-heap: touching a session is one float
store (O(1)); a sweep pops only entries whose deadline has passed and either expires them or
re-arms them at their newer deadline, so its cost follows the expired (and the touched since
the last sweep), never the number of open sessions.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from opencell.guard import guard
from opencell.history import ConversationHistory
from opencell.llm.base import ChatMessage
from opencell.messages import ConversationKey
from opencell.records import new_session_id

Clock = Callable[[], float]
"""Seconds; ``time.monotonic`` for deadlines, ``time.time`` for stamps (tests inject their own)."""

log = logging.getLogger("opencell.sessions")

EndReason = Literal["idle_timeout", "explicit", "end_command", "shutdown", "interrupted"]


@dataclass(slots=True, eq=False)
class Session:
    """One open conversation: its id, its history and its idle deadline."""

    id: str
    key: ConversationKey
    bot_type: str
    idle_timeout: float
    history: ConversationHistory
    started_at: float
    """Wall-clock epoch seconds."""
    deadline: float
    """Monotonic time after which the session is idle."""
    tags: tuple[str, ...] = ()
    busy: int = 0
    """Turns in progress; a busy session never expires."""
    turns: int = 0
    """Turns started so far (the last one's number)."""
    last_failed: bool = False
    closed: bool = False


OnOpen = Callable[[Session, str], None]
OnClose = Callable[[Session, EndReason, bool, dict[str, Any]], None]


class SessionTracker:
    """Open sessions of one bot, keyed by conversation, with O(1) touch and O(expired) sweeps.

    ``on_open(session, user_name)`` and ``on_close(session, reason, success, metadata)`` are
    called synchronously (the recorder's ``record`` is O(1), so they are cheap); failures in
    them are logged by the guard and never reach the bot.
    """

    def __init__(self, *, history_turns: int, idle_timeout: float, bot_type: str,
                 tags: tuple[str, ...] = (), on_open: OnOpen | None = None,
                 on_close: OnClose | None = None, clock: Clock = time.monotonic,
                 wall: Clock = time.time) -> None:
        self.history_turns = history_turns
        self.idle_timeout = idle_timeout
        self.bot_type = bot_type
        self.tags = tags
        self._on_open = on_open
        self._on_close = on_close
        self._clock = clock
        self._wall = wall
        self._open: dict[ConversationKey, Session] = {}
        self._by_id: dict[str, Session] = {}
        self._heap: list[tuple[float, int, Session]] = []
        self._seq = itertools.count()
        self._sweeper: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._open)

    def get(self, session_id: str) -> Session | None:
        return self._by_id.get(session_id)

    def find(self, key: ConversationKey) -> Session | None:
        return self._open.get(key)

    def open_sessions(self) -> list[Session]:
        """The open sessions, in the order they were opened or adopted."""
        return list(self._open.values())

    def idle_left(self, session: Session) -> float:
        """Seconds until ``session`` would go idle (0 when it already has)."""
        return max(0.0, session.deadline - self._clock())

    def acquire(self, key: ConversationKey, *, user_name: str = "",
                tags: tuple[str, ...] = ()) -> Session:
        """The conversation's open session (opening one if needed), marked busy."""
        session = self._open.get(key)
        now = self._clock()
        if session is None:
            session = self.open(key, user_name=user_name, tags=tags, now=now)
        session.busy += 1
        session.deadline = now + self.idle_timeout
        return session

    def touch(self, session: Session) -> None:
        """Restart a session's idle clock: one float store, no timer juggling."""
        session.deadline = self._clock() + self.idle_timeout

    def release(self, session: Session, *, failed: bool) -> None:
        """The turn is over: remember whether it failed and restart the idle clock."""
        session.busy -= 1
        session.last_failed = failed
        session.deadline = self._clock() + self.idle_timeout

    def open(self, key: ConversationKey, *, user_name: str = "", tags: tuple[str, ...] = (),
             now: float | None = None) -> Session:
        now = self._clock() if now is None else now
        wall = self._wall()
        session = Session(id=new_session_id(wall), key=key, bot_type=self.bot_type,
                          idle_timeout=self.idle_timeout,
                          history=ConversationHistory(self.history_turns), started_at=wall,
                          deadline=now + self.idle_timeout, tags=(*self.tags, *tags))
        self._open[key] = session
        self._by_id[session.id] = session
        heapq.heappush(self._heap, (session.deadline, next(self._seq), session))
        if self._on_open is not None:
            with guard("session open hook"):
                self._on_open(session, user_name)
        return session

    def adopt(self, key: ConversationKey, session_id: str, started_at: float,
              turns: Iterable[Iterable[ChatMessage]] = ()) -> Session:
        """Serve a session another process opened (its id and stored history), replacing
        this process's copy of the conversation; nothing is recorded."""
        earlier = self._open.get(key)
        if earlier is not None:
            self.forget(earlier)
        now = self._clock()
        history = ConversationHistory(self.history_turns)
        for turn in turns:
            history.add_turn(turn)
        session = Session(id=session_id, key=key, bot_type=self.bot_type,
                          idle_timeout=self.idle_timeout, history=history,
                          started_at=started_at, deadline=now + self.idle_timeout,
                          tags=self.tags)
        self._open[key] = session
        self._by_id[session_id] = session
        heapq.heappush(self._heap, (session.deadline, next(self._seq), session))
        return session

    def forget(self, session: Session) -> None:
        """Drop this process's copy of a session without ending it (another process ended
        it, or serves it now)."""
        session.closed = True
        if self._open.get(session.key) is session:
            del self._open[session.key]
        self._by_id.pop(session.id, None)

    def close(self, session: Session, reason: EndReason, *, success: bool | None = None,
              metadata: dict[str, Any] | None = None) -> None:
        """End a session; ``success`` defaults to "its last turn did not fail"."""
        if session.closed:
            return
        session.closed = True
        if self._open.get(session.key) is session:
            del self._open[session.key]
        self._by_id.pop(session.id, None)
        ok = (not session.last_failed) if success is None else success
        if self._on_close is not None:
            with guard("session close hook"):
                self._on_close(session, reason, ok, metadata or {})
        session.history.clear()

    def sweep(self, now: float | None = None) -> list[Session]:
        """Close every session idle past its deadline; returns them."""
        now = self._clock() if now is None else now
        expired: list[Session] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, session = heapq.heappop(heap)
            if session.closed:
                continue
            if session.busy:
                heapq.heappush(heap, (now + session.idle_timeout, next(self._seq), session))
            elif session.deadline > now:  # touched since it was armed: re-arm lazily
                heapq.heappush(heap, (session.deadline, next(self._seq), session))
            else:
                expired.append(session)
                self.close(session, "idle_timeout")
        if expired:
            log.debug("sessions expired count=%d open=%d", len(expired), len(self._open))
        return expired

    def close_all(self, reason: EndReason = "shutdown") -> int:
        sessions = list(self._open.values())
        for session in sessions:
            self.close(session, reason)
        self._heap.clear()
        return len(sessions)

    def start_sweeper(self, interval: float | None = None) -> None:
        """Sweep in the background; the interval follows the idle timeout (≤ 1 s)."""
        if self._sweeper is not None and not self._sweeper.done():
            return
        every = interval or min(1.0, max(0.02, self.idle_timeout / 4))
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever(every),
                                                               name="opencell-session-sweeper")

    async def _sweep_forever(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            with guard("session sweep"):
                self.sweep()

    async def stop_sweeper(self) -> None:
        task, self._sweeper = self._sweeper, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
