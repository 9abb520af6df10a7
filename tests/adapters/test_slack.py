"""The Slack adapter end to end: the real App, BotRuntime, slack-bolt and slack-sdk against a
loopback fake of Slack (Web API, Socket Mode, signed Events API requests)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from opencell.adapters._slack_events import RecentKeys
from opencell.adapters._slack_format import MESSAGE_LIMIT, to_mrkdwn
from opencell.adapters.slack import SlackAdapter
from opencell.app import App
from opencell.config import (
    BotConfig,
    LLMConfig,
    OpenCellConfig,
    PlatformsConfig,
    SlackConfig,
    StoreConfig,
)
from opencell.errors import MissingSecretError, PlatformError
from opencell.llm.base import LLMRequest
from opencell.messages import IncomingMessage, Reply
from opencell.observability.observer import Observability
from opencell.runtime import BotRuntime
from opencell.store.store import Store
from tests.fakes.function_llm import FunctionLLM
from tests.fakes.slack_server import (
    APP_TOKEN,
    BOT_ID,
    BOT_TOKEN,
    BOT_USER,
    DATA,
    SIGNING_SECRET,
    TEAM,
    FakeSlack,
    event,
    post_event,
    twin,
    until,
)
from tests.fakes.waiting import WAIT, InFlight

Play = Callable[[LLMRequest], "str | Awaitable[str]"]


def echo(request: LLMRequest) -> str:
    return f"echo: {request.messages[-1].content}"


@dataclass
class Running:
    app: App
    adapter: SlackAdapter
    llm: FunctionLLM

    @property
    def url(self) -> str:
        assert self.adapter.url is not None
        return self.adapter.url

    def asked(self) -> list[str]:
        """What the model was asked, one text per call."""
        return [r.messages[-1].content for r in self.llm.requests]


def slack_bot(fake: FakeSlack, **slack: Any) -> BotConfig:
    settings: dict[str, Any] = {"bot_token": BOT_TOKEN, "signing_secret": SIGNING_SECRET,
                                "port": 0, "api_base_url": fake.api_url}
    settings.update(slack)
    return BotConfig(name="helper", llm=LLMConfig(provider="offline"),
                     platforms=PlatformsConfig(slack=SlackConfig(**settings)))


@asynccontextmanager
async def running(bot: BotConfig, store_url: str, play: Play = echo) -> AsyncIterator[Running]:
    """The real App with one Slack bot whose model is ``play``; stopped gracefully after."""
    observability = Observability.from_config(OpenCellConfig(store=StoreConfig(url=store_url)))
    llm = FunctionLLM(play)
    runtime = BotRuntime(bot, llm=llm, observability=observability)
    app = App([bot], runtimes={bot.name: runtime}, observability=observability)
    await app.start()
    adapter = app.adapters[0]
    assert isinstance(adapter, SlackAdapter)
    try:
        yield Running(app, adapter, llm)
    finally:
        await app.stop()


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(users={"U0ALICE": "Alice", "U0BOB": "Bob"}) as server:
        yield server


def sessions(url: str) -> list[dict[str, Any]]:
    store = Store.open(url)
    try:
        rows, _ = store.list_sessions(sort="started_at", descending=False, limit=100)
        return rows
    finally:
        store.close()


# ------------------------------------------------------------ HTTP mode (Events API)


async def test_signed_app_mention_is_answered_in_its_thread_and_recorded(
        fake: FakeSlack, isolated_store: str) -> None:
    body = event("app_mention")
    ts = body["event"]["ts"]
    async with running(slack_bot(fake), isolated_store) as bot:
        status, _ = await post_event(bot.url, body)
        assert status == 200
        [post] = await fake.wait_posts(1)
        assert post["channel"] == "C0GENERAL"
        assert post["thread_ts"] == ts
        # The mention is stripped and Slack's escapes undone before the model sees the text;
        # the reply goes out as mrkdwn, escaped again.
        assert bot.asked() == ["what is the status of <prod> & staging?"]
        assert post["text"] == "echo: what is the status of &lt;prod&gt; &amp; staging?"
    [session] = sessions(isolated_store)
    assert (session["platform"], session["workspace"], session["channel"], session["thread"],
            session["user_id"], session["user_name"]) == (
        "slack", TEAM, "C0GENERAL", ts, "U0ALICE", "Alice")
    assert session["end_reason"] == "shutdown"


async def test_a_retried_delivery_is_dropped_by_event_id(
        fake: FakeSlack, isolated_store: str, caplog: pytest.LogCaptureFixture) -> None:
    body = event("app_mention")
    async with running(slack_bot(fake), isolated_store) as bot:
        assert (await post_event(bot.url, body))[0] == 200
        await fake.wait_posts(1)
        with caplog.at_level("INFO", logger="opencell.adapters.slack"):
            status, _ = await post_event(bot.url, body, retry_num=1)
        assert status == 200  # acknowledged, so Slack stops retrying
        await bot.app.stop()  # lets any turn the retry might have started finish
    assert len(fake.posts) == 1
    assert len(bot.llm.requests) == 1
    assert f"event_id={body['event_id']}" in caplog.text


@pytest.mark.parametrize("first", ["message", "app_mention"])
async def test_a_mention_delivered_as_message_and_app_mention_is_answered_once(
        fake: FakeSlack, isolated_store: str, first: str) -> None:
    mention = event("app_mention")
    pair = [twin(mention, "message"), mention]
    if first == "app_mention":
        pair.reverse()
    async with running(slack_bot(fake), isolated_store) as bot:
        for body in pair:
            assert (await post_event(bot.url, body))[0] == 200
        await fake.wait_posts(1)
        await bot.app.stop()
    assert len(fake.posts) == 1
    assert len(bot.llm.requests) == 1


async def test_bad_signature_or_stale_timestamp_gets_401_and_no_reply(
        fake: FakeSlack, isolated_store: str) -> None:
    async with running(slack_bot(fake), isolated_store) as bot:
        body = event("app_mention")
        wrong_secret = await post_event(bot.url, body, secret="not-the-signing-secret")
        tampered = await post_event(bot.url, body, signed_body=json.dumps(
            event("app_mention", text="<@U0FAKEBOT> something harmless")))
        stale = await post_event(bot.url, body, timestamp=int(time.time()) - 10 * 60)
        assert [wrong_secret[0], tampered[0], stale[0]] == [401, 401, 401]
        # The adapter is still serving: a correctly signed request is answered.
        assert (await post_event(bot.url, event("message_im")))[0] == 200
        await fake.wait_posts(1)
        await bot.app.stop()
    assert [p["channel"] for p in fake.posts] == ["D0BOBDM"]
    assert bot.asked() == ["hi, can you help me with my invoice?"]


async def test_every_delivered_event_type_is_acknowledged_and_only_people_are_answered(
        fake: FakeSlack, isolated_store: str) -> None:
    ignored = [
        event("app_home_opened"), event("reaction_added"), event("message_changed"),
        event("bot_message"),  # a legacy integration
        event("app_mention_from_bot"),  # another app's bot user mentioning this one
        twin(event("app_mention_from_bot"), "message"),
        event("message_channel"),  # no mention, respond_to: mentions
        event("message_im", user=BOT_USER, text="my own words"),  # the bot itself
    ]
    async with running(slack_bot(fake), isolated_store) as bot:
        for body in ignored:
            status, text = await post_event(bot.url, body)
            assert status == 200, (body["event"]["type"], status, text)
        challenge = json.loads((DATA / "url_verification.json").read_text())
        status, text = await post_event(bot.url, challenge)
        assert status == 200 and challenge["challenge"] in text
        assert (await post_event(bot.url, event("message_im")))[0] == 200
        await fake.wait_posts(1)
        await bot.app.stop()
    assert [p["channel"] for p in fake.posts] == ["D0BOBDM"]
    assert len(bot.llm.requests) == 1


async def test_with_ignore_bots_off_other_bots_are_answered_but_never_itself(
        fake: FakeSlack, isolated_store: str) -> None:
    from_bot = event("app_mention_from_bot")
    async with running(slack_bot(fake, ignore_bots=False), isolated_store) as bot:
        await post_event(bot.url, event("message_im", user=BOT_USER, text="my own words"))
        await post_event(bot.url, event("message_im", user="U0SELF2", bot_id=BOT_ID,
                                        text="also mine"))
        await post_event(bot.url, twin(from_bot, "message"))
        await post_event(bot.url, from_bot)
        await fake.wait_posts(1)
        await bot.app.stop()
    assert [p["thread_ts"] for p in fake.posts] == [from_bot["event"]["ts"]]
    assert bot.asked() == ["nightly report is ready"]
    [session] = sessions(isolated_store)
    assert session["user_id"] == "U0OTHERBOT"


async def test_a_direct_message_is_one_conversation_answered_at_top_level(
        fake: FakeSlack, isolated_store: str) -> None:
    async with running(slack_bot(fake), isolated_store) as bot:
        await post_event(bot.url, event("message_im"))
        await fake.wait_posts(1)
        await post_event(bot.url, event("message_im", text="and the second one?"))
        posts = await fake.wait_posts(2)
    assert [("thread_ts" in p, p["channel"]) for p in posts] == [(False, "D0BOBDM")] * 2
    [session] = sessions(isolated_store)
    assert (session["channel"], session["thread"], session["user_id"], session["user_name"],
            session["messages"]) == ("D0BOBDM", "", "U0BOB", "Bob", 2)


async def test_respond_to_all_answers_channel_messages_and_a_thread_is_its_conversation(
        fake: FakeSlack, isolated_store: str) -> None:
    top = event("message_channel")
    parent = top["event"]["ts"]
    reply_in_thread = event("message_channel", text="and in the thread?", thread_ts=parent)
    async with running(slack_bot(fake, respond_to="all"), isolated_store) as bot:
        await post_event(bot.url, event("channel_join"))  # a notice, not someone talking
        await post_event(bot.url, top)
        await fake.wait_posts(1)
        await post_event(bot.url, reply_in_thread)
        await fake.wait_posts(2)
        await bot.app.stop()
    assert [p["thread_ts"] for p in fake.posts] == [parent, parent]
    assert bot.asked() == ["has anyone seen the deploy dashboard today?", "and in the thread?"]
    [session] = sessions(isolated_store)
    assert (session["thread"], session["messages"]) == (parent, 2)


async def test_respond_to_dm_and_the_channel_allowlist_leave_other_channels_alone(
        fake: FakeSlack, isolated_store: str) -> None:
    async with running(slack_bot(fake, respond_to="dm"), isolated_store) as bot:
        await post_event(bot.url, event("app_mention"))
        await post_event(bot.url, event("message_im"))
        await fake.wait_posts(1)
        await bot.app.stop()
    assert [p["channel"] for p in fake.posts] == ["D0BOBDM"]
    fake.calls.clear()
    async with running(slack_bot(fake, channels=["C0ALLOWED"]), isolated_store) as bot:
        await post_event(bot.url, event("app_mention"))  # in C0GENERAL
        await post_event(bot.url, event("app_mention", channel="C0ALLOWED"))
        await fake.wait_posts(1)
        await bot.app.stop()
    assert [p["channel"] for p in fake.posts] == ["C0ALLOWED"]


# ------------------------------------------------------------ Socket Mode


async def test_socket_mode_acks_envelopes_answers_and_reconnects_on_disconnect(
        fake: FakeSlack, isolated_store: str) -> None:
    bot_config = slack_bot(fake, app_token=APP_TOKEN, signing_secret=None)
    async with running(bot_config, isolated_store) as bot:
        assert bot.adapter.url is None  # nothing listens in Socket Mode
        await fake.wait_connections(1)
        body = event("app_mention")
        envelope = await fake.send_envelope(body)
        assert await fake.wait_ack(envelope) == {"envelope_id": envelope}
        [post] = await fake.wait_posts(1)
        assert post["thread_ts"] == body["event"]["ts"]

        await fake.disconnect()
        await fake.wait_connections(2)
        assert len(fake.calls_to("apps.connections.open")) == 2
        later = event("message_im", text="still there?")
        await fake.wait_ack(await fake.send_envelope(later))
        posts = await fake.wait_posts(2)
        assert posts[1]["channel"] == "D0BOBDM"
        # Event types without a use are acked too (else Slack redelivers them).
        await fake.wait_ack(await fake.send_envelope(event("app_home_opened")))
        # A redelivery (retry_attempt 1) is acked and dropped.
        await fake.wait_ack(await fake.send_envelope(later, retry_attempt=1))
        await bot.app.stop()
    assert bot.asked() == ["what is the status of <prod> & staging?", "still there?"]
    assert len(fake.posts) == 2


# ------------------------------------------------------------ replies


async def test_a_ratelimited_post_is_retried_after_retry_after_and_delivered_once(
        fake: FakeSlack, isolated_store: str) -> None:
    fake.ratelimit("chat.postMessage", retry_after=1)
    async with running(slack_bot(fake), isolated_store) as bot:
        await post_event(bot.url, event("app_mention"))
        await fake.wait_posts(1)
        await bot.app.stop()
    first, second = fake.calls_to("chat.postMessage")
    assert (first.args["_answered"], second.args["_answered"]) == ("ratelimited", "ok")
    assert second.at - first.at >= 1.0
    assert len(fake.posts) == 1


async def test_a_long_reply_is_split_under_slacks_limit_in_the_same_thread(
        fake: FakeSlack, isolated_store: str) -> None:
    paragraphs = [" ".join(f"word{p}_{w}" for w in range(120)) for p in range(12)]
    long_answer = "\n\n".join(paragraphs)  # about 11,000 characters
    body = event("app_mention")
    async with running(slack_bot(fake), isolated_store, lambda _: long_answer) as bot:
        await post_event(bot.url, body)
        await until(lambda: len(fake.posts) >= 3, WAIT, "the pieces of the long reply")
        await bot.app.stop()
    posts = fake.posts
    assert len(posts) >= 3
    assert all(len(p["text"]) <= MESSAGE_LIMIT for p in posts)
    assert {p["thread_ts"] for p in posts} == {body["event"]["ts"]}
    assert " ".join(p["text"] for p in posts).split() == long_answer.split()


MARKDOWN = """# Release notes

