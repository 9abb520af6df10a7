"""Benchmark: platform round trip (Discord and Slack) through OpenCell vs a bare bot, on loopback.

Run: python -m benchmarks.platforms [--quick]

Discord: the fake gateway dispatches MESSAGE_CREATE; the round trip ends when the reply's
post or edit that shows the whole answer reaches the fake. Slack: a signed ``app_mention`` event
is POSTed to the bot's HTTP endpoint; it ends when the ``chat.postMessage`` or ``chat.update``
with the whole answer reaches the fake Web API. OpenCell streams by default, so its answer is
a post of the first word and an edit to the whole answer (two requests to the bare bot's one).
The OpenCell side is the real App, BotRuntime and adapter with the offline provider, recording
into a temporary SQLite store. The baseline, alternated message by message in the same run
against the same fake, is a bare discord.py ``Client`` whose ``on_message`` replies at once,
and a bare slack-bolt ``AsyncApp`` whose ``app_mention`` listener calls ``chat_postMessage``,
served the same way as the adapter's HTTP mode. OpenCell's share = OpenCell p50 − bare p50.
Fakes and bots share one event loop on 127.0.0.1, so both sides pay the fakes' cost equally.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp  # noqa: E402
import discord  # noqa: E402
import yarl  # noqa: E402
from aiohttp import web  # noqa: E402
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request  # noqa: E402
from slack_bolt.async_app import AsyncApp  # noqa: E402
from slack_sdk.web.async_client import AsyncWebClient  # noqa: E402

from benchmarks._report import Figure, median, percentile, run_main  # noqa: E402
from opencell.adapters.discord import DiscordAdapter  # noqa: E402
from opencell.app import App  # noqa: E402
from opencell.config import BotConfig, OpenCellConfig, StoreConfig  # noqa: E402
from opencell.observability.observer import Observability  # noqa: E402
from tests.fakes.discord_server import GENERAL_ID, RANDOM_ID, THREAD_ID, FakeDiscord  # noqa: E402
from tests.fakes.slack_server import (  # noqa: E402
    BOT_TOKEN,
    BOT_USER,
    SIGNING_SECRET,
    FakeSlack,
    event,
    signature,
)

TARGET_SHARE_MS = 2.0
USERS = 8
CHANNELS = (GENERAL_ID, RANDOM_ID, THREAD_ID)
TEXT = "Hello, this is message {i} of the benchmark; please answer politely."
COMPLETE = "MOONSHOT_API_KEY."
"""How both bots' answers end: the round trip ends when a post or an edit shows it (OpenCell
streams by default — the first word is posted, then the message is edited to the whole
answer; the person has the answer only then)."""
BARE_ANSWER = ("You said something. I am a bare bot, so I answer every message the same way, "
               "with a fixed text about as long as the offline model's echo answer. ") * 2 \
    + COMPLETE
Settle = Callable[[], Awaitable[Any]]


class _Arrivals:
    """Stamps the moment the awaited reply reaches a fake."""

    waiter: asyncio.Future[float] | None = None
    ends_with: str | None = COMPLETE
    """The round trip ends at the post or edit whose text ends so (None: at the first one,
    what ``benchmarks/streaming.py`` times)."""

    def arrived(self, text: object) -> None:
        """A post or an edit reached the fake; the round trip ends once it shows the whole
        answer (``ends_with``)."""
        if self.ends_with is not None and not (
                isinstance(text, str) and text.rstrip().endswith(self.ends_with)):
            return
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(time.perf_counter())

    async def round_trip(self, send: Callable[[], Awaitable[Any]], settle: Settle) -> float:
        """ms from ``send`` starting to the reply arriving; then waits until the bot is idle."""
        self.waiter = asyncio.get_running_loop().create_future()
        start = time.perf_counter()
        await send()
        end = await asyncio.wait_for(self.waiter, 10)
        await settle()
        await asyncio.sleep(0.001)  # leftovers (response parsing, the store writer) run here
        return (end - start) * 1000


class _Discord(FakeDiscord, _Arrivals):
    def __init__(self) -> None:
        super().__init__()
        self.clients: list[Any] = []  # gateway sockets, in the order the bots identified

    async def _identify(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
        await super()._identify(ws, data)
        self.clients.append(ws)

    async def _post_message(self, request: web.Request) -> web.Response:
        self.arrived((await request.json()).get("content"))  # aiohttp keeps the body
        return await super()._post_message(request)

    async def _edit_message(self, request: web.Request) -> web.Response:
        self.arrived((await request.json()).get("content"))
        return await super()._edit_message(request)

    async def send_to(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
        """MESSAGE_CREATE to one bot only: the gateway session that ``ws`` holds."""
        session = next(s for s in self.sessions if s.ws is ws)
        await self._send(session, "MESSAGE_CREATE", data)


class _Slack(FakeSlack, _Arrivals):
    async def _web_api(self, request: web.Request) -> web.Response:
        response = await super()._web_api(request)
        if self.calls[-1].method in ("chat.postMessage", "chat.update"):
            self.arrived(self.calls[-1].args.get("text"))
        return response


def _discord_message(fake: FakeDiscord, i: int) -> dict[str, Any]:
    author = {"id": str(1500000000000100000 + i % USERS), "username": f"user{i % USERS}"}
    return fake.message(TEXT.format(i=i), channel=CHANNELS[i % len(CHANNELS)], author=author)


async def _alternate(count: int, warm: int, opencell: Callable[[int], Awaitable[float]],
                     bare: Callable[[int], Awaitable[float]]) -> tuple[list[float], list[float]]:
    """Warm both up, then alternate them message by message."""
    for i in range(warm):
        await opencell(i)
        await bare(i)
    ours: list[float] = []
    theirs: list[float] = []
    for i in range(warm, warm + count):
        ours.append(await opencell(i))
        theirs.append(await bare(i))
    return ours, theirs


async def _discord(count: int, warm: int, store_url: str) -> tuple[list[float], list[float]]:
    fake = _Discord()
    await fake.start()
    saved = discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    saved_env = os.environ.pop("OPENCELL_DISCORD_API_BASE", None)  # would override the BASE
    discord.http.Route.BASE = fake.api_base
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway)
    app, bare, bare_task = None, None, None
    try:
        bot = BotConfig.model_validate({"name": "bench", "llm": {"provider": "offline"},
                                        "platforms": {"discord": {"token": fake.token}}})
        observability = Observability.from_config(
            OpenCellConfig(store=StoreConfig(url=store_url)), [bot])
        app = App([bot], observability=observability, adapter_factory=lambda b, _: (
            DiscordAdapter(b, guild_ready_timeout=0.05)))
        await app.start()
        adapter, ours_ws = app.adapters[0], fake.clients[0]

        intents = discord.Intents.default()
        intents.message_content = True
        bare = discord.Client(intents=intents, guild_ready_timeout=0.05)
        bare_idle = asyncio.Event()  # cleared while the bare bot answers

        @bare.event
        async def on_message(message: discord.Message) -> None:
            if bare is None or message.author == bare.user:
                return
            bare_idle.clear()
            try:
                await message.reply(BARE_ANSWER)
            finally:
                bare_idle.set()

        bare_task = asyncio.create_task(bare.start(fake.token))
        await asyncio.wait_for(bare.wait_until_ready(), 10)
        bare_ws = fake.clients[1]

        async def opencell(i: int) -> float:
            data = _discord_message(fake, i)
            return await fake.round_trip(lambda: fake.send_to(ours_ws, data),
                                         lambda: adapter.drain(10))

        async def baseline(i: int) -> float:
            data = _discord_message(fake, i)
            return await fake.round_trip(lambda: fake.send_to(bare_ws, data), bare_idle.wait)

        return await _alternate(count, warm, opencell, baseline)
    finally:
        if bare is not None:
            await bare.close()
        if bare_task is not None:
            await asyncio.gather(bare_task, return_exceptions=True)
        if app is not None:
            await app.stop(timeout=5)
        await fake.close()
        discord.http.Route.BASE, discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = saved
        if saved_env is not None:
            os.environ["OPENCELL_DISCORD_API_BASE"] = saved_env


async def _bare_slack(api_url: str) -> tuple[web.AppRunner, str, asyncio.Event]:
    """A bare bolt app answering ``app_mention`` at once, served like the adapter's HTTP mode."""
    bolt = AsyncApp(signing_secret=SIGNING_SECRET,
                    client=AsyncWebClient(token=BOT_TOKEN, base_url=api_url))
    idle = asyncio.Event()  # cleared while the listener answers

    @bolt.event("app_mention")
    async def on_mention(event: dict[str, Any], client: AsyncWebClient) -> None:
        idle.clear()
        try:
            await client.chat_postMessage(channel=event["channel"], text=BARE_ANSWER,
                                          thread_ts=event.get("thread_ts") or event["ts"])
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
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}/slack/events", idle


