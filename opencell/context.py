"""The typed per-turn context that travels down the middleware chain."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opencell.history import ConversationHistory
from opencell.messages import IncomingMessage

if TYPE_CHECKING:
    from opencell.config import BotConfig
    from opencell.sessions import Session


@dataclass(kw_only=True, slots=True)
class TurnContext:
    """One message's trip through the chain to the bot and back."""

    message: IncomingMessage
    """What the user sent, already neutral (no platform payloads)."""
    bot: BotConfig
    """The configuration of the bot handling it."""
    session: Session | None = None
    """The conversation's session, set by the observability middleware."""
    history: ConversationHistory = field(default_factory=lambda: ConversationHistory(0))
    """The session's bounded history; the runtime appends the turn when it succeeds."""
    started: float = field(default_factory=time.perf_counter)
    """``perf_counter()`` when the turn entered the chain."""
    error: BaseException | None = None
    """The exception that failed the turn, set by the errors middleware."""
    extras: dict[str, Any] = field(default_factory=dict)
    """Free-form state for user middleware; OpenCell itself never reads it."""

    @property
    def failed(self) -> bool:
        return self.error is not None
