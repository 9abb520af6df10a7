"""What the person on the platform really received for a turn: adapters say, records follow.

The middleware chain produces a reply; it is sent afterwards, outside the chain. A turn
recorded when the chain returns would claim a reply — or the polite apology — that a failed
send or a shutdown never delivered. So :meth:`Adapter.handle` opens a :class:`Delivery` for
each message, carrying the adapter's ``send``, in a context variable the turn inherits; the
runtime sends the reply through it (still in the conversation's turn, so replies keep their
order) and it is settled with what happened; the session layer writes the turn's record once
it is settled.
Without an adapter (``BotRuntime.process_message``, scripts, tests) there is no delivery: the
caller receives the chain's reply, and the record is written at once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from typing import Literal

from opencell.messages import ConversationKey, IncomingMessage, Reply
from opencell.streaming import ReplyStream

log = logging.getLogger("opencell.adapters")

Send = Callable[[Reply], Awaitable[Sequence[str] | None]]
"""An adapter's ``send``; it may return the platform ids of the messages it posted."""

Outcome = Literal["sent", "nothing", "send_failed", "cut_off"]
"""``sent``: the reply went out. ``nothing``: there was no reply to send. ``send_failed``: the
platform refused it. ``cut_off``: the turn was cancelled (the bot is stopping) before the reply
was sent."""


class Delivery:
    """The outcome of one message's reply; settled once, by the adapter handling it."""

    __slots__ = ("outcome", "text", "error", "_waiting", "_send", "_where", "_for", "_claimed",
                 "stream", "message_ids", "session_id")

    def __init__(self, send: Send | None = None, where: str = "", *,
                 answers: tuple[ConversationKey, str] | None = None,
                 stream: ReplyStream | None = None) -> None:
        self._send = send
        self._where = where
        """Named in the log line of a failed send (platform, bot, conversation)."""
        self._for = answers
        """The conversation and message id this delivery answers."""
        self._claimed = False
        self.outcome: Outcome | None = None
        self.text: str | None = None
        """What the person received (None: nothing)."""
        self.error: BaseException | None = None
        """Why sending failed (``send_failed``)."""
        self._waiting: list[Callable[[Delivery], None]] = []
        self.stream = stream
        """Where a streamed answer appears as it is written (the bot streams and the
        adapter can show it), else None."""
        self.session_id: str | None = None
        """The session of the turn this delivery answers (set by the session layer)."""
        self.message_ids: tuple[str, ...] = ()
        """The platform ids of the messages that carried the reply (those adapters report)."""

    def when_settled(self, callback: Callable[[Delivery], None]) -> None:
        """Call ``callback(self)`` once the outcome is known (now, if it already is)."""
        if self.outcome is not None:
            callback(self)
        else:
            self._waiting.append(callback)

    def claim(self, message: IncomingMessage) -> bool:
        """Take this delivery for the turn answering ``message`` — once, and only the turn of
        the message it was opened for: a bot that a tool or middleware asks in the middle of
        another turn (``process_message``) must not answer through this adapter."""
        if self._claimed or self._for != (message.key, message.message_id):
            return False
        self._claimed = True
        return True

    async def send(self, reply: Reply) -> None:
        """Send ``reply`` with the adapter's ``send`` and settle with what happened (once:
        a settled delivery sends nothing more).

        A failure to send is logged, never raised: one bad channel must not stop the adapter.
        """
        if self.outcome is not None:
            return
        stream = self.stream
        if stream is not None:
            await stream.close()
            if stream.shown:  # the answer is already on screen: finish it in place
                await self._finish_stream(stream, reply)
                return
            if stream.error is not None:  # the platform refused its first piece already
                log.warning("send failed %s error=%s: %s", self._where,
                            type(stream.error).__name__, stream.error)
                self.settle("send_failed", error=stream.error)
                return
        if self._send is None or not reply.text:
            self.settle("nothing")
            return
        try:
            ids = await self._send(reply)
        except Exception as exc:  # noqa: BLE001 - keep serving other conversations
            log.warning("send failed %s error=%s: %s", self._where, type(exc).__name__, exc)
            self.settle("send_failed", error=exc)
        else:
            self.message_ids = tuple(ids or ())
            self.settle("sent", text=reply.text)

    async def _finish_stream(self, stream: ReplyStream, reply: Reply) -> None:
        final = stream.final_text(reply.text, failed=reply.failed)
        try:
            await stream.finish(final)
        except Exception as exc:  # noqa: BLE001 - keep serving other conversations
            log.warning("send failed %s error=%s: %s", self._where, type(exc).__name__, exc)
            self.message_ids = tuple(stream.surface.message_ids)
            self.settle("send_failed", error=exc)
        else:
            self.message_ids = tuple(stream.surface.message_ids)
            self.settle("sent", text=final)

    def settle(self, outcome: Outcome, *, text: str | None = None,
               error: BaseException | None = None) -> None:
        """Record the outcome (only the first call counts) and run the waiting callbacks."""
        if self.outcome is not None:
            return
        self.outcome, self.text, self.error = outcome, text, error
        waiting, self._waiting = self._waiting, []
        for callback in waiting:
            callback(self)


current_delivery: ContextVar[Delivery | None] = ContextVar("opencell_delivery", default=None)
"""The delivery of the message whose turn is running in this context, if an adapter runs it."""
