"""The Discord adapter end to end: real discord.py, the real App and runtime, a loopback Discord."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import discord
import pytest
import yarl

from opencell.adapters import discord as discord_adapter
from opencell.adapters._discord_inbound import strip_mentions
from opencell.adapters.discord import DiscordAdapter
from opencell.app import App
from opencell.config import BotConfig, OpenCellConfig, StoreConfig
from opencell.errors import MissingSecretError, PlatformError
from opencell.llm.base import LLMRequest
from opencell.messages import IncomingMessage, Reply
from opencell.observability.observer import Observability
from opencell.runtime import BotRuntime
from opencell.store.store import Store
from tests.conftest import clean_env, opencell
from tests.fakes.discord_server import (
    ALICE,
    BOT_ID,
    DM_CHANNEL_ID,
    GENERAL_ID,
    GUILD_ID,
    OTHER_BOT,
    RANDOM_ID,
    THREAD_ID,
    FakeDiscord,
)
from tests.fakes.function_llm import FunctionLLM
from tests.fakes.waiting import WAIT, InFlight, until

BOT_USER = {"id": BOT_ID, "username": "opencell", "bot": True}
FENCE = re.compile(r"^\s*```", re.MULTILINE)


def echo(request: LLMRequest) -> str:
    return f"echo: {request.messages[-1].content}"


def user(n: int) -> dict[str, Any]:
    return {"id": str(1500000000000100000 + n), "username": f"user{n}"}


@pytest.fixture
async def fake(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDiscord]:
    """The fake Discord, with discord.py's REST base and gateway pointed at it."""
    async with FakeDiscord() as server:
        monkeypatch.setattr(discord.http.Route, "BASE", server.api_base)
        monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY",
                            yarl.URL(server.gateway))
        yield server


def discord_bot(token: str = "test-token", **settings: Any) -> BotConfig:
    return BotConfig.model_validate({
        "name": "helper", "llm": {"provider": "offline"},
        "platforms": {"discord": {"token": token, **settings}}})


@dataclass
class Running:
    app: App
    adapter: DiscordAdapter
    llm: FunctionLLM


@asynccontextmanager
async def running(store_url: str, play: Callable[[LLMRequest], Any] = echo,
                  **settings: Any) -> AsyncIterator[Running]:
    """The real App with one Discord bot whose model is ``play``; stopped on exit."""
    bot = discord_bot(**settings)
    observability = Observability.from_config(OpenCellConfig(store=StoreConfig(url=store_url)),
                                              [bot])
    llm = FunctionLLM(play)
    runtime = BotRuntime(bot, llm=llm, observability=observability)
    adapters: list[DiscordAdapter] = []

    def factory(b: BotConfig, _platform: str) -> DiscordAdapter:
        adapters.append(DiscordAdapter(b, guild_ready_timeout=0.05))
        return adapters[-1]

    app = App([bot], runtimes={bot.name: runtime}, observability=observability,
              adapter_factory=factory)
    try:
        await app.start()
        yield Running(app, adapters[0], llm)
    finally:
        await app.stop(timeout=5)


def sessions(store_url: str) -> list[dict[str, Any]]:
    store = Store.open(store_url)
    try:
        return store.list_sessions()[0]
    finally:
        store.close()


# ---------------------------------------------------------------- replies


async def test_a_mention_is_answered_as_a_reply_with_the_models_text(
        fake: FakeDiscord, isolated_store: str) -> None:
    async with running(isolated_store) as bot:
        message = fake.message("hello there")
        await fake.dispatch("MESSAGE_CREATE", message)
        [posted] = await fake.wait_for_posts(1)
        assert bot.llm.requests[0].messages[-1].content == "hello there"  # mention stripped

    assert posted.channel_id == GENERAL_ID
    assert posted.content == "echo: hello there"
    assert posted.reply_to == message["id"]
    assert posted.body["allowed_mentions"] == {"parse": [], "replied_user": True}
    intents = fake.identifies[0]["intents"]
    for bit in (0, 9, 12, 15):  # guilds, guild messages, DMs, message content
        assert intents & (1 << bit), bit
    [session] = sessions(isolated_store)
    assert (session["platform"], session["workspace"], session["channel"], session["thread"],
            session["user_id"], session["user_name"]) == (
        "discord", GUILD_ID, GENERAL_ID, "", ALICE["id"], "Ali")
    assert session["end_reason"] == "shutdown"


