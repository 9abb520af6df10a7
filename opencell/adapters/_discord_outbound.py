"""What the Discord adapter posts: replies (split, the first as a Discord reply) and typing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import discord

from opencell.messages import ConversationKey

log = logging.getLogger("opencell.adapters.discord")

MESSAGE_LIMIT = 2000
"""Discord rejects longer message content (400, code 50035)."""
TYPING_EVERY = 8.0
"""Discord shows "is typing…" for about 10 s after each trigger."""
TYPING_AFTER = 0.25
"""The indicator starts once the bot has been thinking this long: an answer that is there
sooner needs none (and costs no typing request against Discord's rate limits)."""

NO_PINGS = discord.AllowedMentions(everyone=False, users=False, roles=False,
                                   replied_user=True)
"""The model's text may say @everyone or <@id>; nobody is notified except the asker."""


def poster(client: discord.Client, key: ConversationKey, in_reply_to: str
           ) -> Callable[[int, str], Awaitable[discord.Message]]:
    """Posts piece ``index`` of a reply in ``key``'s channel or thread (the first as a
    Discord reply to ``in_reply_to``; if that message is gone, it is posted plainly)."""
    target = int(key.thread or key.channel)
    guild_id = int(key.workspace) if key.workspace else None
    channel = client.get_partial_messageable(target, guild_id=guild_id)
    reference = None
    if in_reply_to:
        reference = discord.MessageReference(
            message_id=int(in_reply_to), channel_id=target, guild_id=guild_id,
            fail_if_not_exists=False)

    async def post(index: int, piece: str) -> discord.Message:
        if index == 0 and reference is not None:
            return await channel.send(piece, reference=reference)
        return await channel.send(piece)

    return post


async def keep_typing(channel: discord.PartialMessageable, bot: str) -> None:
    """Show "is typing…" in ``channel`` until cancelled (from ``TYPING_AFTER`` on)."""
    try:
        await asyncio.sleep(TYPING_AFTER)
        while True:
            await channel.typing()
            await asyncio.sleep(TYPING_EVERY)
    except Exception as exc:  # noqa: BLE001 - the indicator is a nicety, never a failure
        log.debug("discord typing indicator failed bot=%s channel=%s error=%s", bot,
                  channel.id, exc)
