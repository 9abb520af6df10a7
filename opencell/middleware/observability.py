"""The session layer of the chain: opens/touches the conversation's session, records the turn."""

from __future__ import annotations

import time

from opencell.context import TurnContext
from opencell.guard import guard
from opencell.messages import Reply
from opencell.middleware.errors import polite_message
from opencell.observability.observer import Observability
from opencell.sessions import SessionTracker, current_session
from opencell.types import Handler

SESSION_ENDED = "Conversation ended. Send a new message to start a fresh one."


class ObservabilityMiddleware:
    """One ``try/finally`` around the rest of the chain.

    Before: the conversation's session is opened (or touched) and made current, so model and
    tool wrappers record into it. After — success or exception alike — the turn is recorded
    as a ``message`` (and an ``error`` with its stack when it failed), and the idle clock
    restarts. The exception itself keeps going out to the errors middleware.
    """

    def __init__(self, tracker: SessionTracker, observability: Observability, *,
                 end_command: str | None = None) -> None:
        self.tracker = tracker
        self.obs = observability
        self.end_command = end_command

    async def __call__(self, ctx: TurnContext, call_next: Handler) -> Reply | None:
        message = ctx.message
        session = self.tracker.acquire(message.key, user_name=message.user_name)
        ctx.session = session
        ctx.history = session.history
        token = current_session.set(session)
        wall, start = time.time(), time.perf_counter()
        reply: Reply | None = None
        error: BaseException | None = None
        ending = bool(self.end_command) and message.text.strip() == self.end_command
        try:
            if ending:
                reply = Reply(text=SESSION_ENDED, key=message.key, in_reply_to=message.message_id)
            else:
                reply = await call_next(ctx)
            return reply
        except BaseException as exc:
            error = exc
            raise
        finally:
            current_session.reset(token)
            failed = error is not None or session.turn_failed or bool(reply and reply.failed)
            with guard("recording the turn"):
                output = reply.text if reply is not None else (
                    polite_message(error, ctx.bot.error_message) if error else None)
                self.obs.message(session, text=message.text, output=output,
                                 user_id=message.user_id, started=wall,
                                 duration_ms=(time.perf_counter() - start) * 1000,
                                 success=not failed)
                if error is not None:
                    self.obs.error(session.id, error, context={
                        "bot": ctx.bot.name, "conversation": str(message.key),
                        "input": self.obs.text(message.text)})
            self.tracker.release(session, failed=failed)
            if ending:
                self.tracker.close(session, "end_command")
