"""Benchmark: the data lifecycle — pruning under ingest, forget, export, PostgreSQL space reuse.

Run: python -m benchmarks.lifecycle [--quick] [--postgres] [--only pruning|forget|export|postgres]

Figures, each against a baseline from the same run:

1. **Pruning under ingest** (SQLite): a store seeded with ``1,000,000`` events that are past
   the window (``benchmarks/seed.py``, 100 days old); the recorder ingests message records
   at full speed (``benchmarks/recorder.ingest_rate``) while ``prune`` deletes them in the
   background. Ingest rate while pruning ÷ ingest rate without (the mean of a run before and
   one after): target ≥ 80 %. Meanwhile a reader in another process (as ``opencell
   dashboard`` runs) makes the dashboard's calls (a sessions page, the cost breakdown, the
   live tick) in a loop: p95 while pruning, target ≤ 50 ms, next to the p95 of the same
   calls during the baseline ingest.
2. **forget** of a user with 10,000 sessions (9 events each, every kind of content) in a
   store that also holds 10,000 sessions of other users: target ≤ 10 s.
3. **export** of 1,000,000 events (50,000 sessions): events/s, target ≥ 50,000; memory flat:
   the peak RSS growth while exporting 1,000,000 events next to that of 100,000.
4. With ``--postgres`` (needs PostgreSQL binaries, see tests/fakes/postgres.py): the size
   of the events table after fill → prune → autovacuum → refill, next to after the first
   fill: batched deletes leave space that new rows reuse (target: ≤ 1.3× the first fill).

``--quick`` uses a tenth of the events (and 2,000 sessions for forget); ``--only`` runs one
part (``--only postgres`` implies ``--postgres``).
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._report import Figure, percentile, run_main  # noqa: E402
from benchmarks.recorder import ingest_rate  # noqa: E402
from benchmarks.seed import seed  # noqa: E402
from opencell.store.erasure import forget  # noqa: E402
from opencell.store.export import export_jsonl  # noqa: E402
from opencell.store.retention import RetentionPolicy, prune  # noqa: E402
from opencell.store.store import Store  # noqa: E402

DAY = 86400.0
POLICY = RetentionPolicy(events_s=90 * DAY, content_s=30 * DAY)


def _read_loop(url: str, halt: Any, out: Any) -> None:
    """In its own process (as ``opencell dashboard`` runs): the dashboard's reads in a loop,
    each call timed; (wall time, ms) pairs sent back when ``halt`` is set."""
    from opencell.calendar import utc_date
    from opencell.dashboard import queries

    store = Store.open(url)
    samples = []

    def timed(call: Any) -> None:
        began = time.perf_counter()
        call()
        samples.append((time.time(), (time.perf_counter() - began) * 1000))

    def breakdown() -> None:
        with store.reading() as conn:
            queries.cost_breakdown(conn, "bot", "month", utc_date(time.time()))

    def tick() -> None:
        with store.reading() as conn:
            queries.tick(conn)

    while not halt.is_set():
        timed(lambda: store.list_sessions(limit=50))
        timed(breakdown)
        timed(tick)
        halt.wait(0.02)
    store.close()
    out.put(samples)


class _Reader:
    """The dashboard's reads from another process, for the whole measurement."""

    def __init__(self, url: str) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self.halt, self.out = context.Event(), context.Queue()
        self.process = context.Process(target=_read_loop, args=(url, self.halt, self.out),
                                       daemon=True)
        self.process.start()

    def stop(self) -> list[tuple[float, float]]:
        self.halt.set()
        samples: list[tuple[float, float]] = self.out.get(timeout=300)
        self.process.join(30)
        return samples


def _prune_into(store: Store, stop: threading.Event, report: dict[str, Any]) -> None:
    report["r"] = prune(store, POLICY, stop=stop)


