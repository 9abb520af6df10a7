"""The typed per-turn context that travels down the middleware chain."""

from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opencell.history import ConversationHistory
from opencell.messages import IncomingMessage

if TYPE_CHECKING:
    from opencell.config import BotConfig
    from opencell.delivery import Delivery
    from opencell.sessions import Session


@dataclass(kw_only=True, slots=True)
class TurnContext:
    """One message's trip through the chain to the bot and back."""

    message: IncomingMessage
    """What the user sent, already neutral (no platform payloads)."""
    bot: BotConfig
    """The configuration of the bot handling it."""
    session: Session | None = None
    """The conversation's session, set by the session middleware."""
    history: ConversationHistory = field(default_factory=lambda: ConversationHistory(0))
    """The session's bounded history; the runtime appends the turn when it succeeds."""
    number: int = 0
    """The turn's number in its session (1, 2, …; set by the session middleware): every
    record of the turn carries it, so exporters can group a turn's spans into one trace."""
    started: float = field(default_factory=time.perf_counter)
    """``perf_counter()`` when the turn entered the chain."""
    error: BaseException | None = None
    """The exception that failed the turn, set by the errors middleware."""
    failed: bool = False
    """The turn failed: the one flag, set by the errors middleware (an exception) or by the
    tool recorder (a tool that broke). The session's status and ``Reply.failed`` follow it."""
    delivery: Delivery | None = None
    """How the reply reaches the user (set by the runtime under an adapter); the session
    layer records the turn once it is settled."""
    extras: dict[str, Any] = field(default_factory=dict)
    """Free-form state for user middleware; OpenCell itself never reads it."""


current_turn: ContextVar[TurnContext | None] = ContextVar("opencell_turn", default=None)
"""The turn being handled in this context (set by the session middleware): model and tool
wrappers record into its session and mark it failed."""