async def test_a_thread_message_is_answered_in_the_thread(
        fake: FakeDiscord, isolated_store: str) -> None:
    async with running(isolated_store):
        message = fake.message("about my invoice", channel=THREAD_ID)
        await fake.dispatch("MESSAGE_CREATE", message)
        [posted] = await fake.wait_for_posts(1)

    assert (posted.channel_id, posted.reply_to) == (THREAD_ID, message["id"])
    [session] = sessions(isolated_store)
    assert (session["channel"], session["thread"]) == (GENERAL_ID, THREAD_ID)


async def test_respond_to_mentions_ignores_unmentioned_messages_but_not_dms_or_replies(
        fake: FakeDiscord, isolated_store: str) -> None:
    async with running(isolated_store, respond_to="mentions") as bot:
        await fake.dispatch("MESSAGE_CREATE", fake.message("just chatting", mention_bot=False))
        dm = fake.message("help in private", channel=DM_CHANNEL_ID, mention_bot=False)
        await fake.dispatch("MESSAGE_CREATE", dm)
        reply = fake.message("and a follow-up", mention_bot=False,
                             reply_to_bot="1390000000000000777")
        await fake.dispatch("MESSAGE_CREATE", reply)
        # The follow-up is alice's next message in #general, where "just chatting" was:
        # once it is answered, a wrong answer to "just chatting" would have been posted.
        await fake.wait_for_reply_to(dm)
        await fake.wait_for_reply_to(reply)

    assert [p.content for p in fake.posts] == ["echo: help in private", "echo: and a follow-up"]
    assert {p.channel_id for p in fake.posts} == {DM_CHANNEL_ID, GENERAL_ID}
    assert len(bot.llm.requests) == 2
    dm_session = next(s for s in sessions(isolated_store) if s["channel"] == DM_CHANNEL_ID)
    assert dm_session["workspace"] in ("", None)


async def test_own_and_other_bots_messages_produce_nothing(
        fake: FakeDiscord, isolated_store: str) -> None:
    async with running(isolated_store) as bot:
        await fake.dispatch("MESSAGE_CREATE", fake.message("I said this", author=BOT_USER))
        await fake.dispatch("MESSAGE_CREATE", fake.message("beep", author=OTHER_BOT))
        marker = fake.message("a human")
        await fake.dispatch("MESSAGE_CREATE", marker)
        # Skipping is decided synchronously in gateway order, so once the marker is answered
        # the two bot messages were judged, and a wrongly started turn is drained by the stop
        # at the end of the block, before the assertions.
        await fake.wait_for_reply_to(marker)

    assert [p.reply_to for p in fake.posts] == [marker["id"]]
    assert len(bot.llm.requests) == 1


async def test_ignore_bots_false_hands_bot_messages_on_marked_from_bot(
        fake: FakeDiscord) -> None:
    seen: list[IncomingMessage] = []

    async def deliver(message: IncomingMessage) -> Reply | None:
        seen.append(message)
        return None

    adapter = DiscordAdapter(discord_bot(ignore_bots=False), guild_ready_timeout=0.05)
    await adapter.start(deliver)
    try:
        await fake.dispatch("MESSAGE_CREATE", fake.message("I said this", author=BOT_USER))
        await fake.dispatch("MESSAGE_CREATE", fake.message("beep", author=OTHER_BOT))
        await fake.dispatch("MESSAGE_CREATE", fake.message("a human marker"))
        # Turns start in gateway order and ``deliver`` records before its first await, so
        # when the marker is seen, the bot's own message would have been seen before it.
        await until(lambda: any(m.text == "a human marker" for m in seen), "the marker")
    finally:
        await adapter.stop()
    assert [(m.text, m.from_bot) for m in seen] == [("beep", True), ("a human marker", False)]


