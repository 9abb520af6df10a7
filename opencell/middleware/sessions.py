"""The session layer, outermost in the chain: opens the conversation's session, records the turn.

One ``try/finally`` around the rest of the chain (STYLE §1). It sits *outside* the errors
middleware, so it sees the reply the user is really sent (the polite apology included) and
never has to predict it. Conversation state lives in ``opencell.sessions``; this layer only
binds a turn to it and hands the finished turn to the recorder.
"""

from __future__ import annotations

import time
import traceback

from opencell.context import TurnContext, current_turn
from opencell.delivery import Delivery
from opencell.guard import guard
from opencell.messages import Reply
from opencell.observability.observer import Observability
from opencell.sessions import Session, SessionTracker
from opencell.types import Handler

SESSION_ENDED = "Conversation ended. Send a new message to start a fresh one."

CUT_OFF = ("the turn was cut off before its reply was sent (the bot is shutting down); the "
           "user received nothing")


class SessionMiddleware:
    """Binds each turn to its conversation's session and records it.

    Before: the session is opened (or touched) and the turn made current, so model and tool
    wrappers record into it. After — success, apology or cancellation alike — the idle clock
    restarts and the turn is recorded as a ``message`` (and an ``error`` with its stack when
    it failed) whose output is what the user really received: under an adapter, once it has
    sent the reply or failed to (``opencell/delivery.py``); nothing when a shutdown cut the
    turn off.
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
        session.turns += 1
        ctx.number = session.turns
        if ctx.delivery is not None:
            ctx.delivery.session_id = session.id
        token = current_turn.set(ctx)
        wall, start = time.time(), time.perf_counter()
        reply: Reply | None = None
        cancelled: BaseException | None = None
        ending = self.end_command is not None and message.text.strip() == self.end_command
        try:
            reply = Reply(text=SESSION_ENDED) if ending else await call_next(ctx)
            return reply
        except BaseException as exc:  # a cancelled turn: the errors middleware let it pass
            cancelled = exc
            raise
        finally:
            current_turn.reset(token)
            failed = ctx.failed or cancelled is not None or bool(reply and reply.failed)
            duration_ms = (time.perf_counter() - start) * 1000
            delivery = ctx.delivery
            if delivery is None:  # no adapter: the caller receives the chain's answer
                self._finish(ctx, session, reply, cancelled, failed, wall, duration_ms, None,
                             ending)
            else:  # an adapter sends it: record what was really received, once known
                delivery.when_settled(lambda settled: self._finish(
                    ctx, session, reply, cancelled, failed, wall, duration_ms, settled, ending))

    def _finish(self, ctx: TurnContext, session: Session, reply: Reply | None,
                cancelled: BaseException | None, failed: bool, started: float,
                duration_ms: float, delivery: Delivery | None, ending: bool) -> None:
        """The turn is over (and its reply sent, or not): record it, then free the session
        (its last turn failed if the reply was lost) and close it on the end command."""
        lost = delivery is not None and delivery.outcome in ("send_failed", "cut_off")
        self._record(ctx, session, reply, cancelled, failed, started, duration_ms, delivery)
        self.tracker.release(session, failed=failed or lost)
        if ending:
            self.tracker.close(session, "end_command")

    def _record(self, ctx: TurnContext, session: Session, reply: Reply | None,
                cancelled: BaseException | None, failed: bool, started: float,
                duration_ms: float, delivery: Delivery | None) -> None:
        with guard("recording the turn"):
            obs, message = self.obs, ctx.message
            if delivery is None:
                output, outcome = (reply.text if reply is not None else None), None
            else:
                output, outcome = delivery.text, delivery.outcome
            lost = outcome in ("send_failed", "cut_off")
            error = ctx.error or cancelled
            turn = ctx.number
            # The turn's error goes first: an exporter that builds a turn's spans when its
            # ``message`` arrives then already has everything that belongs to it.
            if error is not None or lost:
                context: dict[str, object] = {"bot": ctx.bot.name,
                                              "conversation": str(message.key),
                                              "input": obs.text(message.text)}
                if outcome is not None:
                    context["delivery"] = outcome
                if outcome == "cut_off":
                    stack = "".join(traceback.format_exception(error)) if error else ""
                    obs.error_text(session.id,
                                   type(error).__name__ if error else "CancelledError",
                                   CUT_OFF, stack, context=context, turn=turn)
                elif error is not None:
                    obs.error(session.id, error, context=context, turn=turn)
                if outcome == "send_failed" and delivery is not None and delivery.error:
                    obs.error(session.id, delivery.error, context={
                        **context, "undelivered": obs.text(reply.text if reply else None)},
                        turn=turn)
            obs.message(session, text=message.text, output=output, user_id=message.user_id,
                        started=started, duration_ms=duration_ms, success=not (failed or lost),
                        turn=turn, message_id=message.message_id)