def pruning(quick: bool) -> list[Figure]:
    """Bursts of ingest alternate: without pruning, then with ``prune`` running on its
    thread (stopped after the burst, resumed for the next one), so both see the same
    machine load; rates are compared median to median."""
    old = 100_000 if quick else 1_000_000
    burst = 30_000 if quick else 100_000
    rounds = 3 if quick else 5
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/prune.db"
        store = Store.open(url)
        seed(store, sessions=old // 10, events=old, days=5, now=time.time() - 100 * DAY)
        reader = _Reader(url)
        calm, busy, phases = [], [], []
        deleted, busy_s, pages = 0, 0.0, 0
        for _ in range(rounds):
            began = time.time()
            calm.append(ingest_rate(store, burst, 100))
            phases.append((began, time.time(), False))
            stop = threading.Event()
            report: dict[str, Any] = {}
            thread = threading.Thread(target=_prune_into, args=(store, stop, report),
                                      daemon=True)
            began = time.time()
            thread.start()
            busy.append(ingest_rate(store, burst, 100))
            stop.set()
            thread.join()
            phases.append((began, time.time(), True))
            deleted += report["r"].events_deleted
            pages += report["r"].pages_vacuumed
            busy_s += time.time() - began
        samples = reader.stop()
        store.close()

    def during(pruning: bool) -> list[float]:
        return [ms for at, ms in samples
                if any(lo <= at <= hi and flag == pruning for lo, hi, flag in phases)]

    base, rate = sorted(calm)[len(calm) // 2], sorted(busy)[len(busy) // 2]
    p95, calm95 = percentile(during(True), 95), percentile(during(False), 95)
    load = os.getloadavg()[0]
    return [
        Figure("lifecycle", "ingest while pruning / without", rate / base * 100, "%",
               ">= 80", rate / base >= 0.8, f"{base:,.0f} events/s without (median of "
               f"{rounds} bursts of {burst:,})", f"{rate:,.0f} events/s while pruning; "
               f"load average {load:.1f} on {os.cpu_count()} cores"),
        Figure("lifecycle", "dashboard call p95 while pruning", p95, "ms", "<= 50",
               p95 <= 50, f"{calm95:.1f} ms during ingest alone",
               f"{len(during(True))} calls (sessions page, cost breakdown, live tick) from "
               "another process, during ingest at full speed"),
        Figure("lifecycle", "expired events pruned under ingest", deleted / busy_s,
               "events/s", "", None, f"{old:,} seeded 100 days ago",
               f"{deleted:,} deleted in {busy_s:.1f} s at 20 % duty, {pages:,} pages "
               "handed back"),
    ]


def erasure(quick: bool) -> list[Figure]:
    from tests.observability._lifecycle_data import session_records

    count = 2_000 if quick else 10_000
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(f"sqlite:///{tmp}/forget.db")
        now = time.time() - DAY
        batch: list[Any] = []
        for n in range(count * 2):
            user = "U-FORGET-ME" if n % 2 == 0 else f"U-OTHER-{n % 997}"
            batch.extend(session_records(user, now + n, f"M{n}")[1])
            if len(batch) >= 5000:
                store.write_batch(batch)
                batch = []
        store.write_batch(batch)
        began = time.perf_counter()
        report = forget(store, "U-FORGET-ME")
        seconds = time.perf_counter() - began
        store.close()
    return [Figure("lifecycle", f"forget of a user with {count:,} sessions", seconds, "s",
                   "<= 10" if not quick else "", seconds <= 10 if not quick else None,
                   f"store of {count * 2:,} sessions, {count * 18:,} events",
                   f"{report.events:,} events and {report.texts:,} texts erased")]


class _Sink(io.TextIOBase):
    def __init__(self) -> None:
        self.chars = 0

    def write(self, text: str) -> int:
        self.chars += len(text)
        return len(text)


def _export(store: Store) -> tuple[float, int]:
    """(seconds, events) of one export into a counting sink."""
    began = time.perf_counter()
    stats = export_jsonl(store, _Sink())  # type: ignore[arg-type]
    return time.perf_counter() - began, stats.events


def _export_peak_mb(store: Store) -> float:
    """The most memory Python objects took at once during one export, in MB (tracemalloc:
    every allocation counted, unlike RSS, which memory freed by the seeding can hide)."""
    tracemalloc.start()
    try:
        export_jsonl(store, _Sink())  # type: ignore[arg-type]
        return tracemalloc.get_traced_memory()[1] / 1e6
    finally:
        tracemalloc.stop()


def exporting(quick: bool) -> list[Figure]:
    big = 100_000 if quick else 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        small_store = Store.open(f"sqlite:///{tmp}/small.db")
        seed(small_store, sessions=big // 200, events=big // 10, days=5)
        small_peak = _export_peak_mb(small_store)
        small_store.close()
        store = Store.open(f"sqlite:///{tmp}/export.db")
        seed(store, sessions=big // 20, events=big, days=5)
        seconds, events = _export(store)
        peak = _export_peak_mb(store)
        store.close()
    rate = events / seconds
    return [
        Figure("lifecycle", f"export of {events:,} events (JSON Lines)", rate, "events/s",
               ">= 50,000", rate >= 50_000, "", f"{seconds:.1f} s; load average "
               f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"),
        Figure("lifecycle", "export peak memory (tracemalloc)", peak, "MB",
               "flat", peak <= small_peak * 1.5 + 5,
               f"{small_peak:.1f} MB exporting {big // 10:,} events", "ten times the events, "
               "the same peak: nothing grows with the export"),
    ]


def postgres_space(quick: bool) -> list[Figure]:
    from tests.fakes.postgres import server_from_env

    rows = 50_000 if quick else 300_000
    server = server_from_env()
    try:
        url = server.fresh_url()
        store = Store.open(url)

        def size() -> int:
            with store.reading() as conn:
                return int(conn.exec_driver_sql(
                    "SELECT pg_total_relation_size('events')").scalar() or 0)

        seed(store, sessions=rows // 10, events=rows, days=5, now=time.time() - 100 * DAY)
        first = size()
        prune(store, RetentionPolicy(events_s=90 * DAY, content_s=30 * DAY, duty=1.0))
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM events")  # what autovacuum does after the deletes
        seed(store, sessions=rows // 10, events=rows, days=5, seed_value=8)
        second = size()
        store.close()
    finally:
        server.stop()
    ratio = second / first
    return [Figure("lifecycle", "PostgreSQL events table after prune + refill", ratio, "×",
                   "<= 1.3", ratio <= 1.3, f"{first / 1e6:,.1f} MB after the first fill",
                   f"{second / 1e6:,.1f} MB after pruning {rows:,} and writing {rows:,} more")]


PARTS = {"pruning": pruning, "forget": erasure, "export": exporting, "postgres": postgres_space}


def run(quick: bool, with_postgres: bool = False, only: str | None = None) -> list[Figure]:
    if only is not None:
        return PARTS[only](quick)
    figures = [*pruning(quick), *erasure(quick), *exporting(quick)]
    if with_postgres:
        figures.extend(postgres_space(quick))
    return figures


def _only(argv: list[str]) -> str | None:
    """``--only PART`` taken out of ``argv``."""
    if "--only" not in argv:
        return None
    at = argv.index("--only")
    part = argv[at + 1] if at + 1 < len(argv) else ""
    if part not in PARTS:
        sys.exit(f"--only takes one of: {', '.join(PARTS)}")
    del argv[at:at + 2]
    return part


if __name__ == "__main__":
    argv = [arg for arg in sys.argv[1:] if arg != "--postgres"]
    part = _only(argv)
    postgres = "--postgres" in sys.argv
    run_main(argv, __doc__ or "", lambda quick: run(quick, postgres, part), "data lifecycle")
