"""Turns of conversations that several processes serve (a PostgreSQL store; SCALE-OUT D5).

Around every turn, inside the runtime's per-conversation queue:

1. take the conversation's lock in the database (``store/conversations.py``), so its turns
   run one at a time across processes;
2. look at its open session as stored: if another process served it since this process last
   did (the stored history's version moved), or opened it, this process adopts it, with the
   stored history, so the model sees every earlier turn whichever process handled it; if the
   stored session was ended elsewhere (idle, janitor), this process's copy is dropped and the
   turn opens a new one;
   A message some process already took on (a Slack retry or duplicate delivered to another
   worker; ``platform_events``) is dropped here, unanswered;
3. after the turn: flush the recorder (the session row and the turn's events are then visible
   to every process), then store the history with a new version and let the lock go (one
   round trip).

Idle expiry stays in each process's tracker, but only the process that served the last turn
ends the session (``still_mine``); the others drop their copy silently. A graceful stop hands
the sessions it serves over instead of ending them (``hand_over``): they stay open, with no
owner, for the next process to continue, and the janitor ends one that goes idle first.
Database calls run in worker threads, never on the event loop. With a SQLite store none of
this runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from opencell.llm.base import Attachment, ChatMessage, ToolCall
from opencell.messages import ConversationKey, IncomingMessage
from opencell.observability.observer import Observability
from opencell.sessions import EndReason, Session, SessionTracker
from opencell.store.conversations import LOCK_POOL, ConversationStore, Held, Turn

log = logging.getLogger("opencell.cluster")

T = TypeVar("T")

FLUSH_TIMEOUT = 10.0
MESSAGE_TTL = 86_400.0
"""How long a taken-on message is remembered (Slack retries for about five minutes)."""
PRUNE_EVERY = 1000


class ClusterTurns:
    """The cross-process part of a bot's turns (one per runtime)."""

    def __init__(self, observability: Observability, tracker: SessionTracker) -> None:
        assert observability.store is not None
        self.obs = observability
        self.tracker = tracker
        self.conversations = ConversationStore(observability.store)
        self._versions: dict[str, int] = {}
        self._claims = 0
        # Its own threads: a turn waiting for a conversation another process holds must not
        # take a thread from the default pool that other turns' database calls need.
        self._threads = ThreadPoolExecutor(max_workers=LOCK_POOL,
                                           thread_name_prefix="opencell-cluster")

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._threads, fn, *args)

    @classmethod
    def for_store(cls, observability: Observability,
                  tracker: SessionTracker) -> ClusterTurns | None:
        """Cluster turns when the store is PostgreSQL, else None (one process)."""
        store = observability.store
        if store is None or store.dialect_name != "postgresql":
            return None
        return cls(observability, tracker)

    @contextlib.asynccontextmanager
    async def turn(self, message: IncomingMessage) -> AsyncIterator[bool]:
        """Around one turn of ``message``'s conversation; yields False for a message some
        process already took on (a platform retry or duplicate delivered to another worker):
        it must not be answered again."""
        key = message.key
        claim = None
        if message.message_id:
            claim = "\x1f".join((key.bot, key.platform, key.workspace, key.channel,
                                 message.message_id))
        lock = self.conversations.turn(str(key))
        # One worker-thread hop before the turn (lock, take the message on, read the stored
        # session: one round trip) and one after it (flush; save the history and let go: one
        # round trip): each hop is a thread hand-off of its own, so each side goes in one.
        held, fresh, stored = await _acquire(
            lambda: self._enter(lock, str(key), claim, time.time()), lock, self._threads)
        answered = False
        try:
            if not fresh:
                yield False
                return
            self._sync(key, stored)
            yield True
            answered = True
        finally:
            await self._call(self._leave, key, held if answered else None, lock)

    def _enter(self, lock: contextlib.AbstractContextManager[Turn], key: str,
               claim: str | None, now: float) -> tuple[Turn, bool, Any]:
        held = lock.__enter__()
        try:
            self._claims += 1
            if self._claims % PRUNE_EVERY == 0:
                self.conversations.prune_messages(now - MESSAGE_TTL)
            fresh, stored = held.begin(key, claim, now)
        except BaseException:
            lock.__exit__(None, None, None)
            raise
        return held, fresh, stored

    def _leave(self, key: ConversationKey, held: Turn | None,
               lock: contextlib.AbstractContextManager[Turn]) -> None:
        try:
            if held is not None:  # the turn went through: its history and records
                self._after(key, held)
        finally:
            lock.__exit__(None, None, None)

    def _sync(self, key: ConversationKey, stored: Any) -> Session | None:
        local = self.tracker.find(key)
        if stored is None:
            if local is not None and local.id in self._versions:
                self.tracker.forget(local)  # ended elsewhere: this turn opens a new one
                self._versions.pop(local.id, None)
            return None
        if local is not None and local.id == stored.id and \
                self._versions.get(local.id, 0) == stored.version:
            return local
        session = self.tracker.adopt(key, stored.id, stored.started_at,
                                     [_turn(turn) for turn in stored.turns])
        # Turn numbers go on from the stored count (a turn's trace and root span ids derive
        # from it), and the model-input chain restarts from this process's history objects.
        session.turns = stored.version
        self.obs.inputs.forget(stored.id)
        self._versions[stored.id] = stored.version
        return session

    def _after(self, key: ConversationKey, held: Turn) -> None:
        session = self.tracker.find(key)
        if session is not None:  # the version is the session's turn count
            version = max(self._versions.get(session.id, 0) + 1, session.turns)
            held.save(session.id, version,
                      [[_plain(m) for m in turn] for turn in session.history.turns()])
            self._versions[session.id] = version
        if not self.obs.recorder.flush(FLUSH_TIMEOUT):
            log.warning("turn records not flushed before the conversation lock was released "
                        "conversation=%s", key)

    def should_end(self, session: Session, reason: EndReason) -> bool:
        """Whether this process records the end of ``session`` (idle, shutdown): only while
        it is the one serving it."""
        if reason in ("explicit", "end_command"):
            return True
        try:
            mine = self.conversations.still_mine(session.id,
                                                  self._versions.get(session.id, 0))
        except Exception:  # noqa: BLE001 - the store is failing: end it here, as before
            return True
        if not mine:
            self._versions.pop(session.id, None)
        return mine

    async def hand_over(self, platforms: Collection[str]) -> int:
        """A graceful stop: release the sessions of ``platforms``' conversations this process
        serves, instead of ending them, so whichever process gets a conversation's next
        message continues its session (``conversations.release``); the janitor ends one
        that goes idle first. This process's copies are dropped; how many were released.

        The rest — sessions another process serves now, or ones whose row is not stored —
        stay, and ``close_all`` at the stop treats them as before (``should_end``)."""
        sessions = [s for s in self.tracker.open_sessions() if s.key.platform in platforms]
        if not sessions:
            return 0
        if not await self._call(self.obs.recorder.flush, FLUSH_TIMEOUT):  # rows stored first
            log.warning("session records not flushed before the hand-over")
        held = [Held(s.id, self._versions.get(s.id, 0), self.tracker.idle_left(s))
                for s in sessions]
        try:
            released = await self._call(self.conversations.release, held)
        except Exception as exc:  # noqa: BLE001 - the store is failing: end them here instead
            log.warning("sessions not handed over error=%s: %s; they end as shutdown",
                        type(exc).__name__, exc)
            return 0
        for session in sessions:
            if session.id in released:
                self.tracker.forget(session)
                self._versions.pop(session.id, None)
                self.obs.inputs.forget(session.id)
        if released:
            log.info("sessions handed over count=%d", len(released))
        return len(released)

    def close(self) -> None:
        self._threads.shutdown(wait=False)
        self.conversations.close()


