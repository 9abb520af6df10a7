"""Rolling restarts of Slack workers lose and double no message (issue 13, point 6).

HTTP mode: two real `opencell run` workers on one PostgreSQL store behind a round-robin
dispatcher that acts as Slack and the load balancer (a non-2xx answer or a refused connection
is retried on the next worker, with ``X-Slack-Retry-Num``). People keep writing in their
threads while each worker in turn is replaced: a new worker starts, the old one gets SIGTERM
with a turn in flight, refuses what arrives while it finishes (503), and exits. Every message
is answered exactly once and each thread stays one session, its history complete.

Socket Mode: two Apps hold connections of one app; the one that stops closes its connection
first, leaves an envelope that still reached it unacknowledged (Slack delivers it again, to
the other connection), finishes its turn in flight, and hands the sessions over.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa

from opencell.llm.base import LLMRequest
from opencell.store import tables
from opencell.store.store import Store
from tests.adapters.test_slack import running, slack_bot
from tests.cli.test_sigterm import until_listening
from tests.cluster.test_distributed import start_worker
from tests.conftest import clean_env
from tests.fakes.llm_server import FakeLLMServer, RecordedRequest, Step
from tests.fakes.ports import free_port
from tests.fakes.slack_server import (
    APP_TOKEN,
    BOT_TOKEN,
    SIGNING_SECRET,
    FakeSlack,
    event,
    post_event,
)
from tests.fakes.waiting import WAIT, until

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

THREADS, PER_THREAD = 3, 6
QUOTAS = (2, 4, PER_THREAD)
"""Messages per thread before, during the first and during the second replacement."""


def bot_yaml(path: Path, port: int, slack: FakeSlack) -> Path:
    path.write_text(
        "name: slackbot\n"
        "llm: {provider: claude, model: claude-sonnet-4-20250514, max_retries: 0, "
        "timeout: 30s, max_tokens: 200}\n"
        "platforms:\n  slack:\n"
        f"    bot_token: {BOT_TOKEN}\n    signing_secret: {SIGNING_SECRET}\n"
        f"    host: 127.0.0.1\n    port: {port}\n    api_base_url: {slack.api_url}\n")
    return path


def stored_sessions(url: str) -> list[Any]:
    store = Store.open(url)
    try:
        with store.reading() as conn:
            s = tables.sessions.c
            return list(conn.execute(sa.select(s.thread, s.status, s.owner, s.messages)
                                     .order_by(s.seq)).all())
    finally:
        store.close()


class Worker:
    """One `opencell run` process; its model calls carry its own API key."""

    def __init__(self, name: str, process: asyncio.subprocess.Process, port: int) -> None:
        self.name, self.process, self.port = name, process, port
        self.url = f"http://127.0.0.1:{port}/slack/events"
        self.refused = 0
        self.log = bytearray()
        # Read its stderr as it comes: an unread pipe fills and blocks the process.
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process.stderr is not None
        while chunk := await self.process.stderr.read(65536):
            self.log += chunk

    def tail(self) -> str:
        return bytes(self.log[-3000:]).decode(errors="replace")


async def test_a_rolling_restart_of_two_http_workers_answers_every_message_once(
        postgres_url: str, tmp_path: Path) -> None:
    held: dict[str, int] = collections.Counter()
    release: dict[str, asyncio.Event] = {}

    async def hold(request: RecordedRequest) -> None:
        key = request.headers.get("x-api-key") or request.headers.get(
            "Authorization", "").removeprefix("Bearer ")
        if key in release:
            held[key] += 1
            await release[key].wait()

    def model(request: RecordedRequest) -> Step:
        return Step(text=f"n={len(request.messages)} {request.last_user_text}")

    async with FakeSlack() as slack, FakeLLMServer(model=model) as llm:
        llm.hold = hold
        workers: list[Worker] = []
        pool: list[Worker] = []
        turn = [0]

        async def start(name: str) -> Worker:
            port = free_port()
            env = clean_env(ANTHROPIC_API_KEY=f"sk-ant-{name}", ANTHROPIC_BASE_URL=llm.url,
                            OPENCELL_DATABASE_URL=postgres_url)
            config = bot_yaml(tmp_path / f"{name}.yaml", port, slack)
            worker = Worker(name, await start_worker(config, env), port)
            workers.append(worker)
            try:
                await until_listening(port, timeout=WAIT)
            except AssertionError:
                raise AssertionError(
                    f"{name} is not listening on {port} (exit code "
                    f"{worker.process.returncode}); its log:\n{worker.tail()}") from None
            return worker

        async def deliver(body: dict[str, Any], first: Worker | None = None) -> None:
            """Slack behind a round-robin balancer: retried on the next worker until a 2xx."""
            retry: int | None = None
            worker = first
            while True:
                if worker is None:
                    worker = pool[turn[0] % len(pool)]
                    turn[0] += 1
                try:
                    status, _ = await post_event(worker.url, body, retry_num=retry)
                except aiohttp.ClientError:
                    status = 0  # stopped: the balancer's health check would drop it
                if status == 200:
                    return
                worker.refused += status == 503
                retry, worker = (retry or 0) + 1, None

        def ts(thread: str) -> str:
            return f"1699999999.{thread}"

        def replies(thread: str) -> int:
            return sum(1 for p in slack.posts if p.get("thread_ts") == ts(thread))

        def message(thread: str, k: int) -> dict[str, Any]:
            return event("app_mention", text=f"<@U0FAKEBOT> {thread}m{k}", thread_ts=ts(thread))

        allowed = [QUOTAS[0]]

        async def person(thread: str) -> None:
            for k in range(PER_THREAD):  # one message at a time, as a person types
                await until(lambda k=k: k < allowed[0], "the next phase of traffic")
                await deliver(message(thread, k))
                await until(lambda k=k: replies(thread) > k, f"the reply to {thread}m{k}")

        probes: list[str] = []

        async def replace(old: Worker, new: Worker, quota: int) -> None:
            pool.append(new)  # the new one joins the balancer first, then the old one goes
            key = f"sk-ant-{old.name}"
            release[key] = asyncio.Event()
            allowed[0] = quota  # traffic flows on through the stop
            await until(lambda: held[key] > 0, f"a turn in flight on {old.name}")
            old.process.send_signal(signal.SIGTERM)
            while not old.refused:  # a message sent to it now is refused, and retried
                probes.append(f"probe{len(probes)}")
                await deliver(message(probes[-1], 0), first=old)
            release[key].set()  # its turns finish and their replies go out
            assert await asyncio.wait_for(old.process.wait(), WAIT) == 0
            pool.remove(old)

        threads = [f"t{t}" for t in range(THREADS)]
        try:
            # Four processes (two, and their replacements) start together: start-up is CPU.
            first, second, first_next, second_next = await asyncio.gather(
                start("w0"), start("w1"), start("w0-next"), start("w1-next"))
            pool.extend([first, second])

            async def rolling() -> None:  # one worker at a time, under steady traffic
                await replace(first, first_next, QUOTAS[1])
                await replace(second, second_next, QUOTAS[2])

            await asyncio.gather(*(person(t) for t in threads), rolling())
            await until(lambda: all(replies(p) for p in probes), "the probes' replies")
            posts = list(slack.posts)
        finally:
            for worker in workers:
                if worker.process.returncode is None:
                    worker.process.send_signal(signal.SIGTERM)
            for worker in workers:
                try:
                    await asyncio.wait_for(worker.process.wait(), WAIT)
                except TimeoutError:
                    worker.process.kill()
                    await worker.process.wait()
            await asyncio.gather(*(w.reader for w in workers), return_exceptions=True)
        stderr = {w.name: bytes(w.log).decode(errors="replace") for w in workers}

    for worker in workers:
        assert worker.process.returncode == 0, stderr[worker.name]
        assert "Traceback" not in stderr[worker.name], stderr[worker.name]
    # Every message answered exactly once, with every earlier turn of its thread in view.
    texts = collections.Counter(p["text"].split(" ", 1)[1] for p in posts)
    assert len(posts) == THREADS * PER_THREAD + len(probes), texts
    assert set(texts.values()) == {1}, texts
    for post in posts:
        n, text = post["text"].split(" ", 1)
        assert n == f"n={2 * int(text.rsplit('m', 1)[1]) + 1}", post
    # One session per thread across both restarts, handed over (open, no owner) at the end.
    rows = stored_sessions(postgres_url)
    assert sorted((row.thread, row.status, row.owner, row.messages) for row in rows) == sorted(
        [(f"1699999999.{t}", "open", "", PER_THREAD) for t in threads]
        + [(f"1699999999.{p}", "open", "", 1) for p in probes])


async def test_socket_mode_stop_closes_first_and_leaves_late_envelopes_unacknowledged(
        postgres_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="opencell.adapters.slack")
    gate = asyncio.Event()

    async def play(request: LLMRequest) -> str:
        text = str(request.messages[-1].content)
        if text == "slow":
            await gate.wait()
        return f"n={len(request.messages)} {text}"

    def mention(text: str, thread: str) -> dict[str, Any]:
        return event("app_mention", text=f"<@U0FAKEBOT> {text}", thread_ts=thread)

    async with FakeSlack() as slack:
        bot = slack_bot(slack, app_token=APP_TOKEN)
        async with running(bot, postgres_url, play) as other:
            await slack.wait_connections(1)
            async with running(bot, postgres_url, play) as stopping:
                await slack.wait_connections(2)  # envelopes go to the newest: `stopping`
                await slack.wait_ack(await slack.send_envelope(mention("first", "1.1")))
                await slack.wait_posts(1)
                await slack.wait_ack(await slack.send_envelope(mention("slow", "2.2")))
                await until(lambda: stopping.asked() == ["first", "slow"], "the slow turn")

                # The instant a stop begins, before its connection is closed: an envelope
                # that still arrives is not taken on, nor acknowledged.
                stopping.adapter.accepting = False
                late = mention("late", "1.1")
                envelope = await slack.send_envelope(late)
                await until(lambda: "left unacknowledged" in caplog.text, "the envelope seen")
                stop = asyncio.create_task(stopping.app.stop(timeout=WAIT))
                await until(lambda: slack.open_connections == 1,
                            "the stopping process closing its connection first")
                assert len(slack.posts) == 1  # while its slow turn is still to finish
                gate.set()
                await stop
                assert all(a.get("envelope_id") != envelope for a in slack.acks)
                assert stopping.asked() == ["first", "slow"]  # it did not take it on
                # Slack delivers it again, to the connection left: the other process.
                await slack.wait_ack(await slack.send_envelope(late, retry_attempt=1))
                await until(lambda: other.asked() == ["late"], "the other process")
                await slack.wait_posts(3)
    texts = sorted(p["text"] for p in slack.posts)
    assert texts == ["n=1 first", "n=1 slow", "n=3 late"]  # `late` continued thread 1.1
