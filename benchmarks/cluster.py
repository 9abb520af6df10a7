"""Benchmark: several processes on one loopback PostgreSQL — what cluster mode costs.

Run: python -m benchmarks.cluster [--quick]

Needs PostgreSQL binaries (a throwaway server is started, as the test suite does;
``OPENCELL_TEST_POSTGRES_URL`` uses an existing one). Baselines in the same run, on the same
server:

- a turn (instant fake model) in cluster mode — conversation lock, stored-session check,
  stored history, recorder flush — against the same runtime with cluster turns off;
- a budget reserve + settle against an enforced limit (database rows, every process sees
  them) against the in-memory tallies one process uses;
- ingest from 3 processes writing at once into one database, no deadlock allowed (rollup
  upserts in key order), against one process alone;
- export lag (stored → delivered to a loopback OTLP receiver) on PostgreSQL and on SQLite.

Not here: the dashboard at 1M events on PostgreSQL (``python -m benchmarks.dashboard
--postgres``).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._report import Figure, median, percentile, run_main  # noqa: E402

TURN_TARGET_MS = 2.0
BUDGET_TARGET_MS = 1.0
INGEST_TARGET = 30_000
LAG_TARGET_S = 1.0


def turn_latency(url: str, turns: int) -> tuple[float, float]:
    """p50 ms of a turn with cluster turns on, and off (same store, same runtime)."""
    from opencell.config import BotConfig, LLMConfig, OpenCellConfig, StoreConfig
    from opencell.messages import ConversationKey, IncomingMessage
    from opencell.observability.observer import Observability
    from opencell.runtime import BotRuntime
    from tests.fakes.function_llm import FunctionLLM

    async def measure() -> tuple[float, float]:
        obs = Observability.from_config(OpenCellConfig(store=StoreConfig(url=url)))
        runtime = BotRuntime(BotConfig(name="bench", llm=LLMConfig(provider="offline")),
                             llm=FunctionLLM(lambda req: "ok"), observability=obs)
        cluster = runtime.cluster
        results = []
        for mode in (cluster, None):
            runtime.cluster = mode
            times = []
            for i in range(turns):
                key = ConversationKey(bot="bench", platform="api", channel=f"c{i % 20}",
                                      user=f"u{i % 20}", thread=str(mode is None))
                started = time.perf_counter()
                await runtime.dispatch(IncomingMessage(key=key, text=f"m{i}", user_id="u",
                                                       message_id=f"{mode is None}-{i}"))
                times.append((time.perf_counter() - started) * 1000)
            results.append(median(times[turns // 10:]))
        runtime.cluster = cluster
        await runtime.aclose()
        obs.close()
        return results[0], results[1]

    return asyncio.run(measure())


def budget_latency(url: str, calls: int) -> tuple[float, float]:
    """p50 ms of reserve + settle with shared (database) tallies, and with memory ones."""
    from opencell.budgets import BudgetLedger
    from opencell.budgets.limits import CallScope
    from opencell.budgets.reservations import Tallies
    from opencell.config import BotConfig, BudgetsConfig, LLMConfig, OpenCellConfig, StoreConfig
    from opencell.observability.observer import Observability

    obs = Observability.from_config(OpenCellConfig(store=StoreConfig(url=url)))
    bot = BotConfig(name="bench", llm=LLMConfig(provider="offline"))
    config = BudgetsConfig.model_validate({"limits": [
        {"scope": "bot", "daily_usd": 1e9, "enforce": True}]})
    results = []
    for shared in (True, False):
        ledger = BudgetLedger(config, [bot], observability=obs)
        if not shared:
            ledger._tallies = Tallies()  # what one process uses (no database)
        call = CallScope("bench", "u", "api")
        times = []
        for _ in range(calls):
            started = time.perf_counter()
            held = ledger.reserve(call, 0.01, bot=bot)
            ledger.settle(held, 0.005)
            times.append((time.perf_counter() - started) * 1000)
        results.append(percentile(times, 50))
        ledger.close(1.0)
    obs.close()
    return results[0], results[1]


def _writer(url: str, sessions: int, per_session: int, out: Any) -> None:
    from opencell.records import Record, new_session_id
    from opencell.store.store import Store

    store = Store.open(url)
    now = time.time()
    batches = []
    for _ in range(sessions):
        sid = new_session_id(now)
        batch = [Record("session_start", sid, now, "bench", {
            "bot": "bench", "bot_type": "conversational", "platform": "api",
            "user_id": f"u{len(batches) % 50}", "key": sid})]
        for j in range(per_session):
            batch.append(Record("llm_call", sid, now + j, "claude:sonnet", {
                "provider": "claude", "model": f"model-{j % 7}", "input_tokens": 100,
                "output_tokens": 50, "cost_usd": 0.001}, 100.0, True))
        batches.append(batch)
    out.put("ready")
    started = time.perf_counter()
    failures = 0
    for batch in batches:
        try:
            store.write_batch(batch)
        except Exception as exc:  # noqa: BLE001 - counted: a deadlock would show here
            failures += 1
            out.put(f"error {type(exc).__name__}: {str(exc)[:200]}")
    out.put((sessions * (per_session + 1), time.perf_counter() - started, failures))
    store.close()


def ingest(url: str, processes: int, sessions: int, per_session: int) -> tuple[float, int]:
    """Events/s written by ``processes`` writers at once (all events / wall time), failures."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    workers = [ctx.Process(target=_writer, args=(url, sessions, per_session, out))
               for _ in range(processes)]
    for worker in workers:
        worker.start()
    results, errors = [], []
    while len(results) < processes:
        item = out.get(timeout=600)
        if isinstance(item, tuple):
            results.append(item)
        elif isinstance(item, str) and item.startswith("error"):
            errors.append(item)
    for worker in workers:
        worker.join(60)
    events = sum(r[0] for r in results)
    wall = max(r[1] for r in results)
    return events / wall, sum(r[2] for r in results)


