"""Feedback on the bot's replies: reactions and ``/feedback`` become ``feedback`` events.

:class:`FeedbackBook` remembers which turn each posted reply answered (platform message id →
session and turn, where the turn is the id of the user's message it answered), in memory for
recent replies and in the store (``reply_messages``) so a reaction after a restart still finds
its turn. A rating is recorded twice: as a ``feedback`` custom event in the turn's session
(the history that exporters send, retractions included) and as the standing row of the
``feedback`` table (what lists, filters and the analytics read). Removing a reaction deletes
its row and records a retraction event.

Store calls block, so they run in a worker thread; every method is guarded (feedback never
takes a bot down) and the background writes are kept referenced until done.
"""

from __future__ import annotations

import asyncio
import logging
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from opencell.guard import guard
from opencell.observability.redact import Redactor
from opencell.store import feedback as rows

log = logging.getLogger("opencell.feedback")

Value = Literal["good", "bad"]
SCORES: dict[str, int] = {"good": 1, "bad": -1}
MAX_REMEMBERED = 50_000
NOT_PART_TTL = 300.0
"""Seconds a "the bot was not in that thread" answer from the store is trusted (another
process sharing the store may answer there meanwhile)."""


@dataclass(frozen=True, slots=True)
class TurnRef:
    """The turn a reply answered, and where."""

    session_id: str
    bot: str
    turn: str
    platform: str = ""
    channel: str = ""
    thread: str = ""
    user_id: str = ""


class Recording(Protocol):
    """What the book needs of ``Observability`` (named, not imported: it holds the book)."""

    store: Any
    redactor: Redactor

    def custom(self, session_id: str, name: str, data: Mapping[str, Any], *,
               ts: float | None = None) -> None: ...


