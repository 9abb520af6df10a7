"""A turn's record says what the person actually received: nothing when shutdown cut the turn
off (no invented apology), the apology only when it was really posted, and nothing when posting
failed. Real App, slack-bolt and slack-sdk against the loopback fake of Slack; one test sends a
real SIGTERM to a real `opencell run` whose model takes 30 s."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

import opencell.adapters.slack as slack_module
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
from opencell.llm.base import LLMRequest
from opencell.observability.observer import Observability
from opencell.runtime import BotRuntime
from opencell.store.store import Store
from tests.cli.test_sigterm import until_listening
from tests.conftest import REPO, clean_env, opencell
from tests.fakes.function_llm import FunctionLLM
from tests.fakes.llm_server import FakeLLMServer, delayed, reply
from tests.fakes.ports import free_port
from tests.fakes.slack_server import BOT_TOKEN, SIGNING_SECRET, FakeSlack, event, post_event, until

APOLOGY = "Sorry, something broke on my side."


@asynccontextmanager
async def slack_app(fake: FakeSlack, store_url: str,
                    play: Callable[[LLMRequest], Awaitable[str]]) -> AsyncIterator[App]:
    bot = BotConfig(name="helper", llm=LLMConfig(provider="offline"), error_message=APOLOGY,
                    platforms=PlatformsConfig(slack=SlackConfig(
                        bot_token=BOT_TOKEN, signing_secret=SIGNING_SECRET, port=0,
                        api_base_url=fake.api_url)))
    observability = Observability.from_config(OpenCellConfig(store=StoreConfig(url=store_url)))
    runtime = BotRuntime(bot, llm=FunctionLLM(play), observability=observability)
    app = App([bot], runtimes={bot.name: runtime}, observability=observability)
    await app.start()
    try:
        yield app
    finally:
        await app.stop()


def url_of(app: App) -> str:
    adapter = app.adapters[0]
    assert isinstance(adapter, SlackAdapter) and adapter.url is not None
    return adapter.url


def recorded(store_url: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The only session and its timeline."""
    store = Store.open(store_url)
    try:
        [session], _ = store.list_sessions(sort="started_at", descending=False, limit=10)
        return session, store.timeline(session["id"])
    finally:
        store.close()


def of_kind(timeline: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in timeline if e["kind"] == kind]


async def test_a_turn_cut_off_by_shutdown_records_that_nothing_was_received(
        isolated_store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slack_module, "STOP_GRACE", 0.2)  # the turn would take 30 s
    thinking = asyncio.Event()

    async def slow(request: LLMRequest) -> str:
        thinking.set()
        await asyncio.sleep(30)
        return "far too late"

    async with FakeSlack() as fake:
        async with slack_app(fake, isolated_store, slow) as app:
            assert (await post_event(url_of(app), event("app_mention")))[0] == 200
            await asyncio.wait_for(thinking.wait(), 5)
            await app.stop(timeout=0.2)
        assert fake.posts == []
    session, timeline = recorded(isolated_store)
    assert (session["end_reason"], session["status"], session["messages"]) == (
        "shutdown", "failed", 1)
    [message] = of_kind(timeline, "message")
    assert message["output"] is None, "nothing was sent, so nothing may be recorded as sent"
    assert message["success"] is False
    [error] = of_kind(timeline, "error")
    assert "shut" in error["message"] and "received nothing" in error["message"]
    assert error["context"]["delivery"] == "cut_off"


async def test_an_apology_that_was_posted_is_recorded_as_the_output(
        isolated_store: str) -> None:
    async def broken(request: LLMRequest) -> str:
        raise RuntimeError("the model exploded")

    async with FakeSlack() as fake:
        async with slack_app(fake, isolated_store, broken) as app:
            assert (await post_event(url_of(app), event("app_mention")))[0] == 200
            [post] = await fake.wait_posts(1)
        assert post["text"] == APOLOGY
    session, timeline = recorded(isolated_store)
    [message] = of_kind(timeline, "message")
    assert (message["output"], message["success"]) == (APOLOGY, False)
    assert session["end_reason"] == "shutdown"


async def test_a_reply_slack_refused_is_not_recorded_as_received(
        isolated_store: str) -> None:
    async def fine(request: LLMRequest) -> str:
        return "a perfectly good answer"

    async with FakeSlack() as fake:
        for _ in range(4):  # the first post and all three of slack-sdk's retries
            fake.ratelimit("chat.postMessage", retry_after=0)
        async with slack_app(fake, isolated_store, fine) as app:
            assert (await post_event(url_of(app), event("app_mention")))[0] == 200
            await until(lambda: len(fake.calls_to("chat.postMessage")) == 4, 10,
                        "four refused posts")
        posts = fake.calls_to("chat.postMessage")
        assert [c.args["_answered"] for c in posts] == ["ratelimited"] * 4
    _, timeline = recorded(isolated_store)
    [message] = of_kind(timeline, "message")
    assert (message["output"], message["success"]) == (None, False)
    [error] = of_kind(timeline, "error")
    assert error["context"]["delivery"] == "send_failed"
    assert error["context"]["undelivered"] == "a perfectly good answer"


@pytest.mark.slow  # the App's own stop budget: 10 s for turns to finish, then 5 s of grace
async def test_sigterm_during_a_30s_turn_records_no_reply_and_a_shutdown_end(
        tmp_path: Path) -> None:
    port = free_port()
    async with FakeSlack() as slack, FakeLLMServer([delayed(30, reply("never sent"))]) as llm:
        bot = tmp_path / "slackbot.yaml"
        bot.write_text(
            "name: slackbot\nllm: {provider: claude, max_retries: 0, timeout: 60s}\n"
            "platforms:\n  slack:\n"
            f"    bot_token: {BOT_TOKEN}\n    signing_secret: {SIGNING_SECRET}\n"
            f"    host: 127.0.0.1\n    port: {port}\n    api_base_url: {slack.api_url}\n")
        env = clean_env(ANTHROPIC_API_KEY="sk-ant-test", ANTHROPIC_BASE_URL=llm.url)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "opencell", "run", str(bot), cwd=REPO, env=env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        try:
            await until_listening(port)
            status, _ = await post_event(f"http://127.0.0.1:{port}/slack/events",
                                         event("app_mention", text="<@U0FAKEBOT> hello"))
            assert status == 200
            deadline = time.monotonic() + 10
            while not llm.requests and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert llm.requests, "the turn never reached the model"
            proc.send_signal(signal.SIGTERM)  # 30 s before the model would answer
            code = await asyncio.wait_for(proc.wait(), 28)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        stderr = (await proc.stderr.read()).decode() if proc.stderr else ""
        assert code == 0, stderr
        assert "Traceback" not in stderr
        assert slack.posts == []
    [session] = json.loads(opencell("sessions", "--json").stdout)["sessions"]
    assert (session["end_reason"], session["status"], session["messages"]) == (
        "shutdown", "failed", 1)
    detail = json.loads(opencell("session", session["id"], "--json").stdout)
    [message] = [e for e in detail["timeline"] if e["kind"] == "message"]
    assert message["output"] is None
