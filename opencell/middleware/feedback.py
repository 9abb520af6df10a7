"""The ``/feedback good|bad [comment]`` command: rates the bot's previous reply, in any adapter.

It sits right inside the errors middleware, so a rating never reaches the model; the answer
is the bot's ``feedback.thanks``. The rated turn is the session's latest answered one (what
the person just read); without one there is nothing to rate, and the bot says so.
"""

from __future__ import annotations

from opencell.config import FeedbackConfig
from opencell.context import TurnContext
from opencell.messages import Reply
from opencell.observability.feedback import FeedbackBook
from opencell.types import Handler

VALUES = {"good": "good", "bad": "bad", "+1": "good", "-1": "bad", "👍": "good", "👎": "bad",
          "up": "good", "down": "bad"}
NOTHING_TO_RATE = "There is no answer of mine in this conversation to rate yet."


class FeedbackCommand:
    """Answers ``/feedback …`` itself; every other message goes on down the chain."""

    def __init__(self, settings: FeedbackConfig, book: FeedbackBook) -> None:
        self.command = settings.command
        self.thanks = settings.thanks
        self.book = book

    async def __call__(self, ctx: TurnContext, call_next: Handler) -> Reply | None:
        text = ctx.message.text.strip()
        command = self.command
        if not command or not text.startswith(command) or ctx.session is None:
            return await call_next(ctx)
        rest = text[len(command):]
        if rest and not rest[0].isspace():  # /feedbackfoo is not the command
            return await call_next(ctx)
        word, _, comment = rest.strip().partition(" ")
        value = VALUES.get(word.casefold())
        if value is None:
            return Reply(text=f"Usage: {command} good|bad [comment]")
        turn = self.book.last_turn(ctx.session.id)
        if turn is None:
            return Reply(text=NOTHING_TO_RATE)
        self.book.rate(ctx.session.id, bot=ctx.bot.name, turn=turn,
                       user_id=ctx.message.user_id, value=value, source="command",
                       comment=comment.strip() or None)
        return Reply(text=self.thanks)
