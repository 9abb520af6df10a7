"""Streamed replies, reactions as feedback and thread follow-ups on Slack, end to end: the
real App, slack-bolt and slack-sdk against the fake Slack (``chat.update``, reaction events),
the real openai SDK against the fake LLM's SSE stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from opencell.adapters._slack_format import slack_messages
from opencell.adapters.slack import SlackAdapter
from opencell.app import App
from opencell.config import BotConfig, OpenCellConfig, StoreConfig
from opencell.observability.observer import Observability
from opencell.runtime import BotRuntime
from opencell.store import feedback as feedback_rows
from opencell.store.store import Store
from tests.fakes.llm_server import FakeLLMServer, streamed
from tests.fakes.slack_server import (
    BOT_TOKEN,
    SIGNING_SECRET,
    FakeSlack,
    event,
    post_event,
    reaction_event,
    until,
)
from tests.fakes.waiting import WAIT

ERROR = "Sorry, something went wrong on my side. Please try again in a moment."
ANSWER = ("**Plan** for the [deploy](https://example.com):\n\n- step one\n- step two\n\n"
          "```\nmake <deploy> & wait\n```\n") * 60


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(users={"U0ALICE": "Alice", "U0BOB": "Bob"}) as server:
        yield server


@pytest.fixture
async def llm() -> AsyncIterator[FakeLLMServer]:
    async with FakeLLMServer() as server:
        yield server


@asynccontextmanager
async def running(fake: FakeSlack, llm: FakeLLMServer, store_url: str,
                  **slack: Any) -> AsyncIterator[tuple[App, SlackAdapter]]:
    bot = BotConfig.model_validate({
        "name": "helper",
        "llm": {"provider": "openai", "model": "gpt-test", "max_retries": 0,
                "base_url": llm.openai_base_url},
        "platforms": {"slack": {"bot_token": BOT_TOKEN, "signing_secret": SIGNING_SECRET,
                                "port": 0, "api_base_url": fake.api_url, **slack}}})
    observability = Observability.from_config(OpenCellConfig(store=StoreConfig(url=store_url)),
                                              [bot])
    runtime = BotRuntime(bot, observability=observability, env={"OPENAI_API_KEY": "sk-o"})
    app = App([bot], runtimes={bot.name: runtime}, observability=observability)
    await app.start()
    adapter = app.adapters[0]
    assert isinstance(adapter, SlackAdapter)
    adapter.stream_interval = 0.05  # the real 1 s is for Slack; tests go faster
    try:
        yield app, adapter
    finally:
        await app.stop()


def thread_texts(fake: FakeSlack, thread: str) -> list[str]:
    """The bot's messages in ``thread`` as they read now (after ``chat.update``s)."""
    return [fake.texts[(p["channel"], p["_ts"])] for p in fake.posts
            if p.get("thread_ts") == thread]


async def test_a_streamed_answer_is_updated_in_place_as_mrkdwn_and_split_past_the_limit(
        fake: FakeSlack, llm: FakeLLMServer, isolated_store: str) -> None:
    llm.push(streamed(ANSWER, 200, delay=0.01))
    body = event("app_mention")
    ts = body["event"]["ts"]
    async with running(fake, llm, isolated_store) as (_, adapter):
        await post_event(adapter.url or "", body)
        await until(lambda: thread_texts(fake, ts) == slack_messages(ANSWER), WAIT,
                    "the final mrkdwn text")
    updates = fake.calls_to("chat.update")
    assert len(fake.posts) == len(slack_messages(ANSWER)) == 2
    assert updates and all(u.args["ts"] in {p["_ts"] for p in fake.posts} for u in updates)
    assert len(fake.posts[0]["text"]) < 500  # posted at the first piece
    assert "*Plan*" in thread_texts(fake, ts)[0] and "**" not in thread_texts(fake, ts)[0]


