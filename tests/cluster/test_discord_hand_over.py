"""Discord shards change hands at a graceful stop without losing or doubling a message
(issue 13, point 6): real Apps with real discord.py against the fake gateway, which keeps a
resumable session's events and replays them on RESUME, as Discord does.

The stopping process closes its shards resumably, saves their sessions and gives the claims
up; the next holder starts the shard on a new session (for its guilds) and resumes the saved
one to replay what was sent in between. Sessions of the conversations continue too.
"""

from __future__ import annotations

import asyncio
import collections
from types import SimpleNamespace
from typing import Any

import pytest

from opencell.adapters import discord as discord_adapter
from opencell.adapters._discord_shards import Arrivals
from opencell.llm.base import LLMRequest
from opencell.store.store import Store
from tests.adapters.test_discord import fake, running, user  # noqa: F401 - the fixture
from tests.fakes.discord_server import GENERAL_ID, GUILD_ID, FakeDiscord
from tests.fakes.waiting import until

pytestmark = pytest.mark.postgres

__all__ = ["fake"]


def dm(fake: FakeDiscord, n: int, text: str) -> dict[str, Any]:
    """A DM from user ``n`` in that user's own DM channel (DMs arrive on shard 0)."""
    return fake.message(text, channel=str(1800000000000000100 + n), author=user(n),
                        mention_bot=False)


def answered(fake: FakeDiscord) -> collections.Counter[str]:
    """How many replies each message got."""
    return collections.Counter(p.reply_to for p in fake.posts if p.reply_to)


def sessions_by_channel(url: str) -> dict[str, list[dict[str, Any]]]:
    store = Store.open(url)
    try:
        rows, _ = store.list_sessions(limit=100)
    finally:
        store.close()
    found: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for row in rows:
        found[row["channel"]].append(row)
    return found


