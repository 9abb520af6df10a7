"""Delivery guarantees: outages, re-auth, bursts, stops with a backlog, rejected spans."""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa

from opencell.exporters import Exporters, ExportTuning, cursor_rows
from opencell.observability.observer import Observability
from opencell.retry import Backoff
from opencell.store.store import Store
from tests.conftest import REPO, clean_env
from tests.exporters._conversation import two_turns
from tests.exporters.conftest import FAST, agentops_config, wait_for
from tests.fakes.agentops_server import VALID_KEY, FakeAgentOps
from tests.fakes.waiting import WAIT, bounded, until_sync

CONVERSATION = Counter({"shop.session": 1, "shop.agent": 2, "anthropic.llm": 3,
                        "lookup.tool": 1})


class Outage:
    """Worker time on a manual clock; the fake's outage follows that clock.

    0-60 s: connections refused; 60-90 s: authenticated, but every export gets a 500;
    from 90 s: the next export gets a 401 (the token expired), then all is well.
    """

    def __init__(self, fake: FakeAgentOps) -> None:
        self.fake = fake
        self.now = 0.0
        self.phase = "refused"
        self.lock = threading.Lock()

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds
            if self.phase == "refused" and self.now >= 60:
                self.fake.traces_status = 500
                self.fake.up()
                self.phase = "500"
            elif self.phase == "500" and self.now >= 90:
                self.fake.traces_status = None
                self.fake.expire_next = True
                self.phase = "healthy"
        time.sleep(0.002)



def running(obs: Observability) -> Exporters:
    assert obs.exporters is not None
    return obs.exporters


