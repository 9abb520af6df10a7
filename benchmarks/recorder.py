"""Benchmark: Recorder.record() vs an OpenTelemetry span on the caller, and SQLite ingest rate.

Run: python benchmarks/recorder.py [--quick]    (or python -m benchmarks.recorder)

Figures, all from the same process and run:

1. caller cost of ``Recorder.record()`` for an ``llm_call`` record (prebuilt) and of
   ``Recorder.emit()`` (building the record), with the recorder writing into SQLite in the
   background as in production; median over runs of the mean µs per call;
2. caller cost of an OpenTelemetry SDK span start + end carrying the same attributes, on a
   private ``TracerProvider`` with a ``BatchSpanProcessor`` and an exporter that does nothing;
3. sustained ingest: message-sized records (~430 bytes of JSON each: a user message and a
   reply, as stored with content capture on) from ``record()`` to ``flush()`` into a fresh
   SQLite file, spread over ``--sessions`` open sessions; median of three runs, events/s;
4. durability latency: time from ``record()`` until another connection sees the event.

Baseline for (3), in the same run: SQLite alone inserting the same event rows into a
store's own ``events`` table (``_sqlite_floor.py``). What ingest adds to that is OpenCell's
(planning, search words, session totals, rollups); the floor itself is the machine's, which
is how a figure measured on one VM can be compared with another's.

Targets (issue 3): record ≤ 1 µs median, ≥ 15× cheaper than the span, ingest ≥ 100,000
events/s; durable within 200 ms. ``main()`` returns the figures as a dict.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._sqlite_floor import BATCH, floor_us  # noqa: E402
from opencell.observability.recorder import Recorder  # noqa: E402
from opencell.records import Record, new_session_id  # noqa: E402
from opencell.store.store import Store  # noqa: E402

TARGET_RECORD_US = 1.0
TARGET_RATIO = 15.0
TARGET_INGEST = 100_000.0
TARGET_DURABLE_MS = 200.0

LLM_ATTRIBUTES: dict[str, Any] = {
    "provider": "claude", "model": "claude-sonnet-4-20250514",
    "response_model": "claude-sonnet-4-20250514", "input_tokens": 1500, "output_tokens": 800,
    "cache_read_tokens": 0, "cache_write_tokens": 0, "cost_usd": 0.0165,
    "price_source": "genai-prices", "stop_reason": "end_turn", "request_id": "req_011CXyz",
}
MESSAGE_DATA: dict[str, Any] = {
    "input": "Hi! My order #48213 has not arrived yet, it was due last Tuesday. Can you check?",
    "output": ("I'm sorry about the delay. Order #48213 left our warehouse on Monday and the "
               "carrier shows it in transit with a new delivery estimate of Friday. I've added "
               "a note to your account; if it has not arrived by Saturday, reply here and I "
               "will arrange a replacement or a refund."),
    "user_id": "U024BE7LH", "input_chars": 82, "output_chars": 262,
}


def _span_tracer() -> tuple[Any, Any]:
    """A private tracer provider (the global one is never touched) with a no-op exporter."""
    try:
        from opentelemetry.sdk.trace import TracerProvider
    except ImportError:
        print("opentelemetry-sdk is not installed (pip install opentelemetry-sdk): "
              "no span figures")
        return None, None
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class NoopExporter(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    # A queue that holds a whole run: every span is processed, none dropped (nor are records).
    provider.add_span_processor(BatchSpanProcessor(NoopExporter(), max_queue_size=200_000))
    return provider, provider.get_tracer("opencell.benchmark")


def caller_costs(store: Store, calls: int, runs: int) -> dict[str, float]:
    """Median µs per call of record(), emit() and an OpenTelemetry span, interleaved runs."""
    provider, tracer = _span_tracer()
    recorder = Recorder(store, max_queue=calls * 2)
    sid = new_session_id()
    recorder.emit("session_start", sid, "bench", {"bot": "bench", "platform": "bench"})
    records = [Record("llm_call", sid, time.time(), "claude:sonnet", LLM_ATTRIBUTES, 850.0, True)
               for _ in range(calls)]
    record, emit = recorder.record, recorder.emit
    per: dict[str, list[float]] = {"record": [], "emit": [], "span": []}
    for _ in range(runs):
        start = time.perf_counter()
        for item in records:
            record(item)
        per["record"].append((time.perf_counter() - start) / calls * 1e6)
        recorder.flush(120)  # not timed: the writer catches up before the next figure
        start = time.perf_counter()
        for _ in range(calls):
            emit("llm_call", sid, "claude:sonnet", LLM_ATTRIBUTES, 850.0, True)
        per["emit"].append((time.perf_counter() - start) / calls * 1e6)
        recorder.flush(120)
        if tracer is None:
            continue
        start = time.perf_counter()
        for _ in range(calls):
            span = tracer.start_span("claude:sonnet", attributes=LLM_ATTRIBUTES)
            span.end()
        per["span"].append((time.perf_counter() - start) / calls * 1e6)
        provider.force_flush()
    recorder.close(120)
    if provider is not None:
        provider.shutdown()
    return {name: statistics.median(values) if values else float("nan")
            for name, values in per.items()}


def ingest_rate(store: Store, events: int, sessions: int) -> float:
    """Message records per second from record() to flush() into SQLite.

    The queue bound is raised to hold the whole burst: this measures how fast the writer
    drains into SQLite, not what a too-small queue would drop.
    """
    recorder = Recorder(store, max_queue=events + sessions)
    sids = [new_session_id() for _ in range(sessions)]
    for sid in sids:
        recorder.emit("session_start", sid, "bench", {"bot": "bench", "platform": "bench"})
    recorder.flush(120)
    now = time.time()
    records = [Record("message", sids[i % sessions], now, "turn", MESSAGE_DATA, 900.0, True)
               for i in range(events)]
    start = time.perf_counter()
    for item in records:
        recorder.record(item)
    if not recorder.flush(600):
        raise RuntimeError(f"ingest did not finish: {recorder.stats}")
    elapsed = time.perf_counter() - start
    dropped = recorder.stats.dropped
    recorder.close(10)
    if dropped:
        raise RuntimeError(f"{dropped} records dropped during the ingest run")
    return events / elapsed


def durability_ms(store: Store, path: Path, samples: int) -> list[float]:
    """ms from record() until a separate connection reads the event."""
    recorder = Recorder(store)  # default flush_interval, as in production
    sid = new_session_id()
    recorder.emit("session_start", sid, "bench", {"bot": "bench", "platform": "bench"})
    recorder.flush(10)
    reader = sqlite3.connect(path)
    out = []
    for i in range(samples):
        time.sleep(0.013 * (i % 5))  # land at different points of the writer's cycle
        start = time.perf_counter()
        recorder.emit("custom", sid, f"probe-{i}", {"i": i})
        while reader.execute("SELECT 1 FROM events WHERE name = ?", (f"probe-{i}",)).fetchone() \
                is None:
            time.sleep(0.001)
        out.append((time.perf_counter() - start) * 1000)
    reader.close()
    recorder.close(10)
    return out


def _verdict(ok: bool) -> str:
    return "met" if ok else "not met"


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the figures, return them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts (a few seconds)")
    parser.add_argument("--sessions", type=int, default=100,
                        help="open sessions the ingest records are spread over (default 100)")
    args = parser.parse_args(argv)
    calls, runs, events, ingest_runs, samples = ((20_000, 5, 30_000, 3, 10) if args.quick
                                                 else (50_000, 7, 200_000, 3, 30))
    with tempfile.TemporaryDirectory(prefix="opencell-bench-") as tmp:
        costs = caller_costs(Store.open(f"sqlite:///{tmp}/callers.db"), calls, runs)
        rates = []
        for run in range(ingest_runs):
            ingest_store = Store.open(f"sqlite:///{tmp}/ingest-{run}.db")
            rates.append(ingest_rate(ingest_store, events, args.sessions))
            ingest_store.close()
        rate = statistics.median(rates)
        data = json.dumps(MESSAGE_DATA, ensure_ascii=False, separators=(",", ":"))
        now = time.time()
        rows = [(i % args.sessions, now, "message", "turn", 900.0, True, data)
                for i in range(events)]
        floor = 1e6 / statistics.median(floor_us(rows, args.sessions)
                                        for _ in range(ingest_runs))
        latency_store = Store.open(f"sqlite:///{tmp}/latency.db")
        latency = durability_ms(latency_store, Path(tmp) / "latency.db", samples)
        latency_store.close()
    ratio = costs["span"] / costs["record"]
    figures = {
        "record_us": costs["record"], "emit_us": costs["emit"], "otel_span_us": costs["span"],
        "span_over_record": ratio, "span_over_emit": costs["span"] / costs["emit"],
        "ingest_events_per_s": rate, "ingest_events": events, "ingest_sessions": args.sessions,
        "ingest_runs_events_per_s": rates, "sqlite_floor_events_per_s": floor,
        "opencell_us_per_event": 1e6 / rate - 1e6 / floor,
        "durable_ms_median": statistics.median(latency), "durable_ms_max": max(latency),
        "targets_met": {
            "record_us": costs["record"] <= TARGET_RECORD_US,
            "span_over_record": ratio >= TARGET_RATIO,
            "ingest_events_per_s": rate >= TARGET_INGEST,
            "durable_ms_max": max(latency) <= TARGET_DURABLE_MS,
        },
    }
    met = figures["targets_met"]
    print(f"record() on the caller      {costs['record']:8.3f} µs/event  (median of {runs} runs "
          f"of {calls:,})  target ≤ {TARGET_RECORD_US} µs: {_verdict(met['record_us'])}")
    print(f"emit() incl. building it    {costs['emit']:8.3f} µs/event")
    print(f"OpenTelemetry span + end    {costs['span']:8.3f} µs/span   (BatchSpanProcessor, "
          "no-op exporter, same attributes)")
    print(f"span / record()             {ratio:8.1f}×  target ≥ {TARGET_RATIO:.0f}×: "
          f"{_verdict(met['span_over_record'])}   (span / emit(): "
          f"{figures['span_over_emit']:.1f}×)")
    print(f"ingest into SQLite          {rate:8,.0f} events/s  (median of {ingest_runs} runs of "
          f"{events:,} message records over {args.sessions} sessions, record() → flush(); "
          f"runs: {', '.join(f'{r:,.0f}' for r in rates)})  target ≥ {TARGET_INGEST:,.0f}: "
          f"{_verdict(met['ingest_events_per_s'])}")
    print(f"  baseline: SQLite alone    {floor:8,.0f} events/s  (the same rows, encoded before "
          f"the clock, into the store's events table and indexes, {BATCH:,} a transaction); "
          f"OpenCell adds {figures['opencell_us_per_event']:.1f} µs an event to its "
          f"{1e6 / floor:.1f} µs")
    print(f"record() → durable          {figures['durable_ms_median']:8.1f} ms median, "
          f"{figures['durable_ms_max']:.1f} ms max  target ≤ {TARGET_DURABLE_MS:.0f} ms: "
          f"{_verdict(met['durable_ms_max'])}")
    return figures


if __name__ == "__main__":
    main()