async def test_respond_to_all_with_a_channel_allowlist(
        fake: FakeDiscord, isolated_store: str) -> None:
    async with running(isolated_store, respond_to="all", channels=["#general"]):
        await fake.dispatch("MESSAGE_CREATE", fake.message("off topic", channel=RANDOM_ID,
                                                           mention_bot=False))
        await fake.dispatch("MESSAGE_CREATE", fake.message("in a thread", channel=THREAD_ID,
                                                           mention_bot=False))
        marker = fake.message("no mention", mention_bot=False)
        await fake.dispatch("MESSAGE_CREATE", marker)
        # Judged in gateway order: "off topic" was decided before the marker's turn began,
        # and the stop at the end of the block drains any turn it wrongly started.
        await fake.wait_for_reply_to(marker)

    assert sorted((p.channel_id, p.content) for p in fake.posts) == [
        (GENERAL_ID, "echo: no mention"), (THREAD_ID, "echo: in a thread")]


async def test_respond_to_dm_answers_only_direct_messages(
        fake: FakeDiscord, isolated_store: str) -> None:
    async with running(isolated_store, respond_to="dm"):
        await fake.dispatch("MESSAGE_CREATE", fake.message("in the server"))
        marker = fake.message("in private", channel=DM_CHANNEL_ID, mention_bot=False)
        await fake.dispatch("MESSAGE_CREATE", marker)
        # Judged in gateway order; a wrongly started turn is drained by the stop below.
        await fake.wait_for_reply_to(marker)

    assert [(p.channel_id, p.content) for p in fake.posts] == [(DM_CHANNEL_ID,
                                                                 "echo: in private")]


def test_only_the_bots_own_mention_is_removed() -> None:
    text = f"<@!{BOT_ID}> please  fix\n    indented()\n<@{ALICE['id']}> says hi <@{BOT_ID}>"
    assert strip_mentions(text, int(BOT_ID)) == (
        f"please  fix\n    indented()\n<@{ALICE['id']}> says hi")


# ---------------------------------------------------------------- limits and rate limits


async def test_a_429_on_the_first_post_is_retried_and_the_reply_arrives_once(
        fake: FakeDiscord, isolated_store: str) -> None:
    fake.rate_limit_posts(1, retry_after=0.05)
    async with running(isolated_store):
        message, marker = fake.message("hello"), fake.message("marker")
        await fake.dispatch("MESSAGE_CREATE", message)
        await fake.dispatch("MESSAGE_CREATE", marker)
        # Same conversation: the marker is answered only after the first reply went out,
        # so a duplicate of it (a retried POST sent twice) would be here by then.
        await fake.wait_for_reply_to(marker)

    assert fake.rate_limited == [GENERAL_ID]
    assert [(p.content, p.reply_to) for p in fake.posts] == [
        ("echo: hello", message["id"]), ("echo: marker", marker["id"])]


