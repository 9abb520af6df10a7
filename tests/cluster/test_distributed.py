"""The distributed scenario (issue 13, SCALE-OUT.md §B.5): three real `opencell run`
processes serving one Slack app in HTTP mode behind a round-robin dispatcher (this test), on
one PostgreSQL store, with the fake Slack, the fake LLM and a fake OTLP receiver.

Threads are spread across the workers message by message; every fourth event is sent again
as a Slack retry (``X-Slack-Retry-Num``) to a *different* worker; one worker is killed with
SIGKILL halfway (between messages: a worker killed inside a turn loses that turn, which Slack
does not resend since it was acknowledged). Then:

- every message is answered exactly once (one post per message, retries dropped);
- a thread has one session, except that a thread the killed worker served last has its
  session closed ``interrupted`` by the survivors (no restart) and continues in a new one;
- every model request carries the earlier turns of its session, whichever worker had them;
- the bot's enforced daily budget holds across the workers (within one reservation);
- after the survivors stop gracefully (handing their sessions over: left open, no owner),
  every stored model call and ended session reached the OTLP receiver, with duplicate span ids
  only from a batch the killed worker had in flight.
"""

from __future__ import annotations

import asyncio
import collections
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from opencell.exporters import cursor_rows
from opencell.store import tables
from opencell.store.store import Store
from tests.cli.test_sigterm import until_listening
from tests.conftest import REPO, clean_env
from tests.fakes.llm_server import FakeLLMServer, Step
from tests.fakes.otlp_receiver import OTLPReceiver
from tests.fakes.ports import free_port
from tests.fakes.slack_server import BOT_TOKEN, SIGNING_SECRET, FakeSlack, event, post_event
from tests.fakes.waiting import WAIT, until

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

THREADS, PER_THREAD, WORKERS = 6, 4, 3
LIMIT_USD = 0.02
USAGE = {"input_tokens": 100, "output_tokens": 100}  # $0.0018 on Sonnet 4
BLOCKED = "budget used up"


def bot_yaml(path: Path, port: int, slack: FakeSlack) -> Path:
    path.write_text(
        "name: slackbot\n"
        "llm: {provider: claude, model: claude-sonnet-4-20250514, max_retries: 0, "
        "timeout: 10s, max_tokens: 200}\n"
        f"budget: {{daily_usd: {LIMIT_USD}, enforce: true, blocked_message: {BLOCKED}}}\n"
        "platforms:\n  slack:\n"
        f"    bot_token: {BOT_TOKEN}\n    signing_secret: {SIGNING_SECRET}\n"
        f"    host: 127.0.0.1\n    port: {port}\n    api_base_url: {slack.api_url}\n")
    return path


async def start_worker(config: Path, env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "opencell", "run", str(config), cwd=REPO, env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE)


async def read_log(process: asyncio.subprocess.Process, log: bytearray) -> None:
    """A worker's stderr as it comes: an unread pipe fills up and blocks the worker."""
    assert process.stderr is not None
    while chunk := await process.stderr.read(65536):
        log += chunk


def stored_turns(url: str) -> int:
    store = Store.open(url)
    try:
        with store.reading() as conn:
            return int(conn.execute(sa.select(sa.func.coalesce(sa.func.sum(
                tables.sessions.c.messages), 0))).scalar_one())
    finally:
        store.close()


def model(request: Any) -> Step:
    return Step(text=f"n={len(request.messages)} {request.last_user_text}", usage=USAGE)


