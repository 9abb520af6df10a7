"""Streamed replies, reactions as feedback and thread follow-ups on Discord, end to end: the
real App and runtime, the real anthropic SDK against the fake LLM's SSE stream, the real
discord.py against the fake Discord (message edits, reaction events)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import discord
import httpx
import pytest
import yarl

from opencell.adapters._chunks import split_message
from opencell.adapters.discord import DiscordAdapter
from opencell.app import App
from opencell.config import BotConfig, OpenCellConfig, StoreConfig
from opencell.observability.observer import Observability
from opencell.runtime import BotRuntime
from opencell.store import feedback as feedback_rows
from opencell.store.store import Store
from tests.conftest import clean_env, opencell
from tests.dashboard.conftest import ServerThread
from tests.fakes.discord_server import ALICE, GENERAL_ID, THREAD_ID, FakeDiscord
from tests.fakes.llm_server import FakeLLMServer, streamed
from tests.fakes.waiting import WAIT, until

ERROR = "Sorry, something went wrong on my side. Please try again in a moment."
LONG = "".join(f"Line {n} of a long streamed answer, with a few words.\n" for n in range(60))


@pytest.fixture
async def fake(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        monkeypatch.setattr(discord.http.Route, "BASE", server.api_base)
        monkeypatch.setattr(discord.gateway.DiscordWebSocket, "DEFAULT_GATEWAY",
                            yarl.URL(server.gateway))
        yield server


@pytest.fixture
async def llm() -> AsyncIterator[FakeLLMServer]:
    async with FakeLLMServer() as server:
        yield server


@dataclass
class Running:
    app: App
    adapter: DiscordAdapter
    observability: Observability


@asynccontextmanager
async def running(store_url: str, llm: FakeLLMServer, *, stream: bool = True,
                  interval: float = 0.05, **settings: Any) -> AsyncIterator[Running]:
    bot = BotConfig.model_validate({
        "name": "helper", "stream": stream,
        "llm": {"provider": "claude", "model": "claude-test", "max_retries": 0,
                "base_url": llm.url},
        "platforms": {"discord": {"token": "test-token", **settings}}})
    observability = Observability.from_config(OpenCellConfig(store=StoreConfig(url=store_url)),
                                              [bot])
    runtime = BotRuntime(bot, observability=observability, env={"ANTHROPIC_API_KEY": "sk-a"})
    adapters: list[DiscordAdapter] = []

    def factory(b: BotConfig, _platform: str) -> DiscordAdapter:
        adapter = DiscordAdapter(b, guild_ready_timeout=0.05)
        adapter.stream_interval = interval  # the real 1 s is for Discord; tests go faster
        adapters.append(adapter)
        return adapter

    app = App([bot], runtimes={bot.name: runtime}, observability=observability,
              adapter_factory=factory)
    try:
        await app.start()
        yield Running(app, adapters[0], observability)
    finally:
        await app.stop(timeout=5)


def replies_to(fake: FakeDiscord, message: dict[str, Any]) -> list[str]:
    """The bot's messages answering ``message`` as they read now: the reply to it, then the
    messages posted after that one in the same channel."""
    first = next(i for i, p in enumerate(fake.posts) if p.reply_to == message["id"])
    channel = fake.posts[first].channel_id
    return [fake.contents[p.message_id] for p in fake.posts[first:]
            if p.channel_id == channel]


async def test_a_long_streamed_answer_is_edited_in_place_and_continues_past_2000_characters(
        fake: FakeDiscord, llm: FakeLLMServer, isolated_store: str) -> None:
    llm.push(streamed(LONG, 60, delay=0.01))
    async with running(isolated_store, llm) as bot:
        message = fake.message("tell me a long story")
        await fake.dispatch("MESSAGE_CREATE", message)
        await until(lambda: bot.app.adapters[0].in_flight == 0 and len(fake.posts) == 2,
                    "the streamed answer to finish")
        await until(lambda: replies_to(fake, message) == split_message(LONG, 2000),
                    "the final text")

    first, second = fake.posts
    assert first.reply_to == message["id"] and second.reply_to is None
    assert len(first.content) < 200  # posted at the first piece, not at the end
    assert [e.message_id for e in fake.edits if e.message_id == first.message_id]
    assert replies_to(fake, message) == split_message(LONG, 2000)  # = the non-streamed answer
    assert llm.requests[0].json["stream"] is True
    assert not fake.rejected
    store = Store.open(isolated_store)
    try:
        [session] = store.list_sessions()[0]
        calls = [e for e in store.timeline(session["id"]) if e["kind"] == "llm_call"]
    finally:
        store.close()
    [call] = calls
    assert call["streamed"] is True
    assert 0 < call["time_to_first_token_ms"] <= call["duration_ms"]
    assert call["streaming_ms"] > 0
    with ServerThread(isolated_store) as dashboard:
        analytics = httpx.get(f"{dashboard.url}/analytics", timeout=WAIT).text
        page = httpx.get(f"{dashboard.url}/sessions/{session['id']}", timeout=WAIT).text
    ttft = analytics.split('data-section="ttft"')[1].split("</section>")[0]
    assert '<tr data-bot="helper"><td>helper</td><td>claude-test</td><td class="num">1</td>' in ttft
    assert "data-ttft" in page and "first token" in page


async def test_stream_false_posts_the_same_answer_once(
        fake: FakeDiscord, llm: FakeLLMServer, isolated_store: str) -> None:
    llm.push(streamed(LONG, 60))
    async with running(isolated_store, llm, stream=False):
        message = fake.message("tell me a long story")
        await fake.dispatch("MESSAGE_CREATE", message)
        await fake.wait_for_posts(2)
    assert [p.content for p in fake.posts] == split_message(LONG, 2000)
    assert not fake.edits
    assert not llm.requests[0].json.get("stream")


async def test_a_stream_that_fails_midway_ends_with_the_polite_error_and_is_recorded_failed(
        fake: FakeDiscord, llm: FakeLLMServer, isolated_store: str) -> None:
    llm.push(streamed("The answer starts well and then", 10, delay=0.01, break_after=2))
    async with running(isolated_store, llm):
        message = fake.message("hi")
        await fake.dispatch("MESSAGE_CREATE", message)
        await until(lambda: fake.posts and ERROR in fake.contents[fake.posts[0].message_id],
                    "the polite error")

    assert fake.contents[fake.posts[0].message_id] == f"The answer starts we\n\n{ERROR}"
    store = Store.open(isolated_store)
    try:
        [session] = store.list_sessions()[0]
        events = store.timeline(session["id"])
    finally:
        store.close()
    [call] = [e for e in events if e["kind"] == "llm_call"]
    [turn] = [e for e in events if e["kind"] == "message"]
    assert call["success"] is False and call["time_to_first_token_ms"] > 0
    assert turn["success"] is False
    assert turn["output"] == f"The answer starts we\n\n{ERROR}"


async def test_a_thumbs_up_then_its_removal_leaves_no_score_and_a_thumbs_down_lands_on_its_turn(
        fake: FakeDiscord, llm: FakeLLMServer, isolated_store: str) -> None:
    async with running(isolated_store, llm) as bot:
        first = fake.message("first question")
        await fake.dispatch("MESSAGE_CREATE", first)
        await fake.wait_for_reply_to(first)
        second = fake.message("second question")
        await fake.dispatch("MESSAGE_CREATE", second)
        reply = await fake.wait_for_reply_to(second)
        store = bot.observability.store
        await until(lambda: store.list_sessions()[0], "the session stored")
        [session] = store.list_sessions()[0]
        book = bot.observability.feedback

        reply_to_first = next(p for p in fake.posts if p.reply_to == first["id"])
        await fake.dispatch("MESSAGE_REACTION_ADD", fake.reaction(reply_to_first.message_id))
        await until(lambda: feedback_rows.session_feedback(
            bot.observability.store, session["id"]), "the 👍")
        await fake.dispatch("MESSAGE_REACTION_REMOVE",
                            fake.reaction(reply_to_first.message_id))
        await until(lambda: not feedback_rows.session_feedback(
            bot.observability.store, session["id"]), "the 👍 retracted")
        await fake.dispatch("MESSAGE_REACTION_ADD", fake.reaction(reply.message_id, "👎🏽"))
        await fake.dispatch("MESSAGE_REACTION_ADD", fake.reaction(first["id"], "👎"))  # a user's
        await until(lambda: feedback_rows.session_feedback(
            bot.observability.store, session["id"]), "the 👎")
        await book.settle()

    [rating] = feedback_rows.session_feedback(Store.open(isolated_store), session["id"])
    assert (rating["turn"], rating["value"], rating["user_id"]) == (
        second["id"], "bad", ALICE["id"])
    store = Store.open(isolated_store)
    try:
        events = [e for e in store.timeline(session["id"]) if e["name"] == "feedback"]
        bad, _ = store.list_sessions(feedback="bad")
        good, _ = store.list_sessions(feedback="good")
    finally:
        store.close()
    assert [(e["data"]["turn"], e["data"]["value"]) for e in events] == [
        (first["id"], "good"), (first["id"], None), (second["id"], "bad")]
    assert [s["id"] for s in bad] == [session["id"]] and good == []

    env = clean_env(OPENCELL_DATABASE_URL=isolated_store, COLUMNS="200")
    listed = opencell("sessions", "--feedback", "bad", "--json", env=env)
    assert [s["id"] for s in json.loads(listed.stdout)["sessions"]] == [session["id"]]
    assert json.loads(opencell("sessions", "--feedback", "good", "--json",
                               env=env).stdout)["sessions"] == []
    shown = opencell("session", session["id"], env=env)
    assert shown.returncode == 0, shown.stderr
    turns = [block for block in shown.stdout.split("» ")[1:]]
    [rated] = [t for t in turns if "rated 👎" in t]
    assert rated.startswith("second question")  # the 👎 sits on the turn it judged
    assert "👍 0 / 👎 1" in shown.stdout

    with ServerThread(isolated_store) as dashboard:
        page = httpx.get(f"{dashboard.url}/sessions/{session['id']}", timeout=WAIT).text
        listing = httpx.get(f"{dashboard.url}/sessions?feedback=bad", timeout=WAIT).text
        none_good = httpx.get(f"{dashboard.url}/sessions?feedback=good", timeout=WAIT).text
        analytics = httpx.get(f"{dashboard.url}/analytics", timeout=WAIT).text
    bubbles = {b.split("bubble-text")[1][:60]: b for b in page.split("tl-bot")[1:]}
    [first_bubble] = [b for text, b in bubbles.items() if "first question" in text]
    [second_bubble] = [b for text, b in bubbles.items() if "second question" in text]
    assert 'data-feedback="bad"' in second_bubble and "data-feedback" not in first_bubble
    assert session["id"] in listing and session["id"] not in none_good
    quality = analytics.split('data-section="satisfaction"')[1].split("</section>")[0]
    assert '<tr data-bot="helper"><td>helper</td><td class="num">0</td>' in quality


async def test_a_restarted_bot_still_finds_the_turn_of_an_old_reply(
        fake: FakeDiscord, llm: FakeLLMServer, isolated_store: str) -> None:
    async with running(isolated_store, llm):
        message = fake.message("question")
        await fake.dispatch("MESSAGE_CREATE", message)
        reply = await fake.wait_for_reply_to(message)
    async with running(isolated_store, llm) as bot:
        await fake.wait_connected()
        await fake.dispatch("MESSAGE_REACTION_ADD", fake.reaction(reply.message_id, "👎"))
        store = bot.observability.store
        await until(lambda: store.list_sessions(feedback="bad")[0], "the 👎 after a restart")


async def test_thread_follow_ups_from_the_asker_need_no_new_mention(
        fake: FakeDiscord, llm: FakeLLMServer, isolated_store: str) -> None:
    other = {"id": "1500000000000000777", "username": "bob"}
    async with running(isolated_store, llm):
        never = fake.message("not for the bot", channel=THREAD_ID, mention_bot=False)
        await fake.dispatch("MESSAGE_CREATE", never)
        asked = fake.message("question", channel=THREAD_ID)
        await fake.dispatch("MESSAGE_CREATE", asked)
        await fake.wait_for_reply_to(asked)
        from_bob = fake.message("bob chatting", channel=THREAD_ID, mention_bot=False,
                                author=other)
        await fake.dispatch("MESSAGE_CREATE", from_bob)
        follow = fake.message("and a follow-up", channel=THREAD_ID, mention_bot=False)
        await fake.dispatch("MESSAGE_CREATE", follow)
        await fake.wait_for_reply_to(follow)
        in_channel = fake.message("plain channel", channel=GENERAL_ID, mention_bot=False)
        await fake.dispatch("MESSAGE_CREATE", in_channel)
        marker = fake.message("marker", channel=GENERAL_ID)
        await fake.dispatch("MESSAGE_CREATE", marker)
        await fake.wait_for_reply_to(marker)
    answered = {p.reply_to for p in fake.posts}
    assert answered == {asked["id"], follow["id"], marker["id"]}


async def test_follow_threads_false_keeps_asking_for_a_mention(
        fake: FakeDiscord, llm: FakeLLMServer, isolated_store: str) -> None:
    async with running(isolated_store, llm, follow_threads=False):
        asked = fake.message("question", channel=THREAD_ID)
        await fake.dispatch("MESSAGE_CREATE", asked)
        await fake.wait_for_reply_to(asked)
        follow = fake.message("and a follow-up", channel=THREAD_ID, mention_bot=False)
        await fake.dispatch("MESSAGE_CREATE", follow)
        marker = fake.message("marker", channel=THREAD_ID)
        await fake.dispatch("MESSAGE_CREATE", marker)
        await fake.wait_for_reply_to(marker)
    assert {p.reply_to for p in fake.posts} == {asked["id"], marker["id"]}