async def test_outage_then_500s_then_401_delivers_every_span_once(
        isolated_store: str, fake_agentops: FakeAgentOps,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    fake_agentops.down()
    outage = Outage(fake_agentops)
    tuning = ExportTuning(batch_events=3, poll_interval=0.5, request_timeout=2.0,
                          backoff=Backoff(start=1.0, cap=16.0), clock=outage.clock,
                          sleep=outage.sleep)
    obs = Observability.from_config(agentops_config(isolated_store, fake_agentops),
                                    export_tuning=tuning)
    await two_turns(obs)
    wait_for(lambda: Counter(s.name for s in fake_agentops.spans) == CONVERSATION)
    wait_for(lambda: running(obs).stats()[0]["delivered_spans"] == 7)
    (worker,) = running(obs).stats()
    obs.close()

    assert outage.now >= 90
    statuses = Counter(export.status for export in fake_agentops.exports)
    assert statuses[500] >= 1 and statuses[401] == 1 and statuses[200] >= 3
    ids = [span.span_id for span in fake_agentops.spans]
    assert len(ids) == len(set(ids)) == 7  # each span once: nothing acknowledged is resent
    assert [status for _, status in fake_agentops.auth_calls].count(200) == 2  # re-auth
    assert worker["delivered_spans"] == 7 and worker["failed_attempts"] >= 5
    assert worker["state"] == "ok" and worker["pending_events"] == 0
    # The outage is logged by us, once when it starts and once when it ends; the OTLP
    # exporter's own per-attempt error lines are kept out.
    assert not [r for r in caplog.records if r.name.startswith("opentelemetry")]
    ours = [r.getMessage() for r in caplog.records if r.name == "opencell.exporters"]
    assert any("Could not initialize" in m and "connection refused" in m for m in ours)
    assert any("export recovered" in m for m in ours)


def test_a_burst_of_30000_events_loses_none(isolated_store: str,
                                            fake_agentops: FakeAgentOps) -> None:
    tuning = ExportTuning(batch_events=1000, poll_interval=0.02, backoff=lambda a: 0.02)
    obs = Observability.from_config(agentops_config(isolated_store, fake_agentops),
                                    export_tuning=tuning)
    session = obs.start_session(bot="burst", bot_type="agent", user_id="u", platform="api")
    for i in range(30_000):
        obs.custom(session, "tick", {"i": i})
    obs.end_session(session, reason="explicit", success=True)
    assert obs.recorder.flush(20)
    wait_for(lambda: len(fake_agentops.spans) == 30_001, timeout=40)
    obs.close(export_timeout=WAIT)  # delivered, however busy the machine
    spans = fake_agentops.spans
    assert len({span.span_id for span in spans}) == 30_001
    ticks = sorted(int(s.attrs["agentops.entity.input"][5:-1]) for s in spans
                   if s.name == "tick.operation")
    assert ticks == list(range(30_000))
    assert obs.recorder.stats.dropped == 0


async def test_a_stop_with_a_backlog_keeps_it_for_the_next_start(
        isolated_store: str, fake_agentops: FakeAgentOps) -> None:
    fake_agentops.down()
    config = agentops_config(isolated_store, fake_agentops)
    obs = Observability.from_config(config, export_tuning=FAST)
    await two_turns(obs)
    # Bounded: a stop that kept retrying the refused endpoint would not return in time.
    bounded(lambda: obs.close(export_timeout=2.0), "a stop with the endpoint down")
    assert fake_agentops.spans == []
    store = Store.open(isolated_store)
    (row,) = cursor_rows(store)
    store.close()
    assert (row["exporter"], row["last_event_id"]) == ("agentops", 0)
    assert row["pending_events"] > 0

    fake_agentops.up()
    again = Observability.from_config(config, export_tuning=FAST)
    wait_for(lambda: Counter(s.name for s in fake_agentops.spans) == CONVERSATION)
    again.close()
    assert len({s.span_id for s in fake_agentops.spans}) == 7


@pytest.mark.postgres
async def test_a_stop_waits_for_events_held_back_by_a_transaction_open_elsewhere(
        postgres_url: str, fake_agentops: FakeAgentOps) -> None:
    """A transaction open anywhere on the server (another client, an autovacuum's analyze)
    holds the outbox below its xmin. A stop used to call the empty window "caught up" and
    left everything for the next start (seen once in CI); it waits for it to end."""
    obs = Observability.from_config(agentops_config(postgres_url, fake_agentops),
                                    export_tuning=FAST)
    store = obs.store
    assert store is not None
    other = store.engine.connect()
    other.execute(sa.text("SELECT pg_current_xact_id()"))  # an open transaction with an id
    try:
        await two_turns(obs)
        assert obs.recorder.flush(WAIT)
        assert obs.exporters is not None
        outbox = obs.exporters.workers[0].outbox
        start = outbox.claim()
        assert start is not None
        assert outbox.window(start, 100) == [] and outbox.held_back(start)
        ended = threading.Timer(0.3, other.commit)
        ended.start()
        assert obs.close(export_timeout=WAIT)
        ended.join()
    finally:
        other.close()
    assert Counter(s.name for s in fake_agentops.spans) == CONVERSATION


def test_sigterm_with_a_backlog_then_the_next_start_sends_it(
        tmp_path: Path, isolated_store: str, fake_agentops: FakeAgentOps) -> None:
    fake_agentops.down()
    bot = tmp_path / "echo.yaml"
    bot.write_text("name: echo\nllm: {provider: offline}\n")
    env = clean_env(AGENTOPS_ENABLED="true", AGENTOPS_API_KEY=VALID_KEY,
                    AGENTOPS_ENDPOINT=fake_agentops.url,
                    AGENTOPS_EXPORTER_ENDPOINT=fake_agentops.traces_url)
    proc = subprocess.Popen([sys.executable, "-m", "opencell", "chat", str(bot)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=env, cwd=REPO)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("hello\n")
    proc.stdin.flush()
    assert proc.stdout.readline().startswith("[offline]")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=WAIT) == 0  # the exporter's time at stop is bounded
    assert fake_agentops.spans == []

    fake_agentops.up()
    config = agentops_config(isolated_store, fake_agentops)
    obs = Observability.from_config(config, export_tuning=FAST)
    wait_for(lambda: len(fake_agentops.spans) == 3)
    obs.close(export_timeout=WAIT)  # delivered, however busy the machine
    names = sorted(span.name for span in fake_agentops.spans)
    assert names == ["echo.agent", "echo.session", "offline.llm"]
    (root,) = [s for s in fake_agentops.spans if s.name == "echo.session"]
    assert root.attrs["trace.metadata.end_reason"] == "shutdown"


async def test_stop_is_bounded_when_the_endpoint_never_answers(
        isolated_store: str, fake_agentops: FakeAgentOps) -> None:
    fake_agentops.blackhole = True
    obs = Observability.from_config(agentops_config(isolated_store, fake_agentops),
                                    export_tuning=ExportTuning(poll_interval=0.02,
                                                               request_timeout=30.0))
    await two_turns(obs)
    await asyncio.to_thread(until_sync, lambda: fake_agentops.held, "a request to hang")
    bounded(lambda: obs.close(export_timeout=1.0), "a stop with a request hanging")
    # The stop returned while the request (30 s to time out) still hangs: it did not wait.
    assert fake_agentops.held == 1
    store = Store.open(isolated_store)
    (row,) = cursor_rows(store)
    store.close()
    assert row["last_event_id"] == 0 and row["pending_events"] > 0


def test_a_span_the_backend_rejects_is_skipped_alone(
        isolated_store: str, fake_agentops: FakeAgentOps) -> None:
    fake_agentops.reject_names = {"poison.operation"}
    obs = Observability.from_config(agentops_config(isolated_store, fake_agentops),
                                    export_tuning=FAST)
    session = obs.start_session(bot="b", bot_type="agent", user_id="u", platform="api")
    for i in range(20):
        obs.custom(session, "poison" if i == 7 else "fine", {"i": i})
    obs.end_session(session, reason="explicit", success=True)
    wait_for(lambda: len(fake_agentops.spans) == 20)
    wait_for(lambda: running(obs).stats()[0]["delivered_spans"] == 20)
    (worker,) = running(obs).stats()
    gauges = running(obs).metrics()["agentops"]
    obs.close(export_timeout=WAIT)  # delivered, however busy the machine
    names = Counter(span.name for span in fake_agentops.spans)
    assert names == Counter({"fine.operation": 19, "b.session": 1})
    assert worker["rejected_events"] == 1
    assert gauges["rejected_events_total"] == 1 and gauges["lag_events"] == 0
    assert gauges["delivered_spans_total"] == 20 and gauges["failing"] == 0
