"""Discord shards shared by several processes: claimed, taken over, and handed over.

``DiscordAdapter`` claims its shards through the store (``store/claims.py``: advisory locks,
so a dead process's shards are free at once); ``claim_forever`` claims more while the process
is under its ``max`` and launches each one on the running client.

A graceful stop hands its shards over without losing an event (``give_up``): it stops
reading each shard, closes the gateway connection with a code that leaves Discord's session
resumable (not 1000/1001), saves (shard, session id, last sequence read, resume URL) and
gives the claims up. The shard's next holder starts it on a new session (IDENTIFY: its
guilds then arrive, which a RESUME would not send, and discord.py needs them to tell a guild
message from a DM), holds the shard's messages, and RESUMEs the saved session only to receive
what Discord sent it since the stop (``replay``); Discord replays those events, then RESUMED,
and that session is ended. The held messages then go on in order, each once (``Arrivals``: a
message both sessions delivered is answered once). A refused resume (op 9: the session
expired) replays nothing; the shard runs on its new session all the same.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

import aiohttp
import discord
import yarl
from discord.gateway import DiscordWebSocket, ReconnectWebSocket

from opencell.store.claims import ShardSession

log = logging.getLogger("opencell.adapters.discord")

RESUMABLE_CLOSE = 4000
"""A close code that leaves the gateway session resumable (1000 and 1001 end it)."""
REPLAY_TIMEOUT = 30.0
"""How long a take-over waits for Discord to replay a saved session's events."""
SEEN = 4096
"""Message ids remembered to answer each message once across a hand-over."""


class HandingOverClient(discord.AutoShardedClient):
    """``AutoShardedClient`` whose shards can be given up with their sessions resumable."""

    async def hand_over(self) -> list[ShardSession]:
        """Stop reading every shard and close its connection resumably; the sessions, with
        the last sequence number read (every event up to it was dispatched, none after)."""
        # discord.py keeps its Shard objects under this name (2.x); there is no public way
        # to close a shard without ending its session (Shard.close sends 1000).
        shards: dict[int, Any] = getattr(self, "_AutoShardedClient__shards", {})
        saved = []
        for shard_id, shard in sorted(shards.items()):
            shard._cancel_task()  # reads nothing more; no await before the sequence is taken
            ws = shard.ws
            if ws.session_id and ws.sequence is not None:
                saved.append(ShardSession(shard_id, str(ws.session_id), int(ws.sequence),
                                          str(ws.gateway)))
            if ws.open:
                await ws.close(code=RESUMABLE_CLOSE)
        return saved


class Arrivals:
    """Which messages go on to be answered: each once, and a held shard's in order later."""

    def __init__(self, shard_count: int | None) -> None:
        self.count = shard_count or 1
        self._held: dict[int, list[discord.Message]] = {}
        self._seen: OrderedDict[int, None] = OrderedDict()

    def shard_of(self, message: discord.Message) -> int:
        guild = message.guild.id if message.guild is not None else getattr(
            message.channel, "guild_id", None)
        return (int(guild) >> 22) % self.count if guild else 0  # DMs arrive on shard 0

    def hold(self, shard: int) -> None:
        """Keep ``shard``'s messages back until ``release`` (a replay is coming)."""
        self._held.setdefault(shard, [])

    def admit(self, message: discord.Message) -> bool:
        """True for a message to answer now; False for one held or seen before."""
        held = self._held.get(self.shard_of(message)) if self._held else None
        if held is not None:
            held.append(message)
            return False
        return self._first(message.id)

    def release(self, shard: int) -> list[discord.Message]:
        """The messages held for ``shard`` to answer now: in the order they were written,
        each once."""
        held = sorted(self._held.pop(shard, []), key=lambda m: m.id)
        return [message for message in held if self._first(message.id)]

    def held(self) -> list[int]:
        return list(self._held)

    def _first(self, message_id: int) -> bool:
        if message_id in self._seen:
            return False
        self._seen[message_id] = None
        if len(self._seen) > SEEN:
            self._seen.popitem(last=False)
        return True


