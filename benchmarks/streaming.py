"""Benchmark: streamed replies — time to the first visible piece through OpenCell vs a bare
SDK stream, and the edit rate of a streamed message under a fast stream.

Run: python -m benchmarks.streaming [--quick]

Time to first visible piece: the fake LLM (Anthropic SSE, on loopback, in the same loop) sends
the first text delta at once and the rest every 2 ms. OpenCell side: the real App, BotRuntime
and adapter (the anthropic SDK's ``messages.stream`` through ``RecordingLLM``, recording into
SQLite). Bare side, alternated message by message in the same run against the same fakes: the
anthropic SDK's ``messages.stream`` called directly, showing its first delta — written to the
terminal (console), posted with discord.py ``message.reply`` (Discord), posted with slack-sdk
``chat_postMessage`` (Slack). Measured from the message being handed over (console: the
adapter's ``handle``; Discord: the gateway dispatch; Slack: the signed event POST) to the
first piece reaching the terminal or the fake platform. Target: OpenCell p50 ≤ bare p50 + 5 ms.
Between rounds the recorder is flushed (each round starts quiet) and the edit interval is
50 ms (a round's final edit need not wait a second); neither touches the first piece.

Edit rate: one answer streamed as 1,500 deltas 2 ms apart (about 3 s) on Discord and Slack with
the real one-second interval; every update of each message (the first post, then edits) is
stamped at the fake. Target: never more than one update of a message within a second (the
stream's final update may follow at once only when fewer than three updates came in the
last three seconds, which a three-second stream never has).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import anthropic  # noqa: E402
import discord  # noqa: E402
import yarl  # noqa: E402
from aiohttp import web  # noqa: E402

from benchmarks._report import Figure, median, percentile, run_main  # noqa: E402
from benchmarks.platforms import _Discord as _WholeDiscord  # noqa: E402
from benchmarks.platforms import _Slack as _WholeSlack  # noqa: E402
from opencell.adapters.console import ConsoleAdapter  # noqa: E402
from opencell.adapters.discord import DiscordAdapter  # noqa: E402
from opencell.app import App  # noqa: E402
from opencell.config import BotConfig, OpenCellConfig, StoreConfig  # noqa: E402
from opencell.messages import IncomingMessage  # noqa: E402
from opencell.observability.observer import Observability  # noqa: E402
from opencell.runtime import BotRuntime  # noqa: E402
from tests.fakes.discord_server import GENERAL_ID  # noqa: E402
from tests.fakes.llm_server import FakeLLMServer, RecordedRequest, Step, streamed  # noqa: E402
from tests.fakes.slack_server import (  # noqa: E402
    BOT_TOKEN,
    BOT_USER,
    SIGNING_SECRET,
    event,
    signature,  # noqa: E402
)

TARGET_MS = 5.0
QUICK_EDITS = 0.05
"""The TTFT rounds' edit interval: the first piece is posted at once whatever it is, and a
short interval keeps each round's final edit from waiting a second."""


async def _settle(adapter: Any, observability: Observability) -> None:
    """The turn is over and its records are stored, so the next round starts quiet (the
    writer thread's batch would otherwise land in the middle of the next measurement)."""
    await adapter.drain(30)
    await asyncio.to_thread(observability.recorder.flush, 10)
ANSWER = "A streamed answer, written a few words at a time, " * 8
MODEL = "claude-bench"
KEY = "sk-ant-bench"


def _play(request: RecordedRequest) -> Step:
    return streamed(ANSWER, 24, delay=0.002)



class _Discord(_WholeDiscord):
    ends_with = None  # the first visible piece, not the whole answer


class _Slack(_WholeSlack):
    ends_with = None


def _bot(llm: FakeLLMServer, **platforms: Any) -> BotConfig:
    return BotConfig.model_validate({
        "name": "bench", "llm": {"provider": "claude", "model": MODEL, "base_url": llm.url,
                                 "max_retries": 0},
        "platforms": platforms or {"console": {}}})


async def _bare_stream(client: anthropic.AsyncAnthropic, text: str, first: Any) -> None:
    """The bare SDK stream: ``first(piece)`` with the first delta, the rest read to the end."""
    shown = False
    async with client.messages.stream(model=MODEL, max_tokens=1024,
                                      messages=[{"role": "user", "content": text}]) as stream:
        async for piece in stream.text_stream:
            if not shown:
                shown = True
                await first(piece)


