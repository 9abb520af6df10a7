"""Benchmark: messages per second through the whole chain vs the bare bot handler, on one core.

Run: python -m benchmarks.pipeline [--quick]

The full path is ``BotRuntime.dispatch``: per-conversation ordering, the session layer
(session open/touch, ``message`` and ``llm_call`` records with redaction and pricing, into a
real SQLite store by the writer thread), errors, a rate limit, then the offline provider and
the reply, filled in once. The full path's time runs until the writer has stored the last
record (``flush``). The baseline, measured in the same run once the writer is idle, is the
bare handler (``BotRuntime.handle``) with the same provider and no chain. The process is
pinned to one core, so the writer thread competes with the chain as it would in production.

A second baseline bounds what any chain could reach on this machine: the bare handler plus
SQLite alone inserting the rows the full run stored (``_sqlite_floor.py``), per message —
the ceiling for a turn path that costs nothing itself and stores what this one stores.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._report import Figure, median, percentile, run_main  # noqa: E402
from benchmarks._sqlite_floor import floor_us, stored_rows  # noqa: E402
from opencell.config import (  # noqa: E402
    BotConfig,
    LLMConfig,
    MiddlewareEntry,
    OpenCellConfig,
    RateLimitConfig,
    StoreConfig,
)
from opencell.context import TurnContext  # noqa: E402
from opencell.messages import ConversationKey, IncomingMessage  # noqa: E402
from opencell.observability.observer import Observability  # noqa: E402
from opencell.runtime import BotRuntime  # noqa: E402

TARGET_RATE = 20_000.0
"""Issue 12: the turn path, doing each thing once, at ≥ 20,000 msg/s on one core."""
TARGET_ADDED_US = 100.0
USERS = 200


def _bot() -> BotConfig:
    return BotConfig(
        name="bench", llm=LLMConfig(provider="offline"),
        middleware=[MiddlewareEntry(rate_limit=RateLimitConfig(per_user="1000000/min"))])


def _messages(count: int) -> list[IncomingMessage]:
    keys = [ConversationKey(bot="bench", platform="bench", workspace="w", channel=f"c{u}",
                            user=f"u{u}") for u in range(USERS)]
    return [IncomingMessage(key=keys[i % USERS], text=f"Hello, this is message {i} of the "
                            "benchmark; please answer politely.", user_id=keys[i % USERS].user)
            for i in range(count)]


async def _full(runtime: BotRuntime, messages: list[IncomingMessage]) -> list[float]:
    timings = []
    clock = time.perf_counter_ns
    for message in messages:
        start = clock()
        await runtime.dispatch(message)
        timings.append((clock() - start) / 1000)
    return timings


async def _bare(runtime: BotRuntime, messages: list[IncomingMessage]) -> list[float]:
    timings = []
    clock = time.perf_counter_ns
    for message in messages:
        # The same conversation history the full path sends, so the model does the same work.
        session = runtime.session_for(message.key)
        ctx = TurnContext(message=message, bot=runtime.config)
        if session is not None:
            ctx.history = session.history
        start = clock()
        await runtime.handle(ctx)
        timings.append((clock() - start) / 1000)
    return timings


async def measure(count: int, path: Path) -> dict[str, float]:
    observability = Observability.from_config(
        OpenCellConfig(store=StoreConfig(url=f"sqlite:///{path}")))
    runtime = BotRuntime(_bot(), observability=observability)
    messages = _messages(count)
    await _full(runtime, messages)  # warm up caches, prices, sessions and full histories
    await _bare(runtime, messages[: count // 10])
    observability.recorder.flush(timeout=120)
    written_before = observability.recorder.stats.written
    started = time.perf_counter()
    full = await _full(runtime, messages)
    # Until the writer has stored the last record: its work is part of the full chain's cost
    # (left running, it would be charged to the bare handler measured next).
    stored = observability.recorder.flush(timeout=120)
    full_seconds = time.perf_counter() - started
    written = observability.recorder.stats.written - written_before
    started = time.perf_counter()
    bare = await _bare(runtime, messages)
    bare_seconds = time.perf_counter() - started
    await runtime.aclose()
    drops = observability.recorder.stats.get("dropped", 0) if isinstance(
        observability.recorder.stats, dict) else 0
    observability.close(timeout=30)
    rows, sessions = stored_rows(path, written)
    floor_per_message_us = floor_us(rows, sessions) * len(rows) / count
    return {"full_rate": count / full_seconds, "bare_rate": count / bare_seconds,
            "ceiling_rate": 1e6 / (1e6 * bare_seconds / count + floor_per_message_us),
            "floor_us": floor_per_message_us, "events_per_message": len(rows) / count,
            "full_p50_us": median(full), "full_p99_us": percentile(full, 99),
            "bare_p50_us": median(bare), "added_p50_us": median(full) - median(bare),
            "dropped": float(drops), "stored": float(stored)}


def run(quick: bool) -> list[Figure]:
    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cores)})  # one core, shared with the writer thread
    count = 5_000 if quick else 30_000
    try:
        with tempfile.TemporaryDirectory(prefix="opencell-bench-") as tmp:
            result = asyncio.run(measure(count, Path(tmp) / "pipeline.db"))
    finally:
        os.sched_setaffinity(0, cores)
    return [
        Figure("pipeline", "throughput, full chain", result["full_rate"], "msg/s",
               f">= {TARGET_RATE:,.0f}", result["full_rate"] >= TARGET_RATE,
               f"bare handler {result['bare_rate']:,.0f} msg/s; bare handler + SQLite "
               f"alone storing the run's {result['events_per_message']:.2f} events a message "
               f"({result['floor_us']:.1f} µs): {result['ceiling_rate']:,.0f} msg/s",
               "one core, recording on, until stored"
               + ("" if result["stored"] else " (NOT all stored: see the log)")),
        Figure("pipeline", "added latency p50", result["added_p50_us"], "µs",
               f"<= {TARGET_ADDED_US:.0f}", result["added_p50_us"] <= TARGET_ADDED_US,
               f"bare p50 {result['bare_p50_us']:.1f} µs",
               f"full p50 {result['full_p50_us']:.1f} µs, p99 {result['full_p99_us']:.1f} µs"),
    ]


def main(argv: Sequence[str] | None = None) -> list[Figure]:
    return run_main(argv, __doc__ or "", run, "pipeline")


if __name__ == "__main__":
    main()