def _slack_event(i: int) -> str:
    user = i % USERS  # each user talks in their own thread: USERS conversations
    return json.dumps(event("app_mention", user=f"U0USER{user:02d}", channel=f"C0ROOM{user % 4}",
                            thread_ts=f"1700000000.{user:06d}",
                            text=f"<@{BOT_USER}> " + TEXT.format(i=i)))


async def _slack(count: int, warm: int, store_url: str) -> tuple[list[float], list[float]]:
    fake = _Slack(users={f"U0USER{u:02d}": f"User {u}" for u in range(USERS)})
    await fake.start()
    session = aiohttp.ClientSession()
    app, runner = None, None
    try:
        bot = BotConfig.model_validate({
            "name": "bench", "llm": {"provider": "offline"},
            "platforms": {"slack": {"bot_token": BOT_TOKEN, "signing_secret": SIGNING_SECRET,
                                    "host": "127.0.0.1", "port": 0,
                                    "api_base_url": fake.api_url}}})
        observability = Observability.from_config(
            OpenCellConfig(store=StoreConfig(url=store_url)), [bot])
        app = App([bot], observability=observability)
        await app.start()
        adapter = app.adapters[0]
        ours_url = str(getattr(adapter, "url", ""))
        runner, bare_url, bare_idle = await _bare_slack(fake.api_url)

        async def post(url: str, raw: str) -> None:
            ts = str(int(time.time()))
            headers = {"Content-Type": "application/json", "X-Slack-Request-Timestamp": ts,
                       "X-Slack-Signature": signature(SIGNING_SECRET, ts, raw)}
            async with session.post(url, data=raw.encode(), headers=headers) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"{url} answered {response.status}")

        async def opencell(i: int) -> float:
            raw = _slack_event(i)
            return await fake.round_trip(lambda: post(ours_url, raw), lambda: adapter.drain(10))

        async def baseline(i: int) -> float:
            raw = _slack_event(i)
            return await fake.round_trip(lambda: post(bare_url, raw), bare_idle.wait)

        return await _alternate(count, warm, opencell, baseline)
    finally:
        if runner is not None:
            await runner.cleanup()
        if app is not None:
            await app.stop(timeout=5)
        await session.close()
        await fake.close()