async def test_a_shard_handed_over_mid_traffic_answers_every_message_once(
        fake: FakeDiscord, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(discord_adapter, "CLAIM_INTERVAL", 0.02)
    fake.shards = 2
    gate = asyncio.Event()

    async def slow_once(request: LLMRequest) -> str:
        text = str(request.messages[-1].content)
        if text == "slow":
            await gate.wait()
        return f"n={len(request.messages)} {text}"

    users = range(3)
    sent: list[dict[str, Any]] = []

    async def send(text: str) -> None:
        for n in users:
            sent.append(dm(fake, n, f"{text} {n}"))
            await fake.dispatch("MESSAGE_CREATE", sent[-1])

    async with running(postgres_url, slow_once,
                       shards={"count": 2, "ids": "auto", "max": 1}) as a, \
            running(postgres_url, slow_once, shards={"count": 2, "ids": "auto"}) as b:
        assert a.adapter.client.shard_ids == [0]  # type: ignore[union-attr]  # the DMs
        assert b.adapter.client.shard_ids == [1]  # type: ignore[union-attr]  # the guild
        claims = b.adapter._claims
        assert claims is not None
        claim, may_claim = claims.claim, asyncio.Event()
        # b takes shard 0 over only once the test has sent messages into the gap
        monkeypatch.setattr(claims, "claim",
                            lambda limit=None: claim(limit) if may_claim.is_set() else [])
        guild = fake.message("hello guild", channel=GENERAL_ID)
        await fake.dispatch("MESSAGE_CREATE", guild)
        await send("before")
        await until(lambda: len(fake.posts) == 4, "the replies before the stop")
        slow = dm(fake, 0, "slow")
        sent.append(slow)
        await fake.dispatch("MESSAGE_CREATE", slow)
        await until(lambda: any(r.messages[-1].content == "slow" for r in a.llm.requests),
                    "a turn in flight on the stopping process")

        old = fake.connected(0)
        assert old is not None
        stopping = asyncio.create_task(a.app.stop(timeout=60))
        await until(lambda: old.ws is None, "the stopping process closing shard 0")
        assert not old.ended  # closed resumably
        await send("gap")  # nobody holds shard 0: Discord keeps these for its session
        gate.set()  # the turn in flight finishes on the stopping process
        await stopping
        fake.hold_resumes = asyncio.Event()
        may_claim.set()
        await until(lambda: fake.resumes_waiting == 1,
                    "the next holder, on its new session of shard 0, resuming the saved one")
        await send("both")  # these reach the new session live and the saved one's replay
        both = sent[-3:]
        fake.hold_resumes.set()
        await until(lambda: any(r["session_id"] == old.id for r in fake.resumes),
                    "the saved session replayed")
        await send("after")
        await until(lambda: all(answered(fake)[m["id"]] for m in sent), "every reply")
        await asyncio.sleep(0)
        assert b.adapter.client.shard_ids == [1, 0]  # type: ignore[union-attr]
        assert [s.shard for s in fake.sessions if s.id == old.id] == [(0, 2)]
        assert old.ended  # the replayed session was ended; shard 0 runs on b's new one

    delivered = collections.Counter(f["d"]["id"] for session in fake.sessions
                                    for f in session.frames if f["t"] == "MESSAGE_CREATE")
    assert [delivered[m["id"]] for m in both] == [2, 2, 2]  # twice over the gateway
    counts = answered(fake)
    assert all(counts[m["id"]] == 1 for m in [*sent, guild]), counts  # each answered once
    assert len(fake.posts) == len(sent) + 1
    # One session per DM conversation across the hand-over, which saw its whole history.
    by_channel = sessions_by_channel(postgres_url)
    for n in users:
        rows = by_channel[str(1800000000000000100 + n)]
        assert [row["messages"] for row in rows] == [5 if n == 0 else 4], rows
    last = next(p for p in fake.posts if p.reply_to == sent[-3]["id"])  # user 0, "after"
    assert last.content == "n=9 after 0"  # four earlier turns and this one


async def test_a_replacement_process_replays_with_the_guilds_known(
        fake: FakeDiscord, postgres_url: str) -> None:
    """A rolling replacement: the old process stops, events arrive while none runs, the new
    one starts and replays them. A guild message that does not mention the bot stays
    unanswered (a replay without the guild's GUILD_CREATE would take it for a DM)."""
    shards = {"count": 1, "ids": "auto"}
    async with running(postgres_url, shards=shards) as old_process:
        first = fake.message("first in the guild")
        await fake.dispatch("MESSAGE_CREATE", first)
        await fake.wait_for_reply_to(first)
        saved = fake.connected(0)
        await old_process.app.stop(timeout=60)
    assert saved is not None and not saved.ended
    asleep = [fake.message("while nobody runs"),
              fake.message("just talking", mention_bot=False)]
    for message in asleep:
        await fake.dispatch("MESSAGE_CREATE", message)
    async with running(postgres_url, shards=shards):
        assert [r["session_id"] for r in fake.resumes] == [saved.id]
        last = fake.message("after the start")
        await fake.dispatch("MESSAGE_CREATE", last)
        await fake.wait_for_reply_to(last)  # same conversation: later replies come after
    counts = answered(fake)
    assert (counts[first["id"]], counts[asleep[0]["id"]], counts[last["id"]]) == (1, 1, 1)
    assert counts[asleep[1]["id"]] == 0
    [session] = sessions_by_channel(postgres_url)[GENERAL_ID]
    assert (session["workspace"], session["messages"]) == (GUILD_ID, 3)


def test_held_messages_go_on_in_order_and_each_once() -> None:
    def message(message_id: int, guild: int | None = None) -> Any:
        return SimpleNamespace(id=message_id, guild=None,
                               channel=SimpleNamespace(guild_id=guild))

    arrivals = Arrivals(2)
    guild_on_shard_1 = 1 << 22
    arrivals.hold(0)
    assert not arrivals.admit(message(3))  # a DM: shard 0, held
    assert arrivals.admit(message(9, guild_on_shard_1))  # shard 1 goes on
    assert not arrivals.admit(message(1))
    assert not arrivals.admit(message(3))  # delivered again (the replayed session)
    assert [m.id for m in arrivals.release(0)] == [1, 3]
    assert not arrivals.admit(message(1)) and arrivals.admit(message(4))