Deploys are **faster** now; see [the runbook](https://example.com/run?a=1&b=2).

- first *point*
- second point

```python
if a < b and c:
    print("**not bold**")
```"""


def test_markdown_becomes_slack_mrkdwn() -> None:
    text = to_mrkdwn(MARKDOWN)
    assert text.startswith("*Release notes*\n")  # heading → bold line
    assert "Deploys are *faster* now" in text  # bold
    assert "<https://example.com/run?a=1&b=2|the runbook>" in text  # link
    assert "•   first _point_\n•   second point" in text  # list
    # Code keeps its Markdown as written; Slack's three control characters are escaped
    # there too (Slack would read "<b" … ">" as markup even inside code).
    assert '```\nif a &lt; b and c:\n    print("**not bold**")\n```' in text
    assert "**" not in text.split("```")[0] and "# " not in text  # no raw Markdown left
    assert to_mrkdwn("hi <@U0ALICE>, 3 > 2 & 1 < 2") == "hi <@U0ALICE>, 3 &gt; 2 &amp; 1 &lt; 2"
    assert to_mrkdwn("run `a && b > log`") == "run `a &amp;&amp; b &gt; log`"


async def test_the_models_markdown_is_posted_as_mrkdwn(
        fake: FakeSlack, isolated_store: str) -> None:
    async with running(slack_bot(fake), isolated_store, lambda _: MARKDOWN) as bot:
        await post_event(bot.url, event("app_mention"))
        [post] = await fake.wait_posts(1)
    assert post["text"] == to_mrkdwn(MARKDOWN)
    assert "*faster*" in post["text"] and "**" not in post["text"].split("```")[0]


# ------------------------------------------------------------ concurrency and stopping


async def test_twenty_conversations_at_once_take_about_one_turn(
        fake: FakeSlack, isolated_store: str) -> None:
    gauge = InFlight()

    async def together(request: LLMRequest) -> str:
        await gauge.together(20)  # each model call waits until all twenty are in flight
        return echo(request)

    bodies = [event("app_mention", user=f"U0USER{i:02d}", channel=f"C0ROOM{i:02d}",
                    text=f"<@{BOT_USER}> question {i}") for i in range(20)]
    async with running(slack_bot(fake), isolated_store, together) as bot:
        statuses = await asyncio.gather(*(post_event(bot.url, b) for b in bodies))
        posts = await fake.wait_posts(20)
    assert statuses == [(200, "")] * 20
    assert gauge.most == 20, f"at most {gauge.most} model calls at once: not concurrent"
    answered = {p["thread_ts"]: p["text"] for p in posts}
    assert answered == {b["event"]["ts"]: f"echo: question {i}" for i, b in enumerate(bodies)}
    assert len(sessions(isolated_store)) == 20


async def test_replies_in_one_conversation_come_in_order(
        fake: FakeSlack, isolated_store: str) -> None:
    delays = iter([0.2, 0.0, 0.1, 0.0, 0.05])

    async def uneven(request: LLMRequest) -> str:
        await asyncio.sleep(next(delays))
        return echo(request)

    async with running(slack_bot(fake), isolated_store, uneven) as bot:
        for n in range(5):
            assert (await post_event(bot.url, event("message_im", text=f"m{n}")))[0] == 200
        posts = await fake.wait_posts(5)
    assert [p["text"] for p in posts] == [f"echo: m{n}" for n in range(5)]


async def test_a_graceful_stop_during_a_turn_still_posts_the_reply(
        fake: FakeSlack, isolated_store: str) -> None:
    release = asyncio.Event()

    async def thoughtful(request: LLMRequest) -> str:
        await release.wait()
        return "worth the wait"

    async with running(slack_bot(fake), isolated_store, thoughtful) as bot:
        await post_event(bot.url, event("app_mention"))
        await until(lambda: bool(bot.llm.requests), WAIT, "the model call")
        assert fake.posts == []
        # The model answers once stop() has begun (it runs up to its first wait first).
        asyncio.get_running_loop().call_soon(release.set)
        await bot.app.stop(timeout=30)
        assert [p["text"] for p in fake.posts] == ["worth the wait"]
    [session] = sessions(isolated_store)
    assert (session["messages"], session["end_reason"]) == (1, "shutdown")


# ------------------------------------------------------------ start-up errors


async def test_a_rejected_bot_token_is_one_clear_line(
        fake: FakeSlack, isolated_store: str) -> None:
    fake.auth_error = "invalid_auth"
    bot = slack_bot(fake)
    app = App([bot], runtimes={bot.name: BotRuntime(bot, llm=FunctionLLM(echo))})
    with pytest.raises(PlatformError) as caught:
        await app.start()
    await app.stop()
    message = str(caught.value)
    assert "\n" not in message
    assert "'helper'" in message and "SLACK_BOT_TOKEN" in message and "invalid_auth" in message
    assert BOT_TOKEN not in message


async def test_a_rejected_app_token_is_one_clear_line(
        fake: FakeSlack, isolated_store: str) -> None:
    bot = slack_bot(fake, app_token="xapp-1-A0FAKEAPP-wrong", signing_secret=None)
    adapter = SlackAdapter(bot)

    async def nobody(message: IncomingMessage) -> Reply | None:
        return None

    with pytest.raises(PlatformError, match="SLACK_APP_TOKEN") as caught:
        await adapter.start(nobody)
    assert "'helper'" in str(caught.value) and "\n" not in str(caught.value)
    assert fake.connections == 0


async def test_start_up_logs_no_warning_and_no_token(
        fake: FakeSlack, isolated_store: str, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)  # bolt reads it by itself
    with caplog.at_level("DEBUG", logger="opencell"):
        async with running(slack_bot(fake), isolated_store) as bot:
            await post_event(bot.url, event("app_mention"))
            await fake.wait_posts(1)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert "slack ready bot=helper mode=http" in caplog.text
    assert BOT_TOKEN not in caplog.text and SIGNING_SECRET not in caplog.text


def test_an_empty_bot_token_names_the_variable_and_the_bot(fake: FakeSlack) -> None:
    bot = slack_bot(fake, bot_token="")
    with pytest.raises(MissingSecretError) as caught:
        App([bot], runtimes={bot.name: BotRuntime(bot, llm=FunctionLLM(echo))})
    assert caught.value.variable == "SLACK_BOT_TOKEN" and caught.value.bot == "helper"


# ------------------------------------------------------------ pieces


def test_recent_keys_forget_after_their_ttl_and_stay_bounded() -> None:
    now = [0.0]
    seen = RecentKeys(ttl=60, max_size=3, clock=lambda: now[0])
    assert seen.add("a") and not seen.add("a")
    now[0] = 61
    assert seen.add("a")  # expired, so new again
    for key in "bcd":
        assert seen.add(key)
    assert len(seen) == 3  # "a" made room
    assert seen.add("a")


def test_nothing_outside_the_adapters_imports_slack() -> None:
    package = Path(__file__).resolve().parents[2] / "opencell"
    offenders = [str(path.relative_to(package)) for path in package.rglob("*.py")
                 if path.parent.name != "adapters"
                 and re.search(r"^\s*(from|import)\s+slack", path.read_text(), re.M)]
    assert offenders == []


async def test_events_arriving_during_a_graceful_stop_are_refused_so_slack_retries(
        fake: FakeSlack, isolated_store: str) -> None:
    """Rolling restarts: while a stopping worker drains its turns, a new event gets 503
    (Slack then retries it, and the load balancer sends the retry to another worker)
    instead of a 200 for a message that would be dropped."""
    release = asyncio.Event()

    async def thoughtful(request: LLMRequest) -> str:
        await release.wait()
        return "worth the wait"

    async with running(slack_bot(fake), isolated_store, thoughtful) as bot:
        await post_event(bot.url, event("app_mention"))
        await until(lambda: bool(bot.llm.requests), WAIT, "the model call")
        stopping = asyncio.create_task(bot.app.stop(timeout=30))
        await until(lambda: not bot.adapter.accepting, WAIT, "the stop to begin")
        status, _ = await post_event(bot.url, event("app_mention", text="<@U0FAKEBOT> late"))
        assert status == 503
        release.set()
        await stopping
        assert [p["text"] for p in fake.posts] == ["worth the wait"]