class _Stamped(io.StringIO):
    """A terminal that stamps its first write."""

    first: float | None = None

    def write(self, text: str) -> int:
        if self.first is None and text.strip():
            self.first = time.perf_counter()
        return super().write(text)

    def isatty(self) -> bool:
        return True  # an interactive terminal: the console streams there


async def _console(count: int, warm: int, store_url: str, llm: FakeLLMServer
                   ) -> tuple[list[float], list[float]]:
    bot = _bot(llm)
    observability = Observability.from_config(OpenCellConfig(store=StoreConfig(url=store_url)),
                                              [bot])
    runtime = BotRuntime(bot, observability=observability, env={"ANTHROPIC_API_KEY": KEY})
    bare = anthropic.AsyncAnthropic(api_key=KEY, base_url=llm.url, max_retries=0)
    ours: list[float] = []
    theirs: list[float] = []
    try:
        for i in range(warm + count):
            out = _Stamped()
            adapter = ConsoleAdapter(bot, stdin=_Stamped(""), stdout=out)
            message = IncomingMessage(key=adapter.key, text=f"question {i}", user_id="you",
                                      message_id=str(i))
            start = time.perf_counter()
            await adapter.handle(message, runtime.dispatch)
            await asyncio.to_thread(observability.recorder.flush, 10)
            assert out.first is not None
            if i >= warm:
                ours.append((out.first - start) * 1000)

            screen = _Stamped()

            async def show(piece: str, screen: _Stamped = screen) -> None:
                screen.write(piece)

            start = time.perf_counter()
            await _bare_stream(bare, f"question {i}", show)
            assert screen.first is not None
            if i >= warm:
                theirs.append((screen.first - start) * 1000)
    finally:
        await runtime.aclose()
        await bare.close()
        observability.close()
    return ours, theirs


async def _discord(count: int, warm: int, store_url: str, llm: FakeLLMServer
                   ) -> tuple[list[float], list[float]]:
    fake = _Discord()
    await fake.start()
    saved = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    saved_env = os.environ.pop("OPENCELL_DISCORD_API_BASE", None)
    discord.http.Route.BASE = fake.api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway)
    app, bare, bare_task = None, None, None
    sdk = anthropic.AsyncAnthropic(api_key=KEY, base_url=llm.url, max_retries=0)
    try:
        bot = _bot(llm, discord={"token": fake.token})
        observability = Observability.from_config(
            OpenCellConfig(store=StoreConfig(url=store_url)), [bot])
        runtime = BotRuntime(bot, observability=observability, env={"ANTHROPIC_API_KEY": KEY})
        app = App([bot], runtimes={bot.name: runtime}, observability=observability,
                  adapter_factory=lambda b, _: DiscordAdapter(b, guild_ready_timeout=0.05))
        await app.start()
        adapter, ours_ws = app.adapters[0], fake.clients[0]
        adapter.stream_interval = QUICK_EDITS
        intents = discord.Intents.default()
        intents.message_content = True
        bare = discord.Client(intents=intents, guild_ready_timeout=0.05)
        bare_idle = asyncio.Event()

        @bare.event
        async def on_message(message: discord.Message) -> None:
            if bare is None or message.author == bare.user:
                return
            bare_idle.clear()
            try:
                async def first(piece: str) -> None:
                    await message.reply(piece)

                await _bare_stream(sdk, message.content, first)
            finally:
                bare_idle.set()

        bare_task = asyncio.create_task(bare.start(fake.token))
        await asyncio.wait_for(bare.wait_until_ready(), 10)
        bare_ws = fake.clients[1]
        ours: list[float] = []
        theirs: list[float] = []
        for i in range(warm + count):
            data = fake.message(f"question {i}", channel=GENERAL_ID)
            took = await fake.round_trip(lambda d=data: fake.send_to(ours_ws, d),
                                         lambda: _settle(adapter, observability))
            data = fake.message(f"question {i}", channel=GENERAL_ID)
            bare_took = await fake.round_trip(lambda d=data: fake.send_to(bare_ws, d),
                                              bare_idle.wait)
            if i >= warm:
                ours.append(took)
                theirs.append(bare_took)
        return ours, theirs
    finally:
        if bare is not None:
            await bare.close()
        if bare_task is not None:
            await asyncio.gather(bare_task, return_exceptions=True)
        if app is not None:
            await app.stop(timeout=5)
        await sdk.close()
        await fake.close()
        discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = saved
        if saved_env is not None:
            os.environ["OPENCELL_DISCORD_API_BASE"] = saved_env