def _figures(platform: str, bare_name: str, ours: list[float], bare: list[float]
             ) -> list[Figure]:
    p50, p99 = median(ours), percentile(ours, 99)
    bare_p50, bare_p99 = median(bare), percentile(bare, 99)
    share = p50 - bare_p50
    baseline = f"{bare_name} p50 {bare_p50:.2f} ms, p99 {bare_p99:.2f} ms"
    spread = f"n={len(ours)} each, {USERS} users, alternated"
    return [
        Figure("platform", f"{platform} round trip p50", p50, "ms", "", None, baseline,
               f"OpenCell p99 {p99:.2f} ms; {spread}"),
        Figure("platform", f"{platform} OpenCell share p50", share, "ms",
               f"<= {TARGET_SHARE_MS:g} ms", share <= TARGET_SHARE_MS, baseline,
               f"OpenCell p50 {p50:.2f} − bare p50 {bare_p50:.2f}; offline provider, "
               "recording into SQLite"),
    ]


def run(quick: bool) -> list[Figure]:
    count = 100 if quick else 500
    warm = 3 * USERS if quick else 6 * USERS  # every conversation, caches and pools warm
    with tempfile.TemporaryDirectory(prefix="opencell-bench-") as tmp:
        d_ours, d_bare = asyncio.run(_discord(count, warm, f"sqlite:///{tmp}/discord.db"))
        s_ours, s_bare = asyncio.run(_slack(count, warm, f"sqlite:///{tmp}/slack.db"))
    return (_figures("Discord", "bare discord.py Client", d_ours, d_bare)
            + _figures("Slack", "bare slack-bolt AsyncApp", s_ours, s_bare))


def main(argv: Sequence[str] | None = None) -> list[Figure]:
    return run_main(argv, __doc__ or "", run, "platform round trip")


if __name__ == "__main__":
    main()