async def replay(client: discord.Client, saved: ShardSession,
                 timeout: float = REPLAY_TIMEOUT) -> bool:
    """RESUME the session a stopped process left for ``saved.shard``, only to receive what
    Discord sent it since ``saved.sequence`` (dispatched to the client's handlers like any
    event), then end that session. True when Discord replayed it; False when it refused (op
    9: the session expired) or the connection failed."""
    ws: DiscordWebSocket | None = None
    try:
        async with asyncio.timeout(timeout):
            ws = await DiscordWebSocket.from_client(
                client, gateway=yarl.URL(saved.resume_url), shard_id=saved.shard,
                session=saved.session_id, sequence=saved.sequence, resume=True)
            resumed = ws.wait_for("RESUMED", lambda data: True)
            while not resumed.done():  # Discord sends what the session missed, then RESUMED
                await ws.poll_event()
        return True
    except ReconnectWebSocket:
        log.warning("discord shard session not resumable shard=%d: events sent to it during "
                    "the hand-over are lost", saved.shard)
    except (OSError, TimeoutError, aiohttp.ClientError, discord.DiscordException) as exc:
        log.warning("discord shard session not replayed shard=%d error=%s: %s", saved.shard,
                    type(exc).__name__, exc)
    finally:
        if ws is not None and ws.open:
            await ws.close(code=1000)  # ends it: the shard runs on its new session
    return False


async def saved_sessions(adapter: Any, shards: list[int]) -> list[ShardSession]:
    """The sessions a stopped process left for ``shards`` (just claimed by ``adapter``);
    their messages are held until those are replayed (``take_over``)."""
    claims = adapter._claims
    found = [await asyncio.to_thread(claims.take_session, shard) for shard in shards]
    saved = [one for one in found if one is not None]
    for one in saved:
        adapter._arrivals.hold(one.shard)
        adapter._ready_shards.pop(one.shard, None)
    return saved


async def take_over(adapter: Any, saved: list[ShardSession]) -> None:
    """For each shard just started with a saved session (its messages held): once its
    guilds are in, replay the session, then answer the held messages."""
    for one in saved:
        ready = adapter._shard_ready(one.shard)
        try:
            await asyncio.wait_for(ready.wait(), adapter.settings.ready_timeout)
        except TimeoutError:
            pass  # replay all the same: holding the shard's messages longer loses more
        if await replay(adapter._client, one):
            log.info("discord shard session replayed bot=%s shard=%d", adapter.bot.name,
                     one.shard)
        adapter._release(one.shard)


async def give_up(adapter: Any) -> None:
    """A graceful stop (``ids: auto``): stop claiming, leave each shard's gateway session
    resumable, save the sessions, give the claims up. ``adapter`` is the ``DiscordAdapter``."""
    if adapter._claiming is not None:
        adapter._claiming.cancel()
        await asyncio.gather(adapter._claiming, return_exceptions=True)
    client, claims = adapter._client, adapter._claims
    saved: list[ShardSession] = []
    try:
        if isinstance(client, HandingOverClient):
            saved = await client.hand_over()
        await asyncio.to_thread(claims.save_sessions, saved)
    except Exception as exc:  # noqa: BLE001 - the claims are given up all the same
        log.warning("discord shard sessions not saved bot=%s error=%s: %s", adapter.bot.name,
                    type(exc).__name__, exc)
    finally:
        await asyncio.to_thread(claims.close)
    for shard in adapter._arrivals.held():
        adapter._release(shard)  # a take-over cut short: what it held is answered here
    log.info("discord shards handed over bot=%s shards=%s", adapter.bot.name,
             [one.shard for one in saved])


async def claim_forever(adapter: Any, interval: float) -> None:
    """Take over shards other processes gave up (stopped or died), while under ``max``,
    trying every ``interval`` seconds. ``adapter`` is the ``DiscordAdapter`` (not imported
    here: that would be an import cycle)."""
    assert adapter._claims is not None
    while not adapter._stopping and adapter.accepting:
        await asyncio.sleep(interval)
        try:
            new = await asyncio.to_thread(adapter._claims.claim, adapter._shard_max())
            if not new or adapter._stopping or not adapter.accepting:
                continue  # stopping: the claims go with the rest, their sessions stay saved
            log.info("discord shards taken over bot=%s shards=%s", adapter.bot.name, new)
            saved = await saved_sessions(adapter, new)
            client = adapter._client
            if not isinstance(client, discord.AutoShardedClient):
                await adapter._connect(sorted(adapter._claims.held))
            else:
                for shard in new:  # discord.py reads its shard list when a shard resumes
                    assert client.shard_ids is not None
                    client.shard_ids.append(shard)
                    await client.launch_shard(DiscordWebSocket.DEFAULT_GATEWAY, shard)
            await take_over(adapter, saved)
        except Exception:  # noqa: BLE001 - try again next round
            log.exception("discord shard claim failed bot=%s", adapter.bot.name)
