"""Slack Events API payloads → IncomingMessage: which events to answer, the conversation key,
the text without the bot's mention; plus the TTL set that drops duplicate deliveries."""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from opencell.config import SlackConfig
from opencell.messages import ConversationKey, IncomingMessage
from opencell.types import Clock

ANSWERED_SUBTYPES = frozenset({None, "file_share", "thread_broadcast"})
"""Message subtypes that are a person writing; edits, joins, deletions and bots are not."""
_WITH_BOTS = ANSWERED_SUBTYPES | {"bot_message"}


@dataclass(frozen=True, slots=True)
class BotIdentity:
    """Who the bot is in its workspace, from ``auth.test``."""

    user_id: str
    bot_id: str
    team_id: str


class RecentKeys:
    """Remembers keys for ``ttl`` seconds, at most ``max_size`` of them (oldest go first).

    ``add`` is O(1) amortised: expired keys are dropped from the old end as new ones arrive.
    """

    def __init__(self, *, ttl: float, max_size: int, clock: Clock = time.monotonic) -> None:
        self.ttl = ttl
        self.max_size = max_size
        self._clock = clock
        self._seen: OrderedDict[Hashable, float] = OrderedDict()

    def add(self, key: Hashable) -> bool:
        """Remember ``key``; False if it was already seen within ``ttl``."""
        now = self._clock()
        while self._seen:
            oldest, expires = next(iter(self._seen.items()))
            if expires > now and len(self._seen) < self.max_size:
                break
            del self._seen[oldest]
        if key in self._seen:
            return False
        self._seen[key] = now + self.ttl
        return True

    def __len__(self) -> int:
        return len(self._seen)


def message_from_event(body: Mapping[str, Any], *, bot: str, settings: SlackConfig,
                       me: BotIdentity) -> IncomingMessage | None:
    """The message to answer in one ``event_callback`` body, or None to ignore it.

    Answered: ``app_mention`` (unless ``respond_to: dm``), direct messages, and channel
    messages that mention the bot (or all of them with ``respond_to: all``). Never answered:
    the bot's own messages, edits, joins and other non-message events, and other bots'
    messages unless ``ignore_bots: false``. A mention arrives twice (``message`` and
    ``app_mention``): the caller de-duplicates by (channel, ts).
    """
    event = body.get("event")
    if not isinstance(event, Mapping):
        return None
    kind, subtype, bot_id = event.get("type"), event.get("subtype"), event.get("bot_id")
    from_bot = bool(bot_id or event.get("bot_profile") or subtype == "bot_message")
    answered = ANSWERED_SUBTYPES if settings.ignore_bots else _WITH_BOTS
    if kind not in ("app_mention", "message") or subtype not in answered:
        return None
    # A legacy integration's message has no user, only its bot id.
    user, channel, ts = event.get("user") or bot_id, event.get("channel"), event.get("ts")
    if not (isinstance(user, str) and isinstance(channel, str) and isinstance(ts, str)):
        return None
    if user == me.user_id or (me.bot_id and bot_id == me.bot_id):
        return None  # our own message, whatever ignore_bots says
    if from_bot and settings.ignore_bots:
        return None
    raw_text = str(event.get("text") or "")
    is_dm = event.get("channel_type") == "im" or channel.startswith("D")
    if not is_dm:
        if settings.respond_to == "dm":
            return None
        if settings.channels and channel not in settings.channels:
            return None
        if (kind == "message" and settings.respond_to == "mentions"
                and not mentions(raw_text, me.user_id)):
            return None
    text = plain_text(raw_text, me.user_id)
    if not text:
        return None
    thread_ts = event.get("thread_ts")
    # A thread is its own conversation; the bot answers a top-level channel message in a new
    # thread under it, so that message's ts names the conversation. A DM is one conversation.
    thread = str(thread_ts) if thread_ts else ("" if is_dm else ts)
    team = str(body.get("team_id") or event.get("team") or me.team_id)
    key = ConversationKey(bot=bot, platform="slack", workspace=team, channel=channel,
                          thread=thread, user=user)
    profile = event.get("user_profile")
    name = ""
    if isinstance(profile, Mapping):
        name = str(profile.get("display_name") or profile.get("real_name") or "")
    return IncomingMessage(key=key, text=text, user_id=user, user_name=name, message_id=ts,
                           from_bot=from_bot,
                           meta={"channel": channel, "thread_ts": thread or None, "ts": ts,
                                 "event": kind, "dm": is_dm})


def thread_follow_up(body: Mapping[str, Any], *, bot: str, settings: SlackConfig,
                     me: BotIdentity) -> IncomingMessage | None:
    """A channel thread reply that does not mention the bot, as it would be answered — the
    candidate for ``follow_threads`` (the caller answers it only if the bot answered this
    person in that thread before); None for anything else."""
    event = body.get("event")
    if (not settings.follow_threads or settings.respond_to != "mentions"
            or not isinstance(event, Mapping) or event.get("type") != "message"):
        return None
    thread_ts, ts = event.get("thread_ts"), event.get("ts")
    if not thread_ts or thread_ts == ts or mentions(str(event.get("text") or ""), me.user_id):
        return None
    return message_from_event(body, bot=bot, me=me,
                              settings=settings.model_copy(update={"respond_to": "all"}))


def reaction_from_event(body: Mapping[str, Any]) -> tuple[str, str, str, str, bool] | None:
    """(channel, message ts, user, reaction name, added) of a ``reaction_added`` or
    ``reaction_removed`` event on a message; None for anything else."""
    event = body.get("event")
    if not isinstance(event, Mapping):
        return None
    kind = event.get("type")
    item = event.get("item")
    if kind not in ("reaction_added", "reaction_removed") or not isinstance(item, Mapping):
        return None
    channel, ts = item.get("channel"), item.get("ts")
    user, name = event.get("user"), event.get("reaction")
    if item.get("type") != "message" or not all(
            isinstance(v, str) for v in (channel, ts, user, name)):
        return None
    return str(channel), str(ts), str(user), str(name), kind == "reaction_added"


def mentions(text: str, user_id: str) -> bool:
    """Whether ``text`` (Slack markup) mentions ``user_id``."""
    return _mention(user_id).search(text) is not None


def plain_text(text: str, bot_user_id: str) -> str:
    """The user's words: the bot's own mention removed and Slack's escapes undone."""
    text = _mention(bot_user_id).sub("", text)
    text = re.sub(r"[ \t]{2,}", " ", text).strip()
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


@lru_cache(maxsize=64)
def _mention(user_id: str) -> re.Pattern[str]:
    return re.compile(rf"<@{re.escape(user_id)}(?:\|[^>]*)?>")