async def _slack(count: int, warm: int, store_url: str, llm: FakeLLMServer
                 ) -> tuple[list[float], list[float]]:
    from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
    from slack_bolt.async_app import AsyncApp
    from slack_sdk.web.async_client import AsyncWebClient

    fake = _Slack(users={"U0ALICE": "Alice"})
    await fake.start()
    sdk = anthropic.AsyncAnthropic(api_key=KEY, base_url=llm.url, max_retries=0)
    app, runner = None, None
    import aiohttp

    session = aiohttp.ClientSession()
    try:
        bot = _bot(llm, slack={"bot_token": BOT_TOKEN, "signing_secret": SIGNING_SECRET,
                               "port": 0, "api_base_url": fake.api_url})
        observability = Observability.from_config(
            OpenCellConfig(store=StoreConfig(url=store_url)), [bot])
        runtime = BotRuntime(bot, observability=observability, env={"ANTHROPIC_API_KEY": KEY})
        app = App([bot], runtimes={bot.name: runtime}, observability=observability)
        await app.start()
        adapter = app.adapters[0]
        adapter.stream_interval = QUICK_EDITS
        ours_url = str(getattr(adapter, "url", ""))

        bolt = AsyncApp(signing_secret=SIGNING_SECRET,
                        client=AsyncWebClient(token=BOT_TOKEN, base_url=fake.api_url))
        idle = asyncio.Event()

        @bolt.event("app_mention")
        async def on_mention(event: dict[str, Any], client: AsyncWebClient) -> None:
            idle.clear()
            try:
                async def first(piece: str) -> None:
                    await client.chat_postMessage(channel=event["channel"], text=piece,
                                                  thread_ts=event.get("thread_ts")
                                                  or event["ts"])

                await _bare_stream(sdk, str(event.get("text")), first)
            finally:
                idle.set()

        async def events(request: web.Request) -> web.Response:
            return await to_aiohttp_response(await bolt.async_dispatch(
                await to_bolt_request(request)))

        web_app = web.Application()
        web_app.router.add_post("/slack/events", events)
        runner = web.AppRunner(web_app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        bare_url = f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events"

        async def post(url: str, raw: str) -> None:
            ts = str(int(time.time()))
            headers = {"Content-Type": "application/json", "X-Slack-Request-Timestamp": ts,
                       "X-Slack-Signature": signature(SIGNING_SECRET, ts, raw)}
            async with session.post(url, data=raw.encode(), headers=headers) as response:
                await response.read()

        def mention(i: int) -> str:
            return json.dumps(event("app_mention", text=f"<@{BOT_USER}> question {i}"))

        ours: list[float] = []
        theirs: list[float] = []
        for i in range(warm + count):
            raw = mention(i)
            took = await fake.round_trip(lambda r=raw: post(ours_url, r),
                                         lambda: _settle(adapter, observability))
            raw = mention(i)
            bare_took = await fake.round_trip(lambda r=raw: post(bare_url, r), idle.wait)
            if i >= warm:
                ours.append(took)
                theirs.append(bare_took)
        return ours, theirs
    finally:
        if runner is not None:
            await runner.cleanup()
        if app is not None:
            await app.stop(timeout=5)
        await session.close()
        await sdk.close()
        await fake.close()


def _max_rate(stamps: Sequence[float]) -> tuple[int, float]:
    """(most updates within any one second, smallest gap between two updates in s)."""
    ordered = sorted(stamps)
    most = 0
    for i, start in enumerate(ordered):
        most = max(most, sum(1 for t in ordered[i:] if t - start < 1.0))
    gaps = [b - a for a, b in zip(ordered, ordered[1:], strict=False)]
    return most, min(gaps) if gaps else float("inf")


async def _edit_rate(store_url: str, llm: FakeLLMServer) -> dict[str, tuple[int, float, int]]:
    """{platform: (max updates/s of one message, smallest gap s, updates)} for a fast
    stream with the real interval."""
    long_answer = "word " * 1500
    llm.model = lambda request: streamed(long_answer, 5, delay=0.002)
    out: dict[str, tuple[int, float, int]] = {}
    fake = _Discord()
    await fake.start()
    saved = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    discord.http.Route.BASE = fake.api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway)
    try:
        bot = _bot(llm, discord={"token": fake.token})
        observability = Observability.from_config(
            OpenCellConfig(store=StoreConfig(url=store_url)), [bot])
        runtime = BotRuntime(bot, observability=observability, env={"ANTHROPIC_API_KEY": KEY})
        app = App([bot], runtimes={bot.name: runtime}, observability=observability,
                  adapter_factory=lambda b, _: DiscordAdapter(b, guild_ready_timeout=0.05))
        await app.start()
        try:
            await fake.dispatch("MESSAGE_CREATE", fake.message("a long one"))
            await asyncio.sleep(0.2)
            await app.adapters[0].drain(60)
        finally:
            await app.stop(timeout=5)
        per_message: dict[str, list[float]] = {}
        for posted, at in zip(fake.posts, fake.post_times, strict=True):
            per_message.setdefault(posted.message_id, []).append(at)
        for edit in fake.edits:
            per_message.setdefault(edit.message_id, []).append(edit.at)
        rates = [_max_rate(stamps) for stamps in per_message.values()]
        out["Discord"] = (max(r[0] for r in rates), min(r[1] for r in rates),
                          sum(len(s) for s in per_message.values()))
    finally:
        await fake.close()
        discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = saved
    slack = _Slack(users={"U0ALICE": "Alice"})
    await slack.start()
    try:
        bot = _bot(llm, slack={"bot_token": BOT_TOKEN, "signing_secret": SIGNING_SECRET,
                               "port": 0, "api_base_url": slack.api_url})
        observability = Observability.from_config(
            OpenCellConfig(store=StoreConfig(url=store_url)), [bot])
        runtime = BotRuntime(bot, observability=observability, env={"ANTHROPIC_API_KEY": KEY})
        app = App([bot], runtimes={bot.name: runtime}, observability=observability)
        await app.start()
        try:
            from tests.fakes.slack_server import post_event

            await post_event(str(getattr(app.adapters[0], "url", "")),
                             event("app_mention", text=f"<@{BOT_USER}> a long one"))
            await asyncio.sleep(0.2)
            await app.adapters[0].drain(60)
        finally:
            await app.stop(timeout=5)
        stamps: dict[str, list[float]] = {}
        for call in slack.calls:
            if call.method == "chat.postMessage" and "_ts" in call.args:
                stamps.setdefault(call.args["_ts"], [])
        for ts, at in slack.update_times:
            stamps.setdefault(ts, []).append(at)
        rates = [_max_rate([*s]) for s in stamps.values() if s]
        out["Slack"] = (max(r[0] for r in rates) + 0, min(r[1] for r in rates),
                        sum(len(s) for s in stamps.values()))
    finally:
        await slack.close()
    return out


