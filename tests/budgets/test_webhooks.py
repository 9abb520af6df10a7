"""Webhook delivery: Slack, Discord and plain JSON formats, retries, and never slowing a turn."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from opencell.budgets import BudgetLedger, CallScope, RetryPolicy
from opencell.budgets.notifiers import AlertNotifier, safe_url, webhook_format
from opencell.llm.base import LLMRequest, Usage
from opencell.observability.observer import Observability
from opencell.runtime import BotRuntime
from tests.budgets.conftest import SONNET, bot, budgets, message
from tests.fakes.function_llm import FunctionLLM, answer
from tests.fakes.ports import free_port
from tests.fakes.waiting import WAIT, until

SLACK = "/services/T000/B000/XXXXXXXX"
DISCORD = "/api/webhooks/123456/tok-en"
PLAIN = "/hooks/opencell"


class Receiver:
    """A loopback webhook receiver; ``fail_first`` answers 503 that many times first."""

    def __init__(self, *, fail_first: int = 0, hold: bool = False) -> None:
        self.bodies: dict[str, list[Any]] = {SLACK: [], DISCORD: [], PLAIN: []}
        self.attempts = 0
        self.fail_first = fail_first
        self.hold = hold
        """Answer nothing until ``release`` is set (a receiver that hangs)."""
        self.release = asyncio.Event()
        self.runner: web.AppRunner | None = None
        self.port = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def handle(self, request: web.Request) -> web.Response:
        self.attempts += 1
        if self.hold:
            await self.release.wait()
        if self.attempts <= self.fail_first:
            return web.Response(status=503)
        self.bodies[request.path].append(await request.json())
        return web.Response(text="ok")

    async def start(self) -> None:
        app = web.Application()
        for path in self.bodies:
            app.router.add_post(path, self.handle)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]

    async def wait_for(self, path: str, count: int) -> list[Any]:
        await until(lambda: len(self.bodies[path]) >= count, f"{count} POST(s) to {path}")
        return self.bodies[path]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()
    await server.start()
    yield server
    assert server.runner is not None
    await server.runner.cleanup()


def priced_llm() -> FunctionLLM:
    def play(request: LLMRequest) -> Any:
        return answer("ok", usage=Usage(1500, 800), model=SONNET)

    return FunctionLLM(play, provider="claude", model=SONNET)


async def test_alerts_arrive_in_slack_discord_and_json_formats(
        obs: Observability, receiver: Receiver) -> None:
    hooks = [receiver.url(SLACK), receiver.url(DISCORD), receiver.url(PLAIN)]
    config = budgets(limits=[{"scope": "global", "daily_usd": 0.04}],
                     alerts={"webhooks": hooks})
    support = bot()
    ledger = BudgetLedger(config, [support], observability=obs)
    runtime = BotRuntime(support, llm=priced_llm(), observability=obs, budgets=ledger)
    for text in ("one", "two", "three"):  # $0.033 = 82 %, then $0.0495 = 124 %
        await runtime.dispatch(message(text))
    slack = await receiver.wait_for(SLACK, 2)
    discord = await receiver.wait_for(DISCORD, 2)
    plain = await receiver.wait_for(PLAIN, 2)
    assert slack[0] == {"text": ":warning: Budget at 80%: all bots spent $0.0330 of its "
                                "$0.0400 daily budget (82%)."}
    assert slack[1]["text"].startswith(":rotating_light: Budget reached: all bots spent $0.0495")
    assert discord[0] == {"content": slack[0]["text"], "allowed_mentions": {"parse": []}}
    assert set(plain[0]) >= {"kind", "level", "scope", "period", "spent_usd", "limit_usd",
                             "threshold", "message", "session_id", "bot", "user_id"}
    assert (plain[0]["kind"], plain[0]["threshold"], plain[0]["scope"], plain[0]["user_id"]) \
        == ("threshold", 0.8, "global", "alice")
    assert plain[1]["level"] == "critical"
    await runtime.aclose()
    assert await asyncio.to_thread(ledger.close, 5.0)


async def test_a_dead_or_slow_receiver_never_slows_a_turn(obs: Observability) -> None:
    slow = Receiver(hold=True)  # takes the POST and answers only when the test says
    await slow.start()
    hooks = [f"http://127.0.0.1:{free_port()}{SLACK}", slow.url(PLAIN)]
    config = budgets(limits=[{"scope": "global", "daily_usd": 0.01}],
                     alerts={"webhooks": hooks})
    support = bot()
    # A POST may take longer than the test waits for the turn: a turn that waited for the
    # hanging receiver could not finish in time, however fast or slow the machine.
    notifier = AlertNotifier(webhooks=hooks, retry=RetryPolicy(first=0.05, timeout=2 * WAIT))
    ledger = BudgetLedger(config, [support], observability=obs, notifier=notifier)
    runtime = BotRuntime(support, llm=priced_llm(), observability=obs, budgets=ledger)
    reply = await asyncio.wait_for(runtime.dispatch(message("this call passes 100 %")), WAIT)
    assert reply is not None and not reply.failed
    assert slow.bodies[PLAIN] == []  # the turn is over; the slow receiver has not answered
    await until(lambda: slow.attempts >= 1, "the alert POST at the hanging receiver")
    await until(lambda: notifier.retries >= 1, "a retry of the dead webhook")
    slow.release.set()
    await runtime.aclose()
    assert slow.runner is not None
    await slow.runner.cleanup()
    await asyncio.to_thread(ledger.close, 0.2)


async def test_a_failing_receiver_gets_the_alert_after_retries() -> None:
    receiver = Receiver(fail_first=2)
    await receiver.start()
    notifier = AlertNotifier(webhooks=[receiver.url(SLACK)],
                             retry=RetryPolicy(first=0.02, max_attempts=4))
    config = budgets(limits=[{"scope": "global", "daily_usd": 0.01}])
    ledger = BudgetLedger(config, [bot()], notifier=notifier)
    reservation = ledger.reserve(CallScope("support", "alice", "slack"), 0.02, bot=bot())
    ledger.settle(reservation, 0.02)
    bodies = await receiver.wait_for(SLACK, 1)
    # The receiver has the body before the notifier's thread has read the 200.
    await until(lambda: notifier.delivered + notifier.failed >= 1, "the notifier's verdict")
    assert len(bodies) == 1 and receiver.attempts == 3
    assert (notifier.delivered, notifier.retries, notifier.failed) == (1, 2, 0)
    assert await asyncio.to_thread(notifier.close, 2.0)
    assert receiver.runner is not None
    await receiver.runner.cleanup()


def test_webhook_formats_are_detected_by_path_and_urls_are_logged_without_secrets() -> None:
    assert webhook_format("https://hooks.slack.com/services/T1/B2/secret") == "slack"
    assert webhook_format("https://discord.com/api/webhooks/1/secret") == "discord"
    assert webhook_format("https://discord.com/api/v10/webhooks/1/secret") == "discord"
    assert webhook_format("https://example.com/alerts") == "json"
    assert safe_url("https://hooks.slack.com/services/T1/B2/secret") == \
        "https://hooks.slack.com/services/…"