async def test_a_stream_that_fails_midway_ends_with_the_polite_error(
        fake: FakeSlack, llm: FakeLLMServer, isolated_store: str) -> None:
    llm.push(streamed("Partial answer that breaks", 8, delay=0.01, break_after=2))
    body = event("app_mention")
    ts = body["event"]["ts"]
    async with running(fake, llm, isolated_store) as (_, adapter):
        await post_event(adapter.url or "", body)
        await until(lambda: any(ERROR in t for t in thread_texts(fake, ts)), WAIT, "the error")
    assert thread_texts(fake, ts) == [f"Partial answer t\n\n{ERROR}"]


async def test_reactions_rate_the_turn_and_removing_one_retracts_it(
        fake: FakeSlack, llm: FakeLLMServer, isolated_store: str) -> None:
    body = event("app_mention")
    ts = body["event"]["ts"]
    async with running(fake, llm, isolated_store) as (app, adapter):
        url = adapter.url or ""
        await post_event(url, body)
        [post] = await fake.wait_posts(1)
        store = app.observability.store
        await until(lambda: store.list_sessions()[0], WAIT, "the session stored")
        [session] = store.list_sessions()[0]
        await post_event(url, reaction_event(post["_ts"], "+1"))
        await until(lambda: feedback_rows.session_feedback(store, session["id"]), WAIT, "👍")
        await post_event(url, reaction_event(post["_ts"], "+1", added=False))
        await until(lambda: not feedback_rows.session_feedback(store, session["id"]), WAIT,
                    "👍 retracted")
        await post_event(url, reaction_event(post["_ts"], "thumbsdown::skin-tone-2"))
        await post_event(url, reaction_event(post["_ts"], "tada"))  # not feedback
        await until(lambda: feedback_rows.session_feedback(store, session["id"]), WAIT, "👎")
        await app.observability.feedback.settle()
        [rating] = feedback_rows.session_feedback(store, session["id"])
    assert (rating["turn"], rating["value"], rating["source"]) == (
        ts, "bad", "thumbsdown::skin-tone-2")


async def test_a_thread_follow_up_from_the_asker_is_answered_without_a_mention(
        fake: FakeSlack, llm: FakeLLMServer, isolated_store: str) -> None:
    body = event("app_mention")
    ts = body["event"]["ts"]
    async with running(fake, llm, isolated_store) as (_, adapter):
        url = adapter.url or ""
        await post_event(url, body)
        await fake.wait_posts(1)
        await post_event(url, event("message_channel", text="from bob", thread_ts=ts,
                                    user="U0BOB"))
        elsewhere = event("message_channel", text="unrelated thread", thread_ts="1.000001")
        await post_event(url, elsewhere)
        follow = event("message_channel", text="and a follow-up?", thread_ts=ts)
        await post_event(url, follow)
        await fake.wait_posts(2)
        marker = event("app_mention", text="<@U0FAKEBOT> marker", thread_ts="1.000001")
        await post_event(url, marker)
        await fake.wait_posts(3)
    asked = [r.last_user_text for r in llm.requests]
    assert asked == ["what is the status of <prod> & staging?", "and a follow-up?", "marker"]


async def test_feedback_command_rates_the_previous_answer(
        fake: FakeSlack, llm: FakeLLMServer, isolated_store: str) -> None:
    body = event("app_mention")
    ts = body["event"]["ts"]
    async with running(fake, llm, isolated_store) as (app, adapter):
        url = adapter.url or ""
        await post_event(url, body)
        await fake.wait_posts(1)
        await post_event(url, event("message_channel", thread_ts=ts,
                                    text="/feedback bad it missed the point"))
        await fake.wait_posts(2)
        await app.observability.feedback.settle()
        store = app.observability.store
        await until(lambda: store.list_sessions()[0], WAIT, "the session stored")
        [session] = store.list_sessions()[0]
        [rating] = feedback_rows.session_feedback(store, session["id"])
    assert fake.posts[1]["text"] == "Thanks for the feedback!"
    assert (rating["turn"], rating["value"], rating["comment"]) == (
        ts, "bad", "it missed the point")
    assert len(llm.requests) == 1  # the command never reached the model
    Store.open(isolated_store).close()
