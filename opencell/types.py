"""Type aliases and Protocols shared across OpenCell's layers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from opencell.context import TurnContext
    from opencell.messages import IncomingMessage, Reply

Handler = Callable[["TurnContext"], Awaitable["Reply | None"]]
"""The rest of the chain, as seen by one middleware (and the bot itself at the centre)."""

Deliver = Callable[["IncomingMessage"], Awaitable["Reply | None"]]
"""What an adapter calls with each incoming message; the reply comes back (or None)."""

Clock = Callable[[], float]
"""Monotonic seconds; injected wherever timeouts matter so tests need no sleeps."""


@runtime_checkable
class Middleware(Protocol):
    """One layer of the onion: do work before and after ``await call_next(ctx)``.

    Return the reply (possibly changed), or a reply of your own without calling
    ``call_next`` to short-circuit the turn, or ``None`` to drop the message silently.
    """

    async def __call__(self, ctx: TurnContext, call_next: Handler) -> Reply | None: ...