def export_lag(url: str, events: int) -> float:
    """p95 seconds from an event being stored to its span reaching a loopback OTLP receiver
    (default exporter pacing)."""
    from opencell.config import ObservabilityConfig, OpenCellConfig, OTLPConfig, StoreConfig
    from opencell.observability.observer import Observability
    from tests.fakes.otlp_receiver import OTLPReceiver

    receiver = OTLPReceiver()
    receiver.start()
    obs = Observability.from_config(OpenCellConfig(
        store=StoreConfig(url=url),
        observability=ObservabilityConfig(otlp=OTLPConfig(endpoint=receiver.url))))
    session = obs.start_session(bot="bench", bot_type="agent", user_id="u", platform="api")
    lags = []
    for i in range(events):
        obs.custom(session, f"lag{i}", {})
        obs.recorder.flush(10)
        stored = time.perf_counter()
        deadline = stored + 30
        while not any(span.name == f"lag{i}" for span in receiver.spans):
            if time.perf_counter() > deadline:
                break
            time.sleep(0.005)
        lags.append(time.perf_counter() - stored)
    obs.close()
    receiver.stop()
    return percentile(lags, 95)


def round_trip(url: str, count: int) -> float:
    """p50 ms of ``SELECT 1`` on a pooled connection: what one database round trip costs here
    (every other figure is a few of these)."""
    import sqlalchemy as sa

    from opencell.store.store import Store

    store = Store.open(url)
    times = []
    with store.engine.connect() as conn:
        for _ in range(count):
            started = time.perf_counter()
            conn.execute(sa.text("SELECT 1")).scalar()
            times.append((time.perf_counter() - started) * 1000)
    store.close()
    return percentile(times, 50)


def run(quick: bool) -> list[Figure]:
    from tests.fakes.postgres import server_from_env

    server = server_from_env()
    try:
        turns = 200 if quick else 1000
        rtt = round_trip(server.fresh_url(), 500)
        on, off = turn_latency(server.fresh_url(), turns)
        shared, memory = budget_latency(server.fresh_url(), 300 if quick else 2000)
        sessions, per = (60, 49) if quick else (300, 49)
        alone, _ = ingest(server.fresh_url(), 1, sessions, per)
        three, failures = ingest(server.fresh_url(), 3, sessions, per)
        lag_events = 20 if quick else 60
        lag_pg = export_lag(server.fresh_url(), lag_events)
        with tempfile.TemporaryDirectory() as scratch:
            lag_sqlite = export_lag(f"sqlite:///{scratch}/lag.db", lag_events)
    finally:
        server.stop()
    added = on - off
    return [
        Figure("cluster", "one round trip (SELECT 1, p50)", rtt, "ms", "", None,
               "", "loopback PostgreSQL; the figures below are a few of these each"),
        Figure("cluster", "turn latency added by cluster mode (p50)", added, "ms",
               f"<= {TURN_TARGET_MS:g}", added <= TURN_TARGET_MS,
               f"cluster {on:.2f} ms vs one process {off:.2f} ms", f"{turns} turns"),
        Figure("cluster", "budget reserve + settle on PostgreSQL (p50)", shared, "ms",
               f"<= {BUDGET_TARGET_MS:g}", shared <= BUDGET_TARGET_MS,
               f"in memory {memory * 1000:.1f} µs", "enforced limit, one database row"),
        Figure("cluster", "ingest from 3 processes into one PostgreSQL", three, "events/s",
               f">= {INGEST_TARGET:,}", three >= INGEST_TARGET and failures == 0,
               f"1 process {alone:,.0f} events/s",
               f"{failures} failed batches (deadlocks would count here)"),
        Figure("cluster", "export lag p95, PostgreSQL", lag_pg, "s", f"<= {LAG_TARGET_S:g}",
               lag_pg <= LAG_TARGET_S, f"SQLite {lag_sqlite:.3f} s",
               "stored → at a loopback OTLP receiver, default pacing"),
        Figure("cluster", "export lag p95, SQLite", lag_sqlite, "s", f"<= {LAG_TARGET_S:g}",
               lag_sqlite <= LAG_TARGET_S, "", ""),
    ]


def main(argv: Sequence[str] | None = None) -> list[Figure]:
    return run_main(argv, __doc__ or "", run, "several processes on one PostgreSQL")


if __name__ == "__main__":
    main()
