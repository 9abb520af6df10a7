"""Slack HTTP mode: every malformed signing header is a 401 from the real bolt app, never a 500
and never a turn. Requests are written byte for byte, so headers Slack would never send (non-ASCII,
duplicated, signed odd timestamps) reach the adapter exactly as an attacker would send them."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest

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
from tests.fakes.function_llm import FunctionLLM
from tests.fakes.slack_server import BOT_TOKEN, SIGNING_SECRET, FakeSlack, event, signature

Header = tuple[str, str]


@dataclass
class Served:
    adapter: SlackAdapter
    llm: FunctionLLM


@pytest.fixture
async def served(isolated_store: str) -> AsyncIterator[tuple[Served, FakeSlack]]:
    async with FakeSlack() as fake:
        bot = BotConfig(name="helper", llm=LLMConfig(provider="offline"),
                        platforms=PlatformsConfig(slack=SlackConfig(
                            bot_token=BOT_TOKEN, signing_secret=SIGNING_SECRET, port=0,
                            api_base_url=fake.api_url)))
        observability = Observability.from_config(
            OpenCellConfig(store=StoreConfig(url=isolated_store)))

        def play(request: LLMRequest) -> str:
            return f"echo: {request.messages[-1].content}"

        llm = FunctionLLM(play)
        app = App([bot], runtimes={bot.name: BotRuntime(bot, llm=llm,
                                                        observability=observability)},
                  observability=observability)
        await app.start()
        adapter = app.adapters[0]
        assert isinstance(adapter, SlackAdapter)
        try:
            yield Served(adapter, llm), fake
        finally:
            await app.stop()


async def raw_post(url: str, body: bytes, headers: Sequence[Header]) -> tuple[int, bytes]:
    """POST with exactly these header lines (UTF-8 bytes, duplicates kept); (status, body)."""
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    lines = [f"POST {parts.path} HTTP/1.1", f"Host: {parts.netloc}",
             "Content-Type: application/json", f"Content-Length: {len(body)}",
             "Connection: close", *(f"{name}: {value}" for name, value in headers)]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    await writer.drain()
    response = await reader.read()
    writer.close()
    await writer.wait_closed()
    head, _, payload = response.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), payload


def signed(timestamp: str, body: bytes) -> list[Header]:
    """Both headers, the signature correct for this exact timestamp text: only its form is odd."""
    return [("X-Slack-Request-Timestamp", timestamp),
            ("X-Slack-Signature", signature(SIGNING_SECRET, timestamp, body.decode()))]


def now() -> int:
    return int(time.time())


FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")

CASES: dict[str, object] = {
    "timestamp missing": lambda b: signed(str(now()), b)[1:],
    "signature missing": lambda b: signed(str(now()), b)[:1],
    "both missing": lambda b: [],
    "timestamp empty": lambda b: signed("", b),
    "signature empty": lambda b: [("X-Slack-Request-Timestamp", str(now())),
                                  ("X-Slack-Signature", "")],
    "timestamp non-numeric": lambda b: signed("yesterday", b),
    "timestamp float": lambda b: signed(f"{now()}.25", b),
    "timestamp exponent": lambda b: signed(f"{now() / 1e9}e9", b),
    "timestamp huge": lambda b: signed("9" * 5000, b),
    "timestamp 30 digits": lambda b: signed("9" * 30, b),
    "timestamp negative": lambda b: signed(f"-{now()}", b),
    "timestamp zero": lambda b: signed("0", b),
    "timestamp far future": lambda b: signed(str(now() + 86_400), b),
    "timestamp with plus sign": lambda b: signed(f"+{now()}", b),
    "timestamp with underscores": lambda b: signed(f"{now():_}", b),
    "timestamp in fullwidth digits": lambda b: signed(str(now()).translate(FULLWIDTH), b),
    "timestamp twice": lambda b: signed(str(now()), b) + [
        ("X-Slack-Request-Timestamp", str(now() - 1))],
    "signature twice": lambda b: signed(str(now()), b) + [
        ("X-Slack-Signature", "v0=" + "0" * 64)],
    "signature not ascii": lambda b: [("X-Slack-Request-Timestamp", str(now())),
                                      ("X-Slack-Signature", "v0=" + "é" * 64)],
    "signature other scheme": lambda b: [
        ("X-Slack-Request-Timestamp", str(now())),
        ("X-Slack-Signature", "v1=" + signed(str(now()), b)[1][1][3:])],
}


@pytest.mark.parametrize("case", list(CASES))
async def test_a_malformed_signing_header_is_401_and_starts_no_turn(
        served: tuple[Served, FakeSlack], case: str) -> None:
    bot, fake = served
    assert bot.adapter.url is not None
    body = json.dumps(event("app_mention", text="<@U0FAKEBOT> forged")).encode()
    headers = CASES[case](body)  # type: ignore[operator]
    status, payload = await raw_post(bot.adapter.url, body, headers)
    assert status == 401, (case, status, payload[:200])
    assert json.loads(payload) == {"error": "invalid request"}
    await only_the_genuine_request_is_answered(bot, fake)


async def test_a_body_that_is_not_utf8_is_401_not_500(
        served: tuple[Served, FakeSlack]) -> None:
    bot, fake = served
    assert bot.adapter.url is not None
    body = b'{"type": "event_callback", "text": "\xff\xfe"}'
    headers = [("X-Slack-Request-Timestamp", str(now())),
               ("X-Slack-Signature", "v0=" + "0" * 64)]
    status, payload = await raw_post(bot.adapter.url, body, headers)
    assert (status, json.loads(payload)) == (401, {"error": "invalid request"})
    await only_the_genuine_request_is_answered(bot, fake)


async def only_the_genuine_request_is_answered(bot: Served, fake: FakeSlack) -> None:
    """Still serving; a correctly signed request is the only one the model ever sees."""
    assert bot.adapter.url is not None
    good = json.dumps(event("app_mention", text="<@U0FAKEBOT> genuine")).encode()
    status, payload = await raw_post(bot.adapter.url, good, signed(str(now()), good))
    assert status == 200, payload
    [post] = await fake.wait_posts(1)
    assert post["text"] == "echo: genuine"
    assert [r.messages[-1].content for r in bot.llm.requests] == ["genuine"]