async def _acquire(enter: Callable[[], T], lock: contextlib.AbstractContextManager[Any],
                   threads: ThreadPoolExecutor) -> T:
    """Run ``enter`` (which takes ``lock``) in a worker thread; if the turn is cancelled
    meanwhile, the lock is let go as soon as the thread has it (never leaked)."""
    waiting = asyncio.get_running_loop().run_in_executor(threads, enter)
    try:
        return await asyncio.shield(waiting)
    except asyncio.CancelledError:
        def let_go(done: asyncio.Future[T]) -> None:
            if not done.cancelled() and done.exception() is None:
                threading.Thread(target=lock.__exit__, args=(None, None, None),
                                 daemon=True).start()
        waiting.add_done_callback(let_go)
        raise


def _plain(message: ChatMessage) -> dict[str, Any]:
    """A history message as stored (JSON); field by field: ``dataclasses.asdict`` deep-copies
    every value, and the whole bounded history is stored after every turn."""
    data: dict[str, Any] = {
        "role": message.role, "content": message.content,
        "tool_calls": [{"id": c.id, "name": c.name, "arguments": dict(c.arguments)}
                       for c in message.tool_calls],
        "tool_call_id": message.tool_call_id, "tool_name": message.tool_name,
        "is_error": message.is_error}
    if message.attachments:
        data["attachments"] = [{"kind": a.kind, "mime_type": a.mime_type, "data": a.data}
                               for a in message.attachments]
    return data


def _turn(turn: list[dict[str, Any]]) -> tuple[ChatMessage, ...]:
    return tuple(ChatMessage(role=m["role"], content=m.get("content", ""),
                             tool_calls=tuple(ToolCall(c["id"], c["name"], c["arguments"])
                                              for c in m.get("tool_calls", ())),
                             tool_call_id=m.get("tool_call_id", ""),
                             tool_name=m.get("tool_name", ""),
                             is_error=bool(m.get("is_error", False)),
                             attachments=tuple(Attachment(a["kind"], a["mime_type"], a["data"])
                                               for a in m.get("attachments", ())))
                 for m in turn)
