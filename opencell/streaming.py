"""A reply that appears as the model writes it: the throttled pump between model and platform.

The runtime hands each piece of a streamed answer to the turn's :class:`ReplyStream`; a
background task shows the growing text through the adapter's :class:`StreamSurface` — the
first piece at once (so the time to the first visible word is the model's), later ones at
most once per ``interval`` seconds (Discord and Slack allow about one edit a second per
message; a surface whose client waits out a 429's ``Retry-After`` simply makes the next update
later). Later pieces never wait for the platform: ``push`` only appends (the first one is shown
inline, before the pump takes over).

When the turn's reply is ready, :meth:`ReplyStream.finish` stops the pump and shows the final
text — the reply itself, or, when the turn failed after some text was shown, that text with
the polite error appended. The final update does not wait out ``interval``: it goes at once
unless the last ``FINAL_BURST`` updates all fell within that many intervals (the platforms'
limits are counted over a few seconds — Discord: 5 edits per 5 s per channel), so a fast
model's answer is complete as soon as it is written, not a second after its first word.
A surface that fails is logged and left alone; the reply is then sent the ordinary way if
nothing was shown yet.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

log = logging.getLogger("opencell.streaming")

EDIT_INTERVAL = 1.0
"""Seconds between two updates of a streamed reply (Discord and Slack: ~1 edit/s/message)."""
FINAL_BURST = 3
"""The final update waits only when this many updates came within this many intervals."""


class StreamSurface(Protocol):
    """Where an adapter shows a growing reply: ``show(text)`` makes the platform's
    message(s) display ``text`` (posting the first, editing it, adding messages past the
    platform's size limit); ``message_ids`` are the platform ids of what it posted."""

    @property
    def message_ids(self) -> Sequence[str]: ...

    async def show(self, text: str) -> None: ...


class ReplyStream:
    """One turn's growing reply. ``push`` and ``status`` are cheap and never raise."""

    def __init__(self, surface: StreamSurface, *, interval: float = EDIT_INTERVAL,
                 where: str = "", clock: Clock = time.monotonic,
                 sleep: Sleep = asyncio.sleep) -> None:
        self.surface = surface
        self.interval = interval
        self._where = where
        self._clock = clock
        self._sleep = sleep
        self._recent: deque[float] = deque(maxlen=FINAL_BURST)
        """When the last few updates were shown."""
        self._text = ""
        self._status = ""
        self._shown: str | None = None
        self._last = float("-inf")
        """When the latest update was done (its last request answered)."""
        self._wake = asyncio.Event()
        self._closed = False
        self._broken = False
        self._task: asyncio.Task[None] | None = None
        self._showing = False
        self.error: BaseException | None = None
        """Why the surface failed (it is then left alone)."""
        self.updates = 0
        """How many times the surface was asked to show new text."""

    @property
    def text(self) -> str:
        """The answer's text streamed so far (without a status line)."""
        return self._text

    @property
    def shown(self) -> bool:
        """Something reached the platform (the reply then finishes as edits)."""
        return self._shown is not None

    async def push(self, piece: str) -> None:
        """Append one piece of the answer (the ``TextSink`` a streamed model call gets)."""
        if self._closed or not piece:
            return
        self._text += piece
        self._status = ""
        if self._task is None and self._shown is None and not self._showing:
            # The first piece goes up at once, here: no hop through the pump's task, so the
            # first visible word costs what posting it costs (the model's stream waits
            # meanwhile, as it would for a bare bot posting it).
            self._task = asyncio.create_task(self._pump(), name="opencell-reply-stream")
            await self._show(self._text)
            return
        self._kick()

    async def status(self, line: str) -> None:
        """Agent turns: the text so far was a tool step, not the answer. What is on screen
        becomes a short status line (nothing is posted just for it: until the first words
        show, the platform's typing indicator says the bot is working); the next piece
        starts the answer afresh."""
        if self._closed:
            return
        self._text = ""
        if self._shown is None and not self._showing:
            return
        self._status = line
        self._kick()

    def _kick(self) -> None:
        self._wake.set()
        if self._task is None:
            self._task = asyncio.create_task(self._pump(), name="opencell-reply-stream")

    async def _pump(self) -> None:
        while not self._closed:
            await self._wake.wait()
            self._wake.clear()
            if self._closed:
                return
            if self._shown is not None:
                wait = self._last + self.interval - self._clock()
                if wait > 0:
                    await self._sleep(wait)
            if not await self._show(self._text or self._status):
                return

    async def _show(self, text: str) -> bool:
        """Show ``text`` if it is new; False once the surface has failed."""
        if self._broken:
            return False
        if not text.strip() or text == self._shown:
            return True
        self._showing = True
        try:
            await self.surface.show(text)
        except Exception as exc:  # noqa: BLE001 - the reply is still sent at the end
            log.warning("streamed reply update failed %s error=%s: %s", self._where,
                        type(exc).__name__, exc)
            self._broken = True
            self.error = exc
            return False
        finally:
            self._showing = False
        self._shown, self._last = text, self._clock()
        self._recent.append(self._last)
        self.updates += 1
        return True

    async def close(self) -> None:
        """Stop the pump (an update in progress completes first)."""
        self._closed = True
        task, self._task = self._task, None
        if task is None:
            return
        if not task.done():
            if not self._showing:  # waiting (for a piece, or out the interval): stop now
                task.cancel()
            self._wake.set()
            await asyncio.wait({task})
        if not task.cancelled() and task.exception() is not None:
            log.warning("reply stream stopped %s error=%r", self._where, task.exception())

    async def finish(self, final: str) -> None:
        """Show ``final`` as the reply's last update — at once, unless the last
        ``FINAL_BURST`` updates came within ``FINAL_BURST`` intervals (a steady stream: then
        one ``interval`` after the latest, and once the oldest leaves that window); raises if
        the surface cannot show it."""
        await self.close()
        if final == self._shown:
            return
        if len(self._recent) == FINAL_BURST:  # a steady stream: its usual pace, and the burst
            wait = max(self._recent[0] + FINAL_BURST * self.interval,
                       self._last + self.interval) - self._clock()
            if wait > 0:
                await self._sleep(wait)
        await self.surface.show(final)
        self._shown, self._last = final, self._clock()
        self._recent.append(self._last)
        self.updates += 1

    def final_text(self, reply_text: str, *, failed: bool) -> str:
        """What the person ends up with: the reply; or, for a failed turn whose answer had
        begun to appear, that answer with the polite error appended."""
        if failed and self._text.strip() and reply_text != self._text:
            return f"{self._text.rstrip()}\n\n{reply_text}"
        return reply_text