async def test_a_long_reply_arrives_in_pieces_under_2000_characters_with_balanced_fences(
        fake: FakeDiscord, isolated_store: str) -> None:
    code = "\n".join(f"    result_{i} = compute({i}) + offset  # step {i}" for i in range(70))
    prose = " ".join(f"word{i}" for i in range(200))
    long_text = f"{prose}\n\n```python\n{code}\n```\n\n{prose}"
    assert len(long_text) >= 4500

    def play(request: LLMRequest) -> str:
        return "done" if request.messages[-1].content == "marker" else long_text

    async with running(isolated_store, play=play):
        message, marker = fake.message("write a lot"), fake.message("marker")
        await fake.dispatch("MESSAGE_CREATE", message)
        await fake.dispatch("MESSAGE_CREATE", marker)
        # Same conversation: the marker's reply waits for every piece of the long one.
        await fake.wait_for_reply_to(marker)

    assert fake.posts[-1].content == "done"
    pieces = [p.content for p in fake.posts[:-1]]
    assert len(pieces) >= 3
    assert all(len(piece) <= 2000 for piece in pieces)
    assert all(len(FENCE.findall(piece)) % 2 == 0 for piece in pieces)
    assert fake.posts[0].reply_to == message["id"]
    assert all(p.reply_to is None for p in fake.posts[1:-1])

    def words(text: str) -> list[str]:
        return [w for w in text.split() if not w.startswith("```")]

    assert words("\n".join(pieces)) == words(long_text)


# ---------------------------------------------------------------- concurrency and order


async def test_twenty_conversations_at_once_take_about_one_turn(
        fake: FakeDiscord, isolated_store: str) -> None:
    gauge = InFlight()

    async def together(request: LLMRequest) -> str:
        await gauge.together(20)  # each model call waits until all twenty are in flight
        return echo(request)

    async with running(isolated_store, play=together):
        # Each user in their own DM: Discord allows 5 messages per 5 s in one channel.
        messages = [fake.message(f"question {n}", author=user(n), mention_bot=False,
                                 channel=str(1800000000000000100 + n)) for n in range(20)]
        for message in messages:
            await fake.dispatch("MESSAGE_CREATE", message)
        await fake.wait_for_posts(20)

    assert gauge.most == 20, f"at most {gauge.most} model calls at once: not concurrent"
    answers = {p.reply_to: p.content for p in fake.posts}
    assert answers == {m["id"]: f"echo: question {n}" for n, m in enumerate(messages)}
    assert len(sessions(isolated_store)) == 20


async def test_one_conversations_replies_come_in_order(
        fake: FakeDiscord, isolated_store: str) -> None:
    delays = {"first": 0.3, "second": 0.1, "third": 0.0}

    async def uneven(request: LLMRequest) -> str:
        await asyncio.sleep(delays[request.messages[-1].content])
        return echo(request)

    async with running(isolated_store, play=uneven):
        messages = [fake.message(text) for text in delays]
        for message in messages:
            await fake.dispatch("MESSAGE_CREATE", message)
        await fake.wait_for_posts(3)

    assert [(p.content, p.reply_to) for p in fake.posts] == [
        (f"echo: {text}", m["id"]) for text, m in zip(delays, messages, strict=True)]


async def test_a_graceful_stop_during_a_turn_still_sends_the_reply(
        fake: FakeDiscord, isolated_store: str) -> None:
    release = asyncio.Event()

    async def thoughtful(request: LLMRequest) -> str:
        await release.wait()
        return "worth the wait"

    async with running(isolated_store, play=thoughtful) as bot:
        await fake.dispatch("MESSAGE_CREATE", fake.message("think hard"))
        await until(lambda: bot.llm.requests, "the model call")
        await until(lambda: fake.typing, "the typing indicator (the model is still thinking)")
        assert fake.posts == []
        # The model answers once stop() has begun (it runs up to its first wait first).
        asyncio.get_running_loop().call_soon(release.set)
        await bot.app.stop(timeout=30)
        assert [p.content for p in fake.posts] == ["worth the wait"]
        assert fake.typing == [GENERAL_ID]  # "is typing…" while the model thought
        assert bot.adapter.client is not None and bot.adapter.client.is_closed()
    [session] = sessions(isolated_store)
    assert session["end_reason"] == "shutdown"


# ---------------------------------------------------------------- connecting


