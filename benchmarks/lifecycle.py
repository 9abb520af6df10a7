"""Benchmark: the data lifecycle — pruning under ingest, forget, export, PostgreSQL space reuse.

Run: python -m benchmarks.lifecycle [--quick] [--postgres]

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

``--quick`` uses a tenth of the events (and 2,000 sessions for forget).
"""

from __future__ import annotations

import io
import sys
import tempfile
import threading
import time
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
    latencies (ms) sent back when ``halt`` is set."""
    from opencell.calendar import utc_date
    from opencell.dashboard import queries

    store = Store.open(url)
    samples = []
    while not halt.is_set():
        began = time.perf_counter()
        store.list_sessions(limit=50)
        with store.reading() as conn:
            queries.cost_breakdown(conn, "bot", "month", utc_date(time.time()))
            queries.tick(conn)
        samples.append((time.perf_counter() - began) * 1000)
        halt.wait(0.02)
    store.close()
    out.put(samples)


class _Reader:
    """The dashboard's reads from another process, started and stopped around a phase."""

    def __init__(self, url: str) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self.halt, self.out = context.Event(), context.Queue()
        self.process = context.Process(target=_read_loop, args=(url, self.halt, self.out),
                                       daemon=True)

    def start(self) -> None:
        self.process.start()

    def stop(self) -> list[float]:
        self.halt.set()
        samples: list[float] = self.out.get(timeout=120)
        self.process.join(30)
        return samples


def pruning(quick: bool) -> list[Figure]:
    old = 100_000 if quick else 1_000_000
    burst = 50_000 if quick else 200_000
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/prune.db"
        store = Store.open(url)
        seed(store, sessions=old // 10, events=old, days=5, now=time.time() - 100 * DAY)
        reader = _Reader(url)
        reader.start()
        before = ingest_rate(store, burst, 100)
        calm = reader.stop()
        done = threading.Event()
        result: dict[str, Any] = {}

        def pruner() -> None:
            began = time.perf_counter()
            result["report"] = prune(store, POLICY)
            result["seconds"] = time.perf_counter() - began
            done.set()

        thread = threading.Thread(target=pruner, daemon=True)
        thread.start()
        reader = _Reader(url)
        reader.start()
        during = [ingest_rate(store, burst, 100)]
        while not done.is_set() and len(during) < 20:
            during.append(ingest_rate(store, burst, 100))
        busy = reader.stop()
        thread.join()
        after = ingest_rate(store, burst, 100)
        store.close()
    baseline = (before + after) / 2
    rate = sorted(during)[len(during) // 2]
    report = result["report"]
    p95, calm95 = percentile(busy, 95), percentile(calm, 95)
    return [
        Figure("lifecycle", "ingest while pruning / without", rate / baseline * 100, "%",
               ">= 80", rate / baseline >= 0.8,
               f"{baseline:,.0f} events/s without", f"{rate:,.0f} events/s while pruning "
               f"(median of {len(during)} bursts of {burst:,})"),
        Figure("lifecycle", "dashboard reads p95 while pruning", p95, "ms", "<= 50",
               p95 <= 50, f"{calm95:.1f} ms during ingest alone",
               f"{len(busy)} samples (sessions page + cost breakdown + live tick) from "
               "another process"),
        Figure("lifecycle", "expired events pruned", report.events_deleted / result["seconds"],
               "events/s", "", None, f"{old:,} seeded 100 days ago",
               f"{report.events_deleted:,} deleted in {result['seconds']:.1f} s at 20 % duty, "
               f"{report.pages_vacuumed:,} pages handed back"),
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


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * 4096 / 1e6


class _Sink(io.TextIOBase):
    def __init__(self) -> None:
        self.chars = 0

    def write(self, text: str) -> int:
        self.chars += len(text)
        return len(text)


def _export(store: Store) -> tuple[float, int, float]:
    """(seconds, events, peak RSS growth MB) of one export into a counting sink."""
    start_rss, peak = _rss_mb(), [0.0]

    def sample(_sessions: int, _events: int) -> None:
        if _sessions % 100 == 0:
            peak[0] = max(peak[0], _rss_mb() - start_rss)

    began = time.perf_counter()
    stats = export_jsonl(store, _Sink(), progress=sample)  # type: ignore[arg-type]
    return time.perf_counter() - began, stats.events, peak[0]


def exporting(quick: bool) -> list[Figure]:
    big = 100_000 if quick else 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        small_store = Store.open(f"sqlite:///{tmp}/small.db")
        seed(small_store, sessions=big // 200, events=big // 10, days=5)
        _, _, small_growth = _export(small_store)
        small_store.close()
        store = Store.open(f"sqlite:///{tmp}/export.db")
        seed(store, sessions=big // 20, events=big, days=5)
        seconds, events, growth = _export(store)
        store.close()
    rate = events / seconds
    return [
        Figure("lifecycle", f"export of {events:,} events (JSON Lines)", rate, "events/s",
               ">= 50,000", rate >= 50_000, "", f"{seconds:.1f} s"),
        Figure("lifecycle", "export memory growth (peak RSS)", growth, "MB",
               "flat", growth <= small_growth + 20,
               f"{small_growth:.1f} MB exporting {big // 10:,} events", ""),
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


def run(quick: bool, with_postgres: bool = False) -> list[Figure]:
    figures = [*pruning(quick), *erasure(quick), *exporting(quick)]
    if with_postgres:
        figures.extend(postgres_space(quick))
    return figures


if __name__ == "__main__":
    postgres = "--postgres" in sys.argv
    argv = [arg for arg in sys.argv[1:] if arg != "--postgres"]
    run_main(argv, __doc__ or "", lambda quick: run(quick, postgres), "data lifecycle")
