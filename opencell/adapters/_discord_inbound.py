"""Decides which Discord messages a bot answers and turns them into neutral IncomingMessages."""

from __future__ import annotations

import re
from dataclasses import dataclass

import discord

from opencell.config import DiscordConfig
from opencell.messages import ConversationKey, IncomingMessage

_CONVERSATIONAL = (discord.MessageType.default, discord.MessageType.reply)


@dataclass(frozen=True, slots=True)
class Skipped:
    """A message the bot does not answer, and why (for debug logs).

    ``follow_up``: the message as it would be answered, when it was skipped only for not
    mentioning the bot in a thread (``follow_threads``: answered if the bot answered this
    person in that thread before)."""

    reason: str
    follow_up: IncomingMessage | None = None


class InboundPolicy:
    """``respond_to``, the channel allowlist and ``ignore_bots`` of one bot, applied to
    discord.py messages; what passes becomes an ``IncomingMessage`` with its
    ``ConversationKey`` (a thread is its own conversation, keyed under its parent channel)."""

    def __init__(self, bot: str, settings: DiscordConfig) -> None:
        self.bot = bot
        self.respond_to = settings.respond_to
        self.ignore_bots = settings.ignore_bots
        self.follow_threads = settings.follow_threads
        self.channels = {entry.strip().lstrip("#").casefold() for entry in settings.channels
                         if entry.strip()}

    def translate(self, message: discord.Message, me: discord.ClientUser
                  ) -> IncomingMessage | Skipped:
        """The message to answer, or why it is skipped. Never raises on odd payloads."""
        author = message.author
        if author.id == me.id:
            return Skipped("own message")
        if message.type not in _CONVERSATIONAL:
            return Skipped(f"system message type={message.type.name}")
        if author.bot and self.ignore_bots:
            return Skipped("from another bot")
        guild = message.guild
        dm = guild is None
        if self.respond_to == "dm" and not dm:
            return Skipped("respond_to=dm and this is not a DM")
        channel_id, thread_id, names = _where(message.channel)
        if not dm and self.channels and not self._allowed(channel_id, thread_id, names):
            return Skipped("channel not in the allowlist")
        mentioned = _mentions_me(message, me)
        text = strip_mentions(message.content, me.id, guild)
        key = ConversationKey(bot=self.bot, platform="discord",
                              workspace=str(guild.id) if guild else "",
                              channel=str(channel_id), thread=str(thread_id or ""),
                              user=str(author.id))
        incoming = IncomingMessage(
            key=key, text=text, user_id=str(author.id), user_name=author.display_name,
            message_id=str(message.id), from_bot=author.bot,
            meta={"channel_name": names[-1] if names else "", "dm": dm,
                  "mentioned": mentioned, "jump_url": message.jump_url})
        if self.respond_to == "mentions" and not dm and not mentioned:
            follow = self.follow_threads and thread_id is not None and bool(text)
            return Skipped("respond_to=mentions and the bot is not mentioned",
                           follow_up=incoming if follow else None)
        if not text:
            return Skipped("no text after removing the mention")
        return incoming

    def _allowed(self, channel_id: int, thread_id: int | None, names: list[str]) -> bool:
        ids = {str(channel_id), str(thread_id)} if thread_id else {str(channel_id)}
        return bool(ids & self.channels) or any(n.casefold() in self.channels for n in names)


def _where(channel: object) -> tuple[int, int | None, list[str]]:
    """(channel id, thread id or None, names: parent first) of where a message was posted."""
    if isinstance(channel, discord.Thread):
        parent = channel.parent
        names = [parent.name, channel.name] if parent is not None else [channel.name]
        return channel.parent_id, channel.id, names
    name = getattr(channel, "name", None)
    return int(getattr(channel, "id", 0)), None, [name] if isinstance(name, str) else []


def _mentions_me(message: discord.Message, me: discord.ClientUser) -> bool:
    """Mentioned by name, by the bot's managed role, or replied to."""
    if any(user.id == me.id for user in message.mentions):
        return True
    reference = message.reference
    resolved = reference.resolved if reference is not None else None
    if isinstance(resolved, discord.Message) and resolved.author.id == me.id:
        return True
    role = message.guild.self_role if message.guild is not None else None
    return role is not None and role in message.role_mentions


def strip_mentions(content: str, bot_id: int, guild: discord.Guild | None = None) -> str:
    """``content`` without ``<@bot>``/``<@!bot>`` (nor the bot's managed role mention)."""
    pattern = rf"<@!?{bot_id}>"
    role = guild.self_role if guild is not None else None
    if role is not None:
        pattern += rf"|<@&{role.id}>"
    # Only the spaces around a mention go: the rest (code indentation) is the user's.
    return re.sub(rf"[ \t]*(?:{pattern})[ \t]*", " ", content).strip()
