"""Middleware used by the YAML-loading tests (``python: tests.core.sample_middleware:…``)."""

from __future__ import annotations

from opencell.context import TurnContext
from opencell.messages import Reply
from opencell.types import Handler


class Suffix:
    """Appends a configured suffix to every reply."""

    def __init__(self, suffix: str) -> None:
        self.suffix = suffix

    async def __call__(self, ctx: TurnContext, call_next: Handler) -> Reply | None:
        reply = await call_next(ctx)
        if reply is None:
            return None
        return Reply(text=reply.text + self.suffix, key=reply.key, in_reply_to=reply.in_reply_to)


class NotMiddleware:
    def __call__(self) -> None:
        return None
