"""What the person on the platform really received for a turn: adapters say, records follow.

The middleware chain produces a reply; the adapter sends it afterwards, outside the chain. A
turn recorded when the chain returns would claim a reply — or the polite apology — that a
failed send or a shutdown never delivered. So :meth:`Adapter.handle` opens a
:class:`Delivery` for each message in a context variable the chain inherits and settles it
with what happened; the observability middleware writes the turn's record once it is settled.
Without an adapter (``BotRuntime.process_message``, scripts, tests) there is no delivery: the
caller receives the chain's reply, and the record is written at once.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Literal

Outcome = Literal["sent", "nothing", "send_failed", "cut_off"]
"""``sent``: the reply went out. ``nothing``: there was no reply to send. ``send_failed``: the
platform refused it. ``cut_off``: the turn was cancelled (the bot is stopping) before the reply
was sent."""


class Delivery:
    """The outcome of one message's reply; settled once, by the adapter handling it."""

    __slots__ = ("outcome", "text", "error", "_waiting")

    def __init__(self) -> None:
        self.outcome: Outcome | None = None
        self.text: str | None = None
        """What the person received (None: nothing)."""
        self.error: BaseException | None = None
        """Why sending failed (``send_failed``)."""
        self._waiting: list[Callable[[Delivery], None]] = []

    def when_settled(self, callback: Callable[[Delivery], None]) -> None:
        """Call ``callback(self)`` once the outcome is known (now, if it already is)."""
        if self.outcome is not None:
            callback(self)
        else:
            self._waiting.append(callback)

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