class FeedbackBook:
    """Replies → turns, and ratings recorded on them (see the module docstring)."""

    def __init__(self, observability: Recording) -> None:
        self._obs = observability
        self._replies: OrderedDict[tuple[str, str, str, str], TurnRef] = OrderedDict()
        self._threads: OrderedDict[tuple[str, str, str, str, str], None] = OrderedDict()
        self._last: OrderedDict[str, str] = OrderedDict()
        self._not_part: OrderedDict[tuple[str, str, str, str, str], float] = OrderedDict()
        self._tasks: set[asyncio.Future[Any]] = set()
        # One thread, so writes land in the order they were made: a rating, its retraction
        # and a new rating by the same person on one turn, run side by side, could land in
        # any order (and, on PostgreSQL, two inserts of the same key collided).
        self._writer: ThreadPoolExecutor | None = None
        self._in_flight: set[Future[None]] = set()
        self._pending: list[dict[str, Any]] = []
        self._writing = False

    @property
    def _store(self) -> Any:
        return self._obs.store

    # ------------------------------------------------------------ replies

    def remember(self, ref: TurnRef, message_ids: Sequence[str]) -> None:
        """The reply to ``ref``'s turn went out as ``message_ids`` (may be none: console)."""
        with guard("remembering a reply"):
            _put(self._last, ref.session_id, ref.turn)
            if ref.thread:
                _put(self._threads, (ref.bot, ref.platform, ref.channel, ref.thread,
                                     ref.user_id), None)
            for message_id in message_ids:
                _put(self._replies, (ref.bot, ref.platform, ref.channel, message_id), ref)
            if message_ids and self._store is not None:
                now = time.time()
                self._pending.extend(
                    {"bot": ref.bot, "platform": ref.platform, "channel": ref.channel,
                     "message_id": m, "thread": ref.thread, "user_id": ref.user_id,
                     "session_id": ref.session_id, "turn": ref.turn, "ts": now}
                    for m in message_ids)
                if not self._writing:  # one writer at a time; it takes what piled up
                    self._writing = True
                    self._background(self._write_replies)

    async def find(self, *, bot: str, platform: str, channel: str,
                   message_id: str) -> TurnRef | None:
        """The turn a platform message of the bot's answered (None: not a reply of its)."""
        ref = self._replies.get((bot, platform, channel, message_id))
        if ref is not None or self._store is None:
            return ref
        with guard("finding a reply"):
            row = await asyncio.to_thread(rows.find_reply, self._store, bot=bot,
                                          platform=platform, channel=channel,
                                          message_id=message_id)
            if row is not None:
                return TurnRef(session_id=row["session_id"], bot=bot, turn=row["turn"],
                               platform=platform, channel=channel, thread=row["thread"],
                               user_id=row["user_id"])
        return None

    def took_part_recently(self, *, bot: str, platform: str, channel: str, thread: str,
                           user_id: str) -> bool:
        """Whether this process answered ``user_id`` in the thread (no I/O)."""
        return (bot, platform, channel, thread, user_id) in self._threads

    async def took_part(self, *, bot: str, platform: str, channel: str, thread: str,
                        user_id: str) -> bool:
        """Whether the bot ever answered ``user_id`` in the thread (memory, then store)."""
        key = (bot, platform, channel, thread, user_id)
        if key in self._threads:
            return True
        if self._store is None:
            return False
        checked = self._not_part.get(key)
        if checked is not None and time.monotonic() - checked < NOT_PART_TTL:
            return False  # asked the store lately (a busy thread the bot is not in)
        with guard("looking up a thread"):
            found = await asyncio.to_thread(rows.took_part, self._store, bot=bot,
                                            platform=platform, channel=channel,
                                            thread=thread, user_id=user_id)
            if found:
                _put(self._threads, key, None)
            else:
                _put(self._not_part, key, time.monotonic())
            return bool(found)
        return False

    def last_turn(self, session_id: str) -> str | None:
        """The latest turn of the session this process answered."""
        return self._last.get(session_id)

    # ------------------------------------------------------------ ratings

    async def reaction(self, *, bot: str, platform: str, channel: str, message_id: str,
                       user_id: str, reaction: str, added: bool,
                       reactions: Mapping[str, str]) -> bool:
        """A reaction added to (or removed from) a message; True if it was feedback on a
        reply of the bot's and was recorded."""
        value = reactions.get(reaction) or reactions.get(plain_emoji(reaction))
        if value not in SCORES:
            return False
        ref = await self.find(bot=bot, platform=platform, channel=channel,
                              message_id=message_id)
        if ref is None:
            return False
        self.rate(ref.session_id, bot=bot, turn=ref.turn, user_id=user_id,
                  value=value if added else None, source=reaction, message_id=message_id)
        return True

    def rate(self, session_id: str, *, bot: str, turn: str | None, user_id: str,
             value: str | None, source: str, comment: str | None = None,
             message_id: str | None = None) -> None:
        """Record a rating (``good``/``bad``) on a turn, or retract it (``value`` None)."""
        with guard("recording feedback"):
            turn = turn if turn is not None else (self.last_turn(session_id) or "")
            score = SCORES.get(value or "", 0)
            data: dict[str, Any] = {
                "turn": turn, "value": value, "score": score, "source": source,
                "user_id": user_id, "retracted": value is None, "bot": bot}
            if comment:
                data["comment"] = comment
            if message_id:
                data["message_id"] = message_id
            self._obs.custom(session_id, "feedback", data)
            if self._store is not None:
                comment_text = self._obs.redactor.redact(comment) if comment else None
                self._background(rows.set_feedback, self._store, session_id=session_id,
                                 bot=bot, turn=turn, user_id=user_id, source=source,
                                 score=score, comment=comment_text)

    # ------------------------------------------------------------ background writes

    def _write_replies(self) -> None:
        """Store the reply rows that piled up (in the worker thread), until none are left:
        a busy bot writes one transaction per batch, not one per reply."""
        try:
            while True:
                batch, self._pending = self._pending, []
                if not batch:
                    return
                rows.remember_replies(self._store, batch)
        finally:
            self._writing = False

    def _background(self, fn: Any, *args: Any, **kwargs: Any) -> None:
        def run() -> None:
            with guard(f"feedback store {fn.__name__}"):
                fn(*args, **kwargs)

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # called from plain Python (the facade): write now
            run()
            return
        if self._writer is None:
            self._writer = ThreadPoolExecutor(max_workers=1,
                                              thread_name_prefix="opencell-feedback")
        written = self._writer.submit(run)
        self._in_flight.add(written)
        written.add_done_callback(self._in_flight.discard)
        future = asyncio.wrap_future(written, loop=loop)
        self._tasks.add(future)
        future.add_done_callback(self._tasks.discard)

    async def settle(self) -> None:
        """Wait for the background writes started so far (tests, shutdown)."""
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def close(self, timeout: float = 5.0) -> bool:
        """Wait up to ``timeout`` for the background writes started so far, then stop their
        thread (before the store closes under them); False if some were still running."""
        writer, self._writer = self._writer, None
        if writer is None:
            return True
        _, unfinished = wait(list(self._in_flight), timeout)
        writer.shutdown(wait=False, cancel_futures=True)
        if unfinished:
            log.warning("feedback writes unfinished at close count=%d timeout_s=%.1f "
                        "action=abandoned", len(unfinished), timeout)
        return not unfinished


def plain_emoji(reaction: str) -> str:
    """``reaction`` without skin tone (Discord: 👍🏽 → 👍; Slack: ``+1::skin-tone-3`` → ``+1``)."""
    name = reaction.split("::", 1)[0]
    return "".join(c for c in name if not ("\U0001f3fb" <= c <= "\U0001f3ff")
                   and unicodedata.category(c) != "Mn" and c != "\ufe0f")


def _put(cache: OrderedDict[Any, Any], key: Any, value: Any) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > MAX_REMEMBERED:
        cache.popitem(last=False)
