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
from typing import TYPE_CHECKING, Any

import aiohttp
import discord

from opencell.adapters._chunks import split_message
from opencell.adapters._discord_inbound import InboundPolicy, Skipped
from opencell.adapters.base import Adapter
from opencell.config import BotConfig, DiscordConfig, DiscordShards
from opencell.errors import MissingSecretError, PlatformError
from opencell.messages import IncomingMessage, Reply
from opencell.store.claims import ShardClaims
from opencell.types import Deliver

if TYPE_CHECKING:
    from opencell.store import Store

log = logging.getLogger("opencell.adapters.discord")

API_BASE_VARIABLE = "OPENCELL_DISCORD_API_BASE"
CLAIM_INTERVAL = 5.0
"""``shards: {ids: auto}``: how often a process under its ``max`` looks for free shards."""
MESSAGE_LIMIT = 2000
"""Discord rejects longer message content (400, code 50035)."""
TYPING_EVERY = 8.0
"""Discord shows "is typing…" for about 10 s after each trigger."""
NO_PINGS = discord.AllowedMentions(everyone=False, users=False, roles=False,
                                   replied_user=True)
"""The model's text may say @everyone or <@id>; nobody is notified except the asker."""


class DiscordAdapter(Adapter):
    """Connects one bot to Discord.

    ``start`` logs in, connects the gateway in a background task and returns once Discord
    says READY (within ``platforms.discord.ready_timeout``). A rejected token, a missing
    Message Content intent or an unreachable Discord is a ``PlatformError`` with one line
    saying what to fix. ``guild_ready_timeout`` is how long discord.py waits for more guilds
    after READY (its default, 2 s; tests set it low).
    """

    platform = "discord"

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
        self._stopping = False
        self._claims: ShardClaims | None = None
        self._claiming: asyncio.Task[None] | None = None

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
        if self._claims is not None:
            ids = await asyncio.to_thread(self._claims.claim, self._shard_max())
            self._claiming = asyncio.create_task(self._claim_forever(),
                                                 name=f"discord-shards-{self.bot.name}")
            if not ids:
                log.info("discord standing by bot=%s reason=every_shard_is_claimed",
                         self.bot.name)
                return
        await self._connect(ids)

    def _shard_max(self) -> int | None:
        shards = self.settings.shards
        return shards.max if isinstance(shards, DiscordShards) else None

    async def _claim_forever(self) -> None:
        """Take over shards other processes gave up (stopped or died), while under ``max``."""
        assert self._claims is not None
        while not self._stopping:
            await asyncio.sleep(CLAIM_INTERVAL)
            try:
                new = await asyncio.to_thread(self._claims.claim, self._shard_max())
                if not new or self._stopping:
                    continue
                log.info("discord shards taken over bot=%s shards=%s", self.bot.name, new)
                client = self._client
                if not isinstance(client, discord.AutoShardedClient):
                    await self._connect(sorted(self._claims.held))
                    continue
                for shard in new:  # discord.py reads its shard list when a shard resumes
                    assert client.shard_ids is not None
                    client.shard_ids.append(shard)
                    await client.launch_shard(discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY,
                                              shard)
            except Exception:  # noqa: BLE001 - try again next round
                log.exception("discord shard claim failed bot=%s", self.bot.name)

    async def _connect(self, ids: list[int] | None) -> None:
        client = self._client = self._make_client(ids)
        try:
            await client.login(self._token)
        except BaseException as exc:
            await client.close()
            error = self._login_error(exc)
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
            failure = self._gateway_error(self._connection if self._connection in done
                                          else None)
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
            client = discord.AutoShardedClient(shard_count=shards.count, shard_ids=mine,
                                               **options)
        else:
            count = None if shards == "auto" else shards
            client = discord.AutoShardedClient(shard_count=count, **options)

        async def on_message(message: discord.Message) -> None:
            self._on_message(message)

        client.event(on_message)
        return client

    async def stop(self) -> None:
        """Close the connection; turns still running after the App's drain are cancelled."""
        self._stopping = True
        if self._claiming is not None:
            self._claiming.cancel()
            await asyncio.gather(self._claiming, return_exceptions=True)
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
                  self._gateway_error(task) if error else "closed")
        self.finished.set()

    # ------------------------------------------------------------------ errors

    def _login_error(self, exc: BaseException) -> BaseException:
        name = self.bot.name
        if isinstance(exc, discord.LoginFailure):
            return PlatformError(
                f"Discord rejected the bot token for bot '{name}' (401): check DISCORD_TOKEN "
                "(or platforms.discord.token); Developer Portal → your app → Bot → Reset Token")
        if isinstance(exc, discord.HTTPException):
            return PlatformError(f"Discord answered {exc.status} while logging in bot "
                                 f"'{name}': {exc.text or exc}")
        if isinstance(exc, aiohttp.ClientError | OSError):
            return PlatformError(f"could not reach Discord at {discord.http.Route.BASE} for "
                                 f"bot '{name}': {exc or type(exc).__name__}")
        return exc

    def _gateway_error(self, task: asyncio.Task[None] | None) -> PlatformError:
        name = self.bot.name
        if task is None:
            return PlatformError(f"bot '{name}' did not become ready on Discord within "
                                 f"{self.settings.ready_timeout:g}s; check the network, "
                                 "or raise platforms.discord.ready_timeout")
        exc = None if task.cancelled() else task.exception()
        if isinstance(exc, discord.PrivilegedIntentsRequired):
            return PlatformError(
                f"Discord refused bot '{name}' the Message Content intent: enable it in the "
                "Developer Portal → your app → Bot → Privileged Gateway Intents")
        if isinstance(exc, discord.ConnectionClosed) and exc.code == 4004:
            return PlatformError(f"Discord rejected the bot token for bot '{name}' at the "
                                 "gateway (4004): check DISCORD_TOKEN")
        if isinstance(exc, discord.ConnectionClosed):
            return PlatformError(f"Discord closed the gateway for bot '{name}' "
                                 f"(code {exc.code}): {exc.reason or 'no reason given'}")
        what = f"{type(exc).__name__}: {exc}" if exc else "it closed"
        return PlatformError(f"the Discord gateway connection for bot '{name}' failed: {what}")

    # ------------------------------------------------------------------ incoming

    def _on_message(self, message: discord.Message) -> None:
        """Called in gateway order; everything up to the task start is synchronous, so the
        runtime sees one conversation's messages in the order Discord sent them."""
        client, deliver = self._client, self._deliver
        if self._stopping or client is None or client.user is None or deliver is None:
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
            return
        task = asyncio.create_task(self._turn(incoming, deliver),
                                   name=f"discord-turn-{message.id}")
        self._turns.add(task)
        task.add_done_callback(self._turns.discard)

    async def _turn(self, message: IncomingMessage, deliver: Deliver) -> None:
        """One message: typing while the bot thinks, then the reply (the runtime sends it
        after the reply to the conversation's previous message)."""
        key = message.key
        if self._client is None:
            return
        channel = self._client.get_partial_messageable(
            int(key.thread or key.channel), guild_id=int(key.workspace) if key.workspace else None)
        typing = asyncio.create_task(self._keep_typing(channel), name="discord-typing")
        try:
            await self.handle(message, deliver)
        except Exception as exc:  # noqa: BLE001 - log, keep serving other conversations
            log.warning("discord turn failed bot=%s conversation=%s error=%s: %s",
                        self.bot.name, key, type(exc).__name__, exc)
        finally:
            await _cancel(typing)

    async def _keep_typing(self, channel: discord.PartialMessageable) -> None:
        try:
            while True:
                await channel.typing()
                await asyncio.sleep(TYPING_EVERY)
        except Exception as exc:  # noqa: BLE001 - the indicator is a nicety, never a failure
            log.debug("discord typing indicator failed bot=%s channel=%s error=%s",
                      self.bot.name, channel.id, exc)

    # ------------------------------------------------------------------ outgoing

    async def send(self, reply: Reply) -> None:
        """Post ``reply`` where its conversation is, in pieces of at most 2,000 characters;
        the first piece replies to ``reply.in_reply_to`` (if that message is gone, it is
        posted plainly)."""
        key = reply.key
        if key is None or self._client is None or key.platform != self.platform:
            raise PlatformError(f"cannot send a Discord reply for bot '{self.bot.name}' "
                                f"without a Discord conversation (key={key})")
        target = int(key.thread or key.channel)
        guild_id = int(key.workspace) if key.workspace else None
        channel = self._client.get_partial_messageable(target, guild_id=guild_id)
        reference = None
        if reply.in_reply_to:
            reference = discord.MessageReference(
                message_id=int(reply.in_reply_to), channel_id=target, guild_id=guild_id,
                fail_if_not_exists=False)
        for index, piece in enumerate(split_message(reply.text, MESSAGE_LIMIT)):
            if index == 0 and reference is not None:
                await channel.send(piece, reference=reference)
            else:
                await channel.send(piece)


async def _cancel(task: asyncio.Task[None]) -> None:
    """Cancel ``task`` and wait until it has stopped; our own cancellation still propagates."""
    if not task.done():
        task.cancel()
        await asyncio.wait({task})
