"""The neutral message types every adapter produces and consumes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class ConversationKey:
    """Identifies one conversation: a DM, a channel, or a thread, with one user.

    A DM is its own channel; a Slack or Discord thread is its own conversation.
    """

    bot: str
    platform: str
    workspace: str = ""
    """Slack team id or Discord guild id; empty where the platform has none (console, DMs)."""
    channel: str = ""
    thread: str = ""
    user: str = ""

    def __str__(self) -> str:
        parts = [self.bot, self.platform, self.workspace, self.channel, self.thread, self.user]
        return "/".join(parts)


@dataclass(frozen=True, slots=True)
class IncomingMessage:
    """One message from a user, translated out of its platform's payload."""

    key: ConversationKey
    text: str
    user_id: str
    user_name: str = ""
    message_id: str = ""
    from_bot: bool = False
    """Written by some other bot."""
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    meta: Mapping[str, Any] = field(default_factory=dict)
    """Platform details an adapter wants back when it sends the reply (never raw payloads)."""


@dataclass(frozen=True, slots=True)
class Reply:
    """What the bot answers to one message. Adapters chunk and thread it."""

    text: str
    key: ConversationKey | None = None
    """The conversation it answers; a middleware may leave it empty (``Reply("…")``): the
    runtime fills it in, and ``in_reply_to``, in one place before the reply leaves the core."""
    in_reply_to: str = ""
    """The platform message id this answers, for threading."""
    failed: bool = False
    """The turn failed (``TurnContext.failed``); ``text`` is usually the polite apology."""

    def answering(self, message: IncomingMessage, *, failed: bool = False) -> Reply:
        """This reply as the answer to ``message``: its conversation and message id filled in
        where a middleware left them out, and ``failed`` added (the one way a reply is
        completed, by the runtime — or by an adapter whose ``deliver`` did not)."""
        if self.key is not None and self.in_reply_to and (self.failed or not failed):
            return self
        return Reply(text=self.text, key=self.key or message.key,
                     in_reply_to=self.in_reply_to or message.message_id,
                     failed=self.failed or failed)
