"""The onion: middleware folded around the bot's handler once, at start-up."""

from __future__ import annotations

from collections.abc import Iterable

from opencell.context import TurnContext
from opencell.errors import MiddlewareError
from opencell.messages import Reply
from opencell.types import Handler, Middleware


def _wrap(middleware: Middleware, call_next: Handler) -> Handler:
    async def layer(ctx: TurnContext) -> Reply | None:
        return await middleware(ctx, call_next)

    return layer


class MiddlewareChain:
    """Middleware around a handler; the first added is the outermost layer.

    The chain is folded once, on ``build()`` or the first call; adding a middleware after
    that is an error, so what runs is always what was configured at start-up.
    """

    def __init__(self, handler: Handler, middleware: Iterable[Middleware] = ()) -> None:
        self._handler = handler
        self._middleware: list[Middleware] = list(middleware)
        self._built: Handler | None = None

    @property
    def middleware(self) -> tuple[Middleware, ...]:
        return tuple(self._middleware)

    def add(self, middleware: Middleware) -> None:
        if self._built is not None:
            raise MiddlewareError(
                "the middleware chain is already running; add middleware before the bot starts"
            )
        self._middleware.append(middleware)

    def build(self) -> Handler:
        if self._built is None:
            handler = self._handler
            for middleware in reversed(self._middleware):
                handler = _wrap(middleware, handler)
            self._built = handler
        return self._built

    async def __call__(self, ctx: TurnContext) -> Reply | None:
        return await (self._built or self.build())(ctx)