async def test_three_workers_one_killed(postgres_url: str, tmp_path: Path) -> None:
    receiver = OTLPReceiver()
    receiver.start()
    ports = [free_port() for _ in range(WORKERS)]
    workers: list[asyncio.subprocess.Process] = []
    logs: list[bytearray] = []
    readers: list[asyncio.Task[None]] = []
    async with FakeSlack() as slack, FakeLLMServer(model=model) as llm:
        env = clean_env(ANTHROPIC_API_KEY="sk-ant-test", ANTHROPIC_BASE_URL=llm.url,
                        OPENCELL_DATABASE_URL=postgres_url,
                        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url)
        try:
            for i, port in enumerate(ports):
                config = bot_yaml(tmp_path / f"worker{i}.yaml", port, slack)
                workers.append(await start_worker(config, env))
                logs.append(bytearray())
                readers.append(asyncio.create_task(read_log(workers[-1], logs[-1])))
            for at, (worker, port) in enumerate(zip(workers, ports, strict=True)):
                try:
                    await until_listening(port, timeout=WAIT)
                except AssertionError:
                    raise AssertionError(
                        f"worker {at} is not listening on {port} (exit code "
                        f"{worker.returncode}); its log:\n"
                        f"{bytes(logs[at][-4000:]).decode(errors='replace')}") from None
            urls = [f"http://127.0.0.1:{port}/slack/events" for port in ports]
            live = list(range(WORKERS))
            sent = 0

            def replies(n: int) -> bool:
                return len(slack.posts) >= n
            served_last: dict[int, int] = {}
            killed = WORKERS - 1
            for round_ in range(PER_THREAD):
                if round_ == PER_THREAD // 2:  # halfway: kill a worker between messages
                    await until(lambda n=sent: replies(n), "every reply so far")
                    await until(lambda n=sent: stored_turns(postgres_url) == n,
                                "every turn so far stored")
                    workers[killed].send_signal(signal.SIGKILL)
                    await workers[killed].wait()
                    live.remove(killed)
                for thread in range(THREADS):
                    target = live[(round_ * THREADS + thread) % len(live)]
                    body = event("app_mention", text=f"<@U0FAKEBOT> t{thread}m{round_}",
                                 thread_ts=f"1699999999.{thread:06d}")
                    status, _ = await post_event(urls[target], body)
                    assert status == 200
                    sent += 1
                    served_last[thread] = target
                    if sent % 4 == 0:  # Slack retries it, and the balancer picks another
                        other = live[(live.index(target) + 1) % len(live)]
                        status, _ = await post_event(urls[other], body, retry_num=1)
                        assert status == 200
                    # one message per thread at a time, as a person types: wait for its reply
                    await until(lambda n=sent: replies(n), "the reply")
            await asyncio.sleep(0.5)  # a late duplicate reply would show up here
            posts = list(slack.posts)
        finally:
            for process in workers:
                if process.returncode is None:
                    process.send_signal(signal.SIGTERM)
            for process in workers:
                if process.returncode is None:
                    try:
                        await asyncio.wait_for(process.wait(), WAIT)
                    except TimeoutError:
                        process.kill()
                        await process.wait()
            await asyncio.gather(*readers)  # each ends at its worker's exit
        stderr = [bytes(log).decode(errors="replace") for log in logs]

    for i, process in enumerate(workers):
        if i != killed:
            assert process.returncode == 0, stderr[i]
            assert "Traceback" not in stderr[i], stderr[i]

    # Every message answered exactly once.
    assert len(posts) == THREADS * PER_THREAD
    answered = collections.Counter(p["text"].split(" ", 1)[1] for p in posts
                                   if p["text"].startswith("n="))
    assert all(n == 1 for n in answered.values()), answered
    blocked = [p for p in posts if p["text"] == BLOCKED]
    assert len(answered) + len(blocked) == THREADS * PER_THREAD

    store = Store.open(postgres_url)
    try:
        with store.reading() as conn:
            s = tables.sessions.c
            rows = conn.execute(sa.select(s.id, s.thread, s.status, s.end_reason, s.messages,
                                          s.cost_usd, s.owner).order_by(s.seq)).all()
            stored_events = conn.execute(sa.select(sa.func.count()).select_from(
                tables.events)).scalar_one()
            reserved = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(
                tables.budget_tallies.c.reserved), 0.0))).scalar_one()
    finally:
        (cursor,) = cursor_rows(store)
        store.close()

    # One session per thread, except after the kill for the threads the killed worker had.
    by_thread: dict[str, list[Any]] = collections.defaultdict(list)
    for row in rows:
        by_thread[row.thread].append(row)
    assert len(by_thread) == THREADS
    for thread, found in by_thread.items():
        assert sum(row.messages for row in found) == PER_THREAD, (thread, found)
        if len(found) > 1:
            assert len(found) == 2 and found[0].end_reason == "interrupted", found
    # The graceful stops handed the open sessions over (open, no owner) for the next worker.
    assert all(row.owner == "" for row in rows if row.status == "open"), rows

    # The model saw every earlier turn of its session: n = 2 * (turns before) + 1.
    for post in posts:
        if post["text"].startswith("n="):
            n = int(post["text"].split(" ", 1)[0][2:])
            assert n % 2 == 1

    # The budget held across the three workers; nothing stays reserved.
    spent = sum(row.cost_usd for row in rows)
    assert spent <= LIMIT_USD + 0.004  # one reservation (max_tokens 200 at $15/M, + input)
    assert blocked, "the limit was reached"
    assert reserved == pytest.approx(0.0)

    # Export: the graceful stops drained the outbox to its end (no settle delay, nothing
    # skipped); every span delivered arrived, with duplicate span ids only from a batch the
    # killed worker may have had in flight (sent, but its cursor not yet moved).
    assert (cursor["pending_events"], cursor["delivered_events"]) == (0, stored_events)
    spans = receiver.spans
    receiver.stop()
    unique = {s.span_id for s in spans}
    assert len(unique) == cursor["delivered_spans"]
    assert len(spans) - len(unique) <= 256
    roots = {(s.trace_id, s.span_id) for s in spans if not s.parent_span_id}
    traces = {trace for trace, _ in roots}
    assert len(traces) == len(roots)  # one root per trace (turn numbers never collide)
    assert len(traces) >= sum(row.messages for row in rows)  # a trace per turn at least
