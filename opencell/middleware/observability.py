"""The session layer of the chain: opens/touches the conversation's session, records the turn."""

from __future__ import annotations

import time
import traceback

from opencell.context import TurnContext
from opencell.delivery import Delivery, current_delivery
from opencell.guard import guard
from opencell.messages import Reply
from opencell.middleware.errors import polite_message
from opencell.observability.observer import Observability
from opencell.sessions import Session, SessionTracker, current_session
from opencell.types import Handler

SESSION_ENDED = "Conversation ended. Send a new message to start a fresh one."


class ObservabilityMiddleware:
    """One ``try/finally`` around the rest of the chain.

    Before: the conversation's session is opened (or touched) and made current, so model and
    tool wrappers record into it. After — success or exception alike — the idle clock
    restarts and the turn is recorded as a ``message`` (and an ``error`` with its stack when it
    failed) whose output is what the user really received: under an adapter, once it has sent
    the reply or failed to (``opencell/delivery.py``) — nothing when a shutdown cut the turn
    off. The exception itself keeps going out to the errors middleware.
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
            turn = _Turn(self.obs, ctx, session, reply, error, failed, wall,
                         (time.perf_counter() - start) * 1000)
            delivery = current_delivery.get()
            if delivery is None:  # no adapter: the caller receives the chain's answer
                turn.record(None)
            else:  # an adapter sends it: record what was really received, once known
                delivery.when_settled(turn.record)
            self.tracker.release(session, failed=failed)
            if ending:
                self.tracker.close(session, "end_command")


CUT_OFF = ("the turn was cut off before its reply was sent (the bot is shutting down); the "
           "user received nothing")


class _Turn:
    """One finished turn, recorded as what its user actually received."""

    def __init__(self, obs: Observability, ctx: TurnContext, session: Session,
                 reply: Reply | None, error: BaseException | None, failed: bool,
                 started: float, duration_ms: float) -> None:
        self.obs, self.ctx, self.session = obs, ctx, session
        self.reply, self.error, self.failed = reply, error, failed
        self.started, self.duration_ms = started, duration_ms

    def record(self, delivery: Delivery | None) -> None:
        with guard("recording the turn"):
            obs, message, error = self.obs, self.ctx.message, self.error
            if delivery is None:
                # The errors middleware answers an Exception with its apology; a cancelled
                # turn (BaseException) gets no answer at all.
                output = self.reply.text if self.reply is not None else (
                    polite_message(error, self.ctx.bot.error_message)
                    if isinstance(error, Exception) else None)
                outcome = None
            else:
                output, outcome = delivery.text, delivery.outcome
            lost = outcome in ("send_failed", "cut_off")
            obs.message(self.session, text=message.text, output=output,
                        user_id=message.user_id, started=self.started,
                        duration_ms=self.duration_ms, success=not (self.failed or lost))
            context: dict[str, object] = {
                "bot": self.ctx.bot.name, "conversation": str(message.key),
                "input": obs.text(message.text)}
            if outcome is not None:
                context["delivery"] = outcome
            if outcome == "cut_off":
                stack = "".join(traceback.format_exception(error)) if error else ""
                obs.error_text(self.session.id, type(error).__name__ if error
                               else "CancelledError", CUT_OFF, stack, context=context)
            elif error is not None:
                obs.error(self.session.id, error, context=context)
            if outcome == "send_failed" and delivery is not None and delivery.error:
                obs.error(self.session.id, delivery.error, context={
                    **context, "undelivered": obs.text(self.reply.text if self.reply else None)})
