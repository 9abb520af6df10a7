"""The errors middleware: any exception becomes a polite reply, never a crash."""

from __future__ import annotations

import logging

from opencell.context import TurnContext
from opencell.errors import (
    BudgetExceededError,
    LLMRateLimitError,
    LLMTimeoutError,
    OpenCellError,
)
from opencell.messages import Reply
from opencell.types import Handler

log = logging.getLogger("opencell.turn")

BUSY = "I'm getting a lot of requests right now. Please try again in a minute."
SLOW = "The model took too long to answer. Please try again in a moment."


class ErrorsMiddleware:
    """Turns any exception from the rest of the chain into the bot's polite error message.

    The exception stays on ``ctx.error`` and the turn is marked failed, for the session layer
    outside (which records it with its stack); the user only sees a short apology. A
    cancellation (the bot stopping) is not an error and passes through.
    """

    async def __call__(self, ctx: TurnContext, call_next: Handler) -> Reply | None:
        try:
            return await call_next(ctx)
        except Exception as exc:  # noqa: BLE001 - the whole point: nothing escapes a turn
            ctx.error = exc
            ctx.failed = True
            kind = type(exc).__name__
            detail = str(exc) if isinstance(exc, OpenCellError) else "unexpected error"
            log.warning("turn failed bot=%s conversation=%s error=%s: %s",
                        ctx.bot.name, ctx.message.key, kind, detail)
            log.debug("turn failure traceback", exc_info=exc)
            return Reply(text=polite_message(exc, ctx.bot.error_message))


def polite_message(exc: BaseException, default: str) -> str:
    if isinstance(exc, BudgetExceededError):
        return exc.user_message
    if isinstance(exc, LLMRateLimitError):
        return BUSY
    if isinstance(exc, LLMTimeoutError):
        return SLOW
    return default
