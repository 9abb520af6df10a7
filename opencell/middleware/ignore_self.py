"""Drops the bot's own messages (and other bots', where configured) before any work is done."""

from __future__ import annotations

from opencell.context import TurnContext
from opencell.messages import Reply
from opencell.types import Handler


class IgnoreSelfMiddleware:
    """Never answer yourself; by default never answer other bots either (no bot loops)."""

    def __init__(self, *, ignore_bots: bool = True) -> None:
        self.ignore_bots = ignore_bots

    async def __call__(self, ctx: TurnContext, call_next: Handler) -> Reply | None:
        message = ctx.message
        if message.from_self or (self.ignore_bots and message.from_bot):
            return None
        return await call_next(ctx)