async def test_shards_auto_uses_the_auto_sharded_client(
        fake: FakeDiscord, isolated_store: str) -> None:
    async with running(isolated_store, shards="auto") as bot:
        assert isinstance(bot.adapter.client, discord.AutoShardedClient)
        await fake.dispatch("MESSAGE_CREATE", fake.message("sharded hello"))
        [posted] = await fake.wait_for_posts(1)
    assert ("GET", "/gateway/bot") in fake.requests
    assert fake.identifies[0]["shard"] == [0, 1]
    assert posted.content == "echo: sharded hello"


async def test_an_invalid_token_is_a_clear_platform_error(fake: FakeDiscord) -> None:
    adapter = DiscordAdapter(discord_bot(token="not-the-token"), guild_ready_timeout=0.05)

    async def deliver(message: IncomingMessage) -> Reply | None:
        raise AssertionError("nothing should be delivered")

    with pytest.raises(PlatformError) as caught:
        await adapter.start(deliver)
    await adapter.stop()
    assert str(caught.value).startswith(
        "Discord rejected the bot token for bot 'helper' (401): check DISCORD_TOKEN")
    assert "not-the-token" not in str(caught.value)
    assert not fake.identifies


def test_an_empty_token_names_the_variable_and_the_bot() -> None:
    with pytest.raises(MissingSecretError) as caught:
        DiscordAdapter(discord_bot(token="  "))
    assert "DISCORD_TOKEN" in str(caught.value) and "'helper'" in str(caught.value)


async def test_a_missing_message_content_intent_says_where_to_enable_it(
        fake: FakeDiscord) -> None:
    fake.refuse_privileged_intents = True
    adapter = DiscordAdapter(discord_bot(), guild_ready_timeout=0.05)

    async def deliver(message: IncomingMessage) -> Reply | None:
        return None

    with pytest.raises(PlatformError, match="Message Content intent: enable it in the "
                                            "Developer Portal"):
        await adapter.start(deliver)
    await adapter.stop()


def test_opencell_run_with_an_invalid_token_prints_one_line_and_exits_non_zero(
        tmp_path: Path) -> None:
    server = FakeDiscord().start_in_thread()
    try:
        bot = tmp_path / "bot.yaml"
        bot.write_text("name: helper\nllm: {provider: offline}\n"
                       "platforms:\n  discord: {token: \"${DISCORD_TOKEN}\"}\n")
        env = clean_env(DISCORD_TOKEN="wrong-token", OPENCELL_DISCORD_API_BASE=server.api_base,
                        OPENCELL_DATABASE_URL=f"sqlite:///{tmp_path / 'cli.db'}")
        result = opencell("run", str(bot), env=env, timeout=30)
    finally:
        server.stop_thread()
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == ["error: Discord rejected the bot token for bot 'helper' (401): check "
                     "DISCORD_TOKEN (or platforms.discord.token); Developer Portal → your app "
                     "→ Bot → Reset Token"], result.stderr
    assert ("GET", "/users/@me") in server.requests



async def test_a_long_reply_is_not_interleaved_with_the_next_reply(
        fake: FakeDiscord, isolated_store: str) -> None:
    long_text = " ".join(f"word{i}" for i in range(900))  # about 7,000 characters: 4 pieces

    def play(request: LLMRequest) -> str:
        return long_text if request.messages[-1].content == "first" else "short"

    fake.post_latency = 0.05  # while piece 1 is on its way, the second turn finishes
    async with running(isolated_store, play=play):
        first, second = fake.message("first"), fake.message("second")
        await fake.dispatch("MESSAGE_CREATE", first)
        await fake.dispatch("MESSAGE_CREATE", second)
        posts = await fake.wait_for_posts(5)

    assert [p.content == "short" for p in posts] == [False, False, False, False, True]
    assert (posts[0].reply_to, posts[-1].reply_to) == (first["id"], second["id"])