async def _all(quick: bool, tmp: str) -> tuple[dict[str, tuple[list[float], list[float]]],
                                               dict[str, tuple[int, float, int]]]:
    count, warm = (30, 5) if quick else (150, 15)
    results: dict[str, tuple[list[float], list[float]]] = {}
    async with FakeLLMServer(model=_play) as llm:
        results["console"] = await _console(count, warm, f"sqlite:///{tmp}/console.db", llm)
        results["Discord"] = await _discord(count, warm, f"sqlite:///{tmp}/discord.db", llm)
        results["Slack"] = await _slack(count, warm, f"sqlite:///{tmp}/slack.db", llm)
        rates = await _edit_rate(f"sqlite:///{tmp}/rate.db", llm)
    return results, rates


def run(quick: bool) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="opencell-bench-") as tmp:
        results, rates = asyncio.run(_all(quick, tmp))
    figures: list[Figure] = []
    for where, (ours, bare) in results.items():
        p50, bare_p50 = median(ours), median(bare)
        figures.append(Figure(
            "streaming", f"{where} time to first visible piece p50", p50, "ms",
            f"<= bare + {TARGET_MS:g} ms", p50 <= bare_p50 + TARGET_MS,
            f"bare anthropic SDK stream p50 {bare_p50:.2f} ms, p95 "
            f"{percentile(bare, 95):.2f} ms",
            f"OpenCell p95 {percentile(ours, 95):.2f} ms; n={len(ours)} each, alternated"))
    for where, (most, gap, updates) in rates.items():
        figures.append(Figure(
            "streaming", f"{where} updates of one message within 1 s (max)", most, "",
            "<= 1", most <= 1, "",
            f"smallest gap between updates {gap * 1000:.0f} ms; {updates} updates for a "
            "~3 s stream of 1,500 deltas"))
    return figures


def main(argv: Sequence[str] | None = None) -> list[Figure]:
    return run_main(argv, __doc__ or "", run, "streamed replies")


if __name__ == "__main__":
    main()
