"""The Discord adapter: discord.py gateway messages in, threaded replies out.

One ``discord.Client`` per bot (``AutoShardedClient`` with ``shards: auto`` or a count), with
the guilds, guild messages, direct messages and Message Content intents. Which messages are
answered (``respond_to``, ``channels``, ``ignore_bots``) is decided in ``_discord_inbound``;
each answered message runs in its own task, so conversations proceed concurrently while the
runtime keeps one conversation's turns in order — and this adapter keeps its replies in order.

A reply goes to the channel or thread the message came from, the first piece as a Discord
reply to it, split under 2,000 characters without breaking code blocks. Model output never
pings anyone (``@everyone``, roles and users are not notified; only the replied-to author
is). Rate limits and reconnects are discord.py's own.

Environment: ``OPENCELL_DISCORD_API_BASE`` replaces Discord's REST base URL
(``https://discord.com/api/v10``) for the whole process — for a REST proxy such as
nirn-proxy, a Discord-compatible server, or a test double. The gateway URL still comes from
Discord (or from ``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY``).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import discord

from opencell.adapters._chunks import split_message
from opencell.adapters._discord_errors import gateway_error, login_error
from opencell.adapters._discord_inbound import InboundPolicy, Skipped
from opencell.adapters._discord_outbound import MESSAGE_LIMIT, NO_PINGS, keep_typing, poster
from opencell.adapters._discord_shards import (
    Arrivals,
    HandingOverClient,
    claim_forever,
    give_up,
    saved_sessions,
    take_over,
)
from opencell.adapters._streaming import PiecewiseSurface
from opencell.adapters.base import Adapter
from opencell.config import BotConfig, DiscordConfig, DiscordShards
from opencell.errors import MissingSecretError, PlatformError
from opencell.messages import ConversationKey, IncomingMessage, Reply
from opencell.store.claims import ShardClaims, ShardSession
from opencell.types import Deliver

if TYPE_CHECKING:
    from opencell.store import Store

log = logging.getLogger("opencell.adapters.discord")

API_BASE_VARIABLE = "OPENCELL_DISCORD_API_BASE"
CLAIM_INTERVAL = 5.0
"""``shards: {ids: auto}``: how often a process under its ``max`` looks for free shards."""


class DiscordAdapter(Adapter):
    """Connects one bot to Discord.

    ``start`` logs in, connects the gateway in a background task and returns once Discord
    says READY (within ``platforms.discord.ready_timeout``). A rejected token, a missing
    Message Content intent or an unreachable Discord is a ``PlatformError`` with one line
    saying what to fix. ``guild_ready_timeout`` is how long discord.py waits for more guilds
    after READY (its default, 2 s; tests set it low).
    """

    platform = "discord"
    shared = True

    def __init__(self, bot: BotConfig, *, guild_ready_timeout: float = 2.0) -> None:
        super().__init__(bot)
        settings = bot.platforms.discord
        if settings is None:
            raise bot.locate(("platforms",), "has no discord: section for the Discord adapter")
        # discord.py adds the "Bot " prefix itself; a pasted "Bot xyz" would be rejected.
        token = settings.token.strip().removeprefix("Bot ").strip()
        if not token:
            raise MissingSecretError("DISCORD_TOKEN", bot=bot.name,
                                     purpose="platforms.discord.token")
        self.settings: DiscordConfig = settings
        self._token = token
        self._guild_ready_timeout = guild_ready_timeout
        self._policy = InboundPolicy(bot.name, settings)
        self._client: discord.Client | None = None
        self._deliver: Deliver | None = None
        self._connection: asyncio.Task[None] | None = None
        self._turns: set[asyncio.Task[None]] = set()
        self._typing: dict[str, asyncio.Task[None]] = {}
        self._stopping = False
        self._claims: ShardClaims | None = None
        self._claiming: asyncio.Task[None] | None = None
        self._handing_over: asyncio.Task[None] | None = None
        shards = settings.shards
        self._arrivals = Arrivals(shards.count if isinstance(shards, DiscordShards) else None)
        self._ready_shards: dict[int, asyncio.Event] = {}

    def use_store(self, store: Store | None) -> None:
        shards = self.settings.shards
        if isinstance(shards, DiscordShards) and shards.ids == "auto" and store is not None:
            self._claims = ShardClaims(store, self.bot.name, shards.count)

    @property
    def client(self) -> discord.Client | None:
        """The discord.py client once ``start`` has run (for advanced use and tests)."""
        return self._client

    # ------------------------------------------------------------------ lifecycle

    async def start(self, deliver: Deliver) -> None:
        """Log in, connect, and return once READY; ``PlatformError`` if that fails."""
        self._deliver = deliver
        api_base = os.environ.get(API_BASE_VARIABLE, "").strip()
        if api_base:
            discord.http.Route.BASE = api_base.rstrip("/")
        ids: list[int] | None = None
        saved: list[ShardSession] = []
        if self._claims is not None:
            ids = await asyncio.to_thread(self._claims.claim, self._shard_max())
            self._claiming = asyncio.create_task(claim_forever(self, CLAIM_INTERVAL),
                                                 name=f"discord-shards-{self.bot.name}")
            if not ids:
                log.info("discord standing by bot=%s reason=every_shard_is_claimed",
                         self.bot.name)
                return
            saved = await saved_sessions(self, ids)
        await self._connect(ids)
        await take_over(self, saved)

    def _shard_ready(self, shard: int) -> asyncio.Event:
        """Set once ``shard``'s guilds have arrived (discord.py's ``shard_ready``)."""
        return self._ready_shards.setdefault(shard, asyncio.Event())

    def _release(self, shard: int) -> None:
        """Answer the messages held for ``shard``, in order, each once."""
        for message in self._arrivals.release(shard):
            self._take(message)

    def _shard_max(self) -> int | None:
        shards = self.settings.shards
        return shards.max if isinstance(shards, DiscordShards) else None

    async def _connect(self, ids: list[int] | None) -> None:
        client = self._client = self._make_client(ids)
        try:
            await client.login(self._token)
        except BaseException as exc:
            await client.close()
            error = login_error(exc, self.bot.name)
            if error is exc:
                raise
            raise error from exc
        self._connection = asyncio.create_task(client.connect(reconnect=True),
                                               name=f"discord-gateway-{self.bot.name}")
        ready = asyncio.create_task(client.wait_until_ready())
        try:
            done, _ = await asyncio.wait({self._connection, ready},
                                         timeout=self.settings.ready_timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            await _cancel(ready)
        if ready not in done:
            failure = gateway_error(self.bot.name, self.settings.ready_timeout,
                                    self._connection if self._connection in done else None)
            await self._shut_client()
            raise failure
        self._connection.add_done_callback(self._connection_ended)
        me = client.user
        log.info("discord ready bot=%s user=%s user_id=%s guilds=%d shards=%s",
                 self.bot.name, me, me.id if me else "", len(client.guilds),
                 client.shard_count or 1)

    def _make_client(self, ids: list[int] | None = None) -> discord.Client:
        # Bots here never join voice: discord.py's once-per-process "PyNaCl/davey is not
        # installed, voice will NOT be supported" warnings would only be noise on stderr.
        discord.VoiceClient.warn_nacl = False
        discord.VoiceClient.warn_dave = False
        intents = discord.Intents.none()
        intents.guilds = True
        intents.guild_messages = True
        intents.dm_messages = True
        intents.message_content = True
        intents.guild_reactions = True  # 👍/👎 on the bot's replies are feedback
        intents.dm_reactions = True
        options: dict[str, Any] = {
            "intents": intents, "allowed_mentions": NO_PINGS, "max_messages": None,
            "chunk_guilds_at_startup": False,
            "guild_ready_timeout": self._guild_ready_timeout,
        }
        shards = self.settings.shards
        client: discord.Client
        if shards is None:
            client = discord.Client(**options)
        elif isinstance(shards, DiscordShards):  # this process's share of the shards
            mine: list[int] = sorted(ids or []) if shards.ids == "auto" else sorted(shards.ids)
            client = HandingOverClient(shard_count=shards.count, shard_ids=mine, **options)
        else:
            count = None if shards == "auto" else shards
            client = discord.AutoShardedClient(shard_count=count, **options)

        async def on_message(message: discord.Message) -> None:
            self._on_message(message)

        async def on_raw_reaction_add(payload: discord.RawReactionActionEvent) -> None:
            await self._on_reaction(payload, added=True)

        async def on_raw_reaction_remove(payload: discord.RawReactionActionEvent) -> None:
            await self._on_reaction(payload, added=False)

        async def on_shard_ready(shard_id: int) -> None:
            self._shard_ready(shard_id).set()

        client.event(on_message)
        client.event(on_raw_reaction_add)
        client.event(on_raw_reaction_remove)
        client.event(on_shard_ready)
        return client

    def stop_accepting(self) -> None:
        """A graceful stop begins. With shards claimed through the store (``ids: auto``)
        they are handed over at once (``_discord_shards.give_up``): the next holder replays
        what Discord sends from here on, and the messages read so far are answered here."""
        super().stop_accepting()
        if self._claims is not None and self._client is not None:
            self._handing_over = asyncio.create_task(give_up(self),
                                                     name=f"discord-hand-over-{self.bot.name}")

    async def drain(self, timeout: float) -> bool:
        """Wait for the hand-over, then for every turn taken (up to ``timeout``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if self._handing_over is not None:
            await asyncio.wait({self._handing_over}, timeout=timeout)
        await asyncio.sleep(0)  # handlers discord.py scheduled for what it read last
        turns = set(self._turns)
        if turns:
            _, pending = await asyncio.wait(turns, timeout=max(0.0, deadline - loop.time()))
            if pending:
                return False
        return await super().drain(max(0.0, deadline - loop.time()))

    async def stop(self) -> None:
        """Close the connection; turns still running after the App's drain are cancelled."""
        self._stopping = True
        if self._claiming is not None:
            self._claiming.cancel()
            await asyncio.gather(self._claiming, return_exceptions=True)
        if self._handing_over is not None:
            await asyncio.gather(self._handing_over, return_exceptions=True)
        await self._shut_client()
        if self._claims is not None:
            await asyncio.to_thread(self._claims.close)  # after the shards disconnected
        turns = list(self._turns)
        for task in turns:
            task.cancel()
        await asyncio.gather(*turns, return_exceptions=True)
        self.finished.set()

    async def _shut_client(self) -> None:
        if self._client is not None and not self._client.is_closed():
            await self._client.close()
        if self._connection is not None and not self._connection.done():
            try:
                await asyncio.wait_for(self._connection, 5.0)
            except (Exception, asyncio.CancelledError) as exc:  # noqa: BLE001 - closing
                log.debug("discord gateway task ended bot=%s error=%r", self.bot.name, exc)

    def _connection_ended(self, task: asyncio.Task[None]) -> None:
        error = None if task.cancelled() else task.exception()  # retrieved, even when stopping
        if self._stopping:
            return
        log.error("discord connection ended for good bot=%s error=%s", self.bot.name,
                  gateway_error(self.bot.name, self.settings.ready_timeout, task)
                  if error else "closed")
        self.finished.set()

    # ------------------------------------------------------------------ incoming

    async def _on_reaction(self, payload: discord.RawReactionActionEvent, *,
                           added: bool) -> None:
        client = self._client
        me = client.user if client is not None else None
        if me is None or payload.user_id == me.id:
            return
        emoji = payload.emoji
        reaction = emoji.name if emoji.is_unicode_emoji() else (emoji.name or str(emoji))
        await self.reacted(channel=str(payload.channel_id), message_id=str(payload.message_id),
                           user_id=str(payload.user_id), reaction=reaction or "", added=added)

    def _on_message(self, message: discord.Message) -> None:
        """Called in gateway order; everything up to the task start is synchronous, so the
        runtime sees one conversation's messages in the order Discord sent them (a shard
        being taken over holds its messages until its old session is replayed)."""
        if self._stopping or (not self.accepting and self._handing_over is None):
            return  # without a hand-over, nobody else would answer it either
        if self._arrivals.admit(message):
            self._take(message)

    def _take(self, message: discord.Message) -> None:
        client, deliver = self._client, self._deliver
        if client is None or client.user is None or deliver is None:
            return
        try:
            incoming = self._policy.translate(message, client.user)
        except Exception as exc:  # noqa: BLE001 - one odd payload must not stop the bot
            log.warning("discord message skipped bot=%s message_id=%s error=%s: %s",
                        self.bot.name, message.id, type(exc).__name__, exc)
            return
        if isinstance(incoming, Skipped):
            log.debug("discord message skipped bot=%s message_id=%s reason=%s",
                      self.bot.name, message.id, incoming.reason)
            if incoming.follow_up is not None and self.feedback is not None:
                self._start(self._follow_up(incoming.follow_up, deliver), message.id)
            return
        self._start(self._turn(incoming, deliver), message.id)

    def _start(self, work: Any, message_id: int) -> None:
        task = asyncio.create_task(work, name=f"discord-turn-{message_id}")
        self._turns.add(task)
        task.add_done_callback(self._turns.discard)

    async def _follow_up(self, message: IncomingMessage, deliver: Deliver) -> None:
        """A message in a thread that does not mention the bot: answered if the bot
        answered this person in this thread before (``follow_threads``)."""
        book, key = self.feedback, message.key
        if book is None or not await book.took_part(
                bot=self.bot.name, platform=self.platform, channel=self.reply_channel(key),
                thread=key.thread, user_id=key.user):
            return
        await self._turn(message, deliver)

    def reply_channel(self, key: ConversationKey) -> str:
        return key.thread or key.channel  # a thread is a channel of its own on Discord

    async def _turn(self, message: IncomingMessage, deliver: Deliver) -> None:
        """One message: typing while the bot thinks, then the reply (the runtime sends it
        after the reply to the conversation's previous message)."""
        key = message.key
        if self._client is None:
            return
        channel = self._client.get_partial_messageable(
            int(key.thread or key.channel), guild_id=int(key.workspace) if key.workspace else None)
        typing = asyncio.create_task(keep_typing(channel, self.bot.name),
                                     name="discord-typing")
        self._typing[message.message_id] = typing
        try:
            await self.handle(message, deliver)
        except Exception as exc:  # noqa: BLE001 - log, keep serving other conversations
            log.warning("discord turn failed bot=%s conversation=%s error=%s: %s",
                        self.bot.name, key, type(exc).__name__, exc)
        finally:
            self._typing.pop(message.message_id, None)
            await _cancel(typing)

    # ------------------------------------------------------------------ outgoing

    async def send(self, reply: Reply) -> list[str]:
        """Post ``reply`` where its conversation is, in pieces of at most 2,000 characters;
        the first piece replies to ``reply.in_reply_to`` (if that message is gone, it is
        posted plainly). Returns the posted messages' ids."""
        if reply.key is None:
            raise PlatformError(f"cannot send a Discord reply for bot '{self.bot.name}' "
                                "without a Discord conversation (key=None)")
        post = self._poster(reply.key, reply.in_reply_to)
        return [str((await post(index, piece)).id)
                for index, piece in enumerate(split_message(reply.text, MESSAGE_LIMIT))]

    def _poster(self, key: ConversationKey, in_reply_to: str
                ) -> Callable[[int, str], Awaitable[discord.Message]]:
        if self._client is None or key.platform != self.platform:
            raise PlatformError(f"cannot send a Discord reply for bot '{self.bot.name}' "
                                f"without a Discord conversation (key={key})")
        return poster(self._client, key, in_reply_to)

    def stream_surface(self, message: IncomingMessage) -> PiecewiseSurface[discord.Message]:
        """A streamed answer: posted, edited in place (discord.py waits out 429s, honouring
        ``Retry-After``), continued in a new message past 2,000 characters; the typing
        indicator stops when the first piece is up."""
        typing = self._typing.get(message.message_id)

        async def edit(posted: discord.Message, piece: str) -> None:
            await posted.edit(content=piece)

        return PiecewiseSurface(
            split=lambda text: split_message(text, MESSAGE_LIMIT),
            post=self._poster(message.key, message.message_id), edit=edit,
            ident=lambda posted: str(posted.id),
            on_first=typing.cancel if typing is not None else None)


async def _cancel(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait until it has stopped; our own cancellation still propagates."""
    if not task.done():
        task.cancel()
        await asyncio.wait({task})