async def test_a_dropped_gateway_connection_resumes_and_the_bot_keeps_answering(
        fake: FakeDiscord, isolated_store: str) -> None:
    async with running(isolated_store):
        await fake.drop_connections(code=4000)
        await until(lambda: fake.resumes, "a RESUME")
        await fake.dispatch("MESSAGE_CREATE", fake.message("still there?"))
        [posted] = await fake.wait_for_posts(1)
    assert fake.resumes[0]["session_id"] == fake.sessions[0].id
    assert posted.content == "echo: still there?"


async def test_a_fatal_gateway_close_finishes_the_adapter(
        fake: FakeDiscord, isolated_store: str) -> None:
    async with running(isolated_store) as bot:
        assert not bot.adapter.finished.is_set()
        await fake.drop_connections(code=4004)
        await asyncio.wait_for(bot.adapter.finished.wait(), WAIT)


async def test_no_ready_within_ready_timeout_is_a_platform_error(fake: FakeDiscord) -> None:
    fake.withhold_ready = True
    adapter = DiscordAdapter(discord_bot(ready_timeout=0.3), guild_ready_timeout=0.05)

    async def deliver(message: IncomingMessage) -> Reply | None:
        return None

    with pytest.raises(PlatformError, match="did not become ready on Discord within"):
        await adapter.start(deliver)
    await adapter.stop()
    assert adapter.client is not None and adapter.client.is_closed()


async def test_two_processes_split_the_shards_between_them(
        fake: FakeDiscord, isolated_store: str) -> None:
    """D6: ``shards: {count, ids}`` — each process identifies only its own shards (before,
    every process identified every shard, so each would have answered every message)."""
    fake.shards = 2
    async with running(isolated_store, shards={"count": 2, "ids": [0]}) as first:
        async with running(isolated_store, shards={"count": 2, "ids": [1]}) as second:
            assert isinstance(first.adapter.client, discord.AutoShardedClient)
            assert sorted(i["shard"] for i in fake.identifies) == [[0, 2], [1, 2]]
            assert first.adapter.client.shard_ids == [0]
            assert second.adapter.client.shard_ids == [1]


def test_shard_ids_must_be_shards_of_the_count() -> None:
    with pytest.raises(ValueError, match=r"shard ids \[2\] are not shards of count 2"):
        discord_bot(shards={"count": 2, "ids": [0, 2]})


@pytest.mark.postgres
async def test_shards_are_claimed_automatically_and_taken_over_when_a_process_stops(
        fake: FakeDiscord, postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """D6: ``shards: {count, ids: auto, max}`` — processes sharing a PostgreSQL store claim
    free shards (each shard in exactly one process); a process with room stands by and takes
    a shard over when its holder stops (a crash frees the claim the same way: the server
    drops a dead connection's locks)."""
    monkeypatch.setattr(discord_adapter, "CLAIM_INTERVAL", 0.05)
    fake.shards = 2
    auto = {"count": 2, "ids": "auto", "max": 1}
    async with running(postgres_url, shards=auto) as standby_later:
        async with running(postgres_url, shards=auto) as second:
            assert sorted(i["shard"] for i in fake.identifies) == [[0, 2], [1, 2]]
            held = [standby_later.adapter.client.shard_ids,  # type: ignore[union-attr]
                    second.adapter.client.shard_ids]  # type: ignore[union-attr]
            assert sorted(held) == [[0], [1]]
            async with running(postgres_url, shards=auto) as third:
                assert third.adapter.client is None  # every shard is claimed: standing by
                await second.app.stop(timeout=5)  # its shard is free now
                await until(lambda: third.adapter.client is not None
                            and bool(third.adapter.client.shard_ids),
                            "the standby taking the shard over")
                assert third.adapter.client.shard_ids == held[1]  # type: ignore[union-attr]
                await until(lambda: len(fake.identifies) == 3, "its IDENTIFY")
                assert fake.identifies[-1]["shard"] == [held[1][0], 2]
