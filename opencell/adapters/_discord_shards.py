"""Discord shards shared by several processes: take over the shards others gave up.

``DiscordAdapter`` claims its shards through the store (``store/claims.py``: advisory locks,
so a dead process's shards are free at once); this loop claims more while the process is under
its ``max``, and launches each one on the running client.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import discord

log = logging.getLogger("opencell.adapters.discord")


async def claim_forever(adapter: Any, interval: float) -> None:
    """Take over shards other processes gave up (stopped or died), while under ``max``,
    trying every ``interval`` seconds. ``adapter`` is the ``DiscordAdapter`` (not imported
    here: that would be an import cycle)."""
    assert adapter._claims is not None
    while not adapter._stopping:
        await asyncio.sleep(interval)
        try:
            new = await asyncio.to_thread(adapter._claims.claim, adapter._shard_max())
            if not new or adapter._stopping:
                continue
            log.info("discord shards taken over bot=%s shards=%s", adapter.bot.name, new)
            client = adapter._client
            if not isinstance(client, discord.AutoShardedClient):
                await adapter._connect(sorted(adapter._claims.held))
                continue
            for shard in new:  # discord.py reads its shard list when a shard resumes
                assert client.shard_ids is not None
                client.shard_ids.append(shard)
                await client.launch_shard(discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY,
                                          shard)
        except Exception:  # noqa: BLE001 - try again next round
            log.exception("discord shard claim failed bot=%s", adapter.bot.name)

