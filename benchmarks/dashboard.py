"""Benchmark: the dashboard on a big store — p95 of every API route and every page, over HTTP.

Run: python -m benchmarks.dashboard [--quick] [--db PATH] [--requests N] [--postgres]

Seeds a SQLite store with 1,000,000 events in 100,000 sessions over 30 days through the real
``Store.write_batch`` (``benchmarks/seed.py``; ``--quick`` seeds 200,000 events in 20,000
sessions), serves it with the real dashboard (uvicorn on 127.0.0.1), and times sequential
requests from an HTTP client: for each route, a mix of realistic parameters (filters, sorts,
the second page of a listing, every cost breakdown and period, sessions picked at random),
each warmed once, then ``--requests`` timed rounds. Reported per route: p95 (target: API
≤ 50 ms, pages ≤ 300 ms), p50, and the slowest variant. ``--db`` keeps the seeded file for
the next run (seeding 1M events takes about half a minute). ``--postgres`` seeds and serves a
throwaway loopback PostgreSQL instead (binaries as for the tests, see tests/fakes/postgres.py;
``OPENCELL_TEST_POSTGRES_URL`` uses an existing server): issue 13's "as on SQLite".
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._report import Figure, percentile, print_table  # noqa: E402
from benchmarks.seed import seed  # noqa: E402

API_TARGET_MS = 50.0
PAGE_TARGET_MS = 300.0


@contextmanager
def serving(url: str) -> Iterator[str]:
    """The dashboard over ``url`` on 127.0.0.1 (any free port), in a thread of its own."""
    from opencell.cli._common import settle_heap
    from opencell.dashboard.server import DashboardServer
    from opencell.store.store import Store

    loop = asyncio.new_event_loop()
    store = Store.open(url)
    server = DashboardServer(store, port=0)
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(server.start())
        ready.set()
        loop.run_forever()
        loop.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(30)
    settle_heap()  # as `opencell dashboard` does once it is up
    try:
        yield server.url.rstrip("/")
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        store.close()


def variants(base: str, sample: dict[str, Any]) -> dict[str, list[str]]:
    """Per route, the requests to time (paths with query strings)."""
    week_ago = (datetime.now(UTC) - timedelta(days=7)).date().isoformat()
    three = (datetime.now(UTC) - timedelta(days=3)).date().isoformat()
    # The longest hourly range: seven UTC days, today included.
    hourly_week = (datetime.now(UTC) - timedelta(days=6)).date().isoformat()
    today = datetime.now(UTC).date().isoformat()
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    ids = sample["ids"]
    listing = ["", "?sort=cost", "?sort=duration", "?sort=started_at&order=asc",
               "?bot=devops", "?bot=devops&sort=cost", "?platform=api", "?status=failed",
               "?status=open", "?tag=vip", f"?user={sample['heavy_user']}",
               f"?user={sample['rare_user']}&sort=cost", f"?q={sample['rare_user']}",
               f"?q=user-{sample['rare_user'][1:]}", f"?q={ids[0][:13]}",
               f"?since={week_ago}", f"?since={three}&until={three}&sort=cost",
               f"?cursor={sample['cursor']}", "?limit=200",
               # Search over words said (the search_terms index), short ids, both sort ways.
               "?q=parcel", "?q=oomkilled", "?q=exit+code+137&sort=cost", "?q=zebra",
               f"?q={ids[1][-12:]}", "?sort=cost&order=asc", f"?before={sample['before']}"]
    costs = [f"?by={by}&period={period}" for by in ("bot", "user", "platform", "provider",
                                                    "model")
             for period in ("day", "week", "month")]
    return {
        "GET /api/sessions": [f"/api/sessions{q}" for q in listing],
        "GET /api/sessions/{id}": [f"/api/sessions/{i}" for i in ids],
        "GET /api/analytics": ["/api/analytics", "/api/analytics?bot=support",
                               f"/api/analytics?since={week_ago}",
                               f"/api/analytics?since={today}&until={today}",
                               f"/api/analytics?since={yesterday}&until={today}&bot=devops"],
        "GET /api/trends": ["/api/trends", f"/api/trends?since={today}&until={today}",
                            f"/api/trends?since={yesterday}&until={today}&bot=support",
                            f"/api/trends?since={hourly_week}&per=hour"],
        "GET /api/costs": [f"/api/costs{q}" for q in costs],
        "GET /api/stream (first event)": ["/api/stream"],
        "GET /healthz": ["/healthz"],
        "GET /metrics": ["/metrics"],
        "page /sessions": ["/sessions", "/sessions?sort=cost", "/sessions?status=failed",
                           f"/sessions?bot=guardian&since={week_ago}", "/sessions?q=parcel",
                           f"/sessions?q={ids[2][-12:]}", "/sessions?sort=duration&order=asc"],
        "page /sessions/{id}": [f"/sessions/{i}" for i in ids[:10]],
        "page /analytics": ["/analytics", "/analytics?bot=devops",
                            f"/analytics?since={today}&until={today}",
                            f"/analytics?since={yesterday}&until={today}&bot=support",
                            f"/analytics?since={hourly_week}&per=hour"],
        "page /costs": ["/costs", "/costs?period=day", "/costs?period=week"],
    }


def sample_of(url: str) -> dict[str, Any]:
    """Real ids and users from the store, for the request mix."""
    import sqlalchemy as sa

    from opencell.store.store import Store
    from opencell.store.tables import sessions

    store = Store.open(url)
    rng = random.Random(3)
    with store.engine.connect() as conn:
        top = conn.execute(sa.text("SELECT max(seq) FROM sessions")).scalar() or 1
        seqs = [rng.randint(1, top) for _ in range(40)]
        s = sessions.c
        ids = [row[0] for row in conn.execute(sa.select(s.id).where(s.seq.in_(seqs)))]
        heavy = conn.execute(sa.text("SELECT user_id FROM sessions WHERE user_id IS NOT NULL "
                                     "ORDER BY seq DESC LIMIT 1")).scalar()
        rare = conn.execute(sa.text(
            "SELECT user_id FROM sessions WHERE seq > :s LIMIT 1"), {"s": top // 3}).scalar()
    _, cursor = store.list_sessions(limit=50)
    second = store.session_page(limit=50, cursor=cursor, count=False)
    store.close()
    return {"ids": ids, "heavy_user": heavy, "rare_user": rare, "cursor": cursor,
            "before": second["prev_cursor"]}


def time_route(client: Any, paths: list[str], rounds: int) -> tuple[list[float], dict[str, float]]:
    """All timings (ms) for ``paths`` × ``rounds``, and each path's own p95."""
    stream = paths == ["/api/stream"]
    per_path: dict[str, list[float]] = {path: [] for path in paths}
    for path in paths:  # warm-up
        _request(client, path, stream)
    for _ in range(rounds):
        for path in paths:
            per_path[path].append(_request(client, path, stream))
    everything = [ms for values in per_path.values() for ms in values]
    return everything, {path: percentile(values, 95) for path, values in per_path.items()}


def _request(client: Any, path: str, stream: bool) -> float:
    started = time.perf_counter()
    if stream:
        with client.stream("GET", path) as response:
            for _ in response.iter_bytes():
                break  # the first event: the stream is open and talking
    else:
        response = client.get(path)
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise RuntimeError(f"{path} answered {response.status_code}")
    return elapsed


def run(quick: bool = False, db: str | None = None, rounds: int | None = None,
        postgres_url: str | None = None) -> list[Figure]:
    """Seed (unless ``db`` already holds a seeded store), serve, time; the figures.
    ``postgres_url``: an empty PostgreSQL schema to seed and serve instead of SQLite."""
    import httpx

    sessions, events = (20_000, 200_000) if quick else (100_000, 1_000_000)
    rounds = rounds or (8 if quick else 20)
    scratch = None
    if db is None and postgres_url is None:
        scratch = tempfile.TemporaryDirectory(prefix="opencell-dash-")
        db = str(Path(scratch.name) / "seeded.db")
    url = postgres_url or f"sqlite:///{db}"
    seeded_note = ""
    empty = not _seeded(url) if postgres_url is not None else not Path(str(db)).exists()
    if empty:
        result = seed(url, sessions=sessions, events=events)
        seeded_note = f"seeded in {result['seconds']:.0f}s"
    sample = sample_of(url)
    figures: list[Figure] = []
    scale = f"{events:,} events / {sessions:,} sessions" + (" (quick)" if quick else "") \
        + (", PostgreSQL" if postgres_url else ", SQLite")
    with serving(url) as base, httpx.Client(base_url=base, timeout=60) as client:
        for route, paths in variants(base, sample).items():
            timings, worst = time_route(client, paths, rounds)
            page = route.startswith("page")
            target = PAGE_TARGET_MS if page else API_TARGET_MS
            p95 = percentile(timings, 95)
            slowest = max(worst, key=lambda p: worst[p])
            figures.append(Figure(
                "dashboard", f"{route} p95", round(p95, 1), "ms",
                f"<= {target:.0f}", p95 <= target,
                f"p50 {percentile(timings, 50):.1f} ms",
                f"{len(paths)} variant(s) × {rounds}; slowest {slowest} "
                f"p95 {worst[slowest]:.1f} ms; {scale}"))
    if seeded_note:
        figures.append(Figure("dashboard", "seeding via Store.write_batch", None, "", "", None,
                              "", f"{scale}, {seeded_note}"))
    if scratch is not None:
        scratch.cleanup()
    return figures


def _seeded(url: str) -> bool:
    from opencell.store.store import Store

    store = Store.open(url)
    try:
        return bool(store.stats()["sessions"])
    finally:
        store.close()


def main(argv: list[str] | None = None) -> list[Figure]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="200,000 events / 20,000 sessions, fewer rounds")
    parser.add_argument("--db", help="seeded SQLite file to reuse (created when missing)")
    parser.add_argument("--requests", type=int, default=None, help="timed rounds per request")
    parser.add_argument("--postgres", action="store_true",
                        help="a throwaway loopback PostgreSQL instead of SQLite")
    parser.add_argument("--postgres-url", help="a PostgreSQL store to reuse (seeded when "
                        "empty), e.g. from an earlier run")
    args = parser.parse_args(argv)
    if args.postgres_url:
        figures = run(args.quick, None, args.requests, postgres_url=args.postgres_url)
    elif args.postgres:
        from tests.fakes.postgres import server_from_env

        server = server_from_env()
        try:
            figures = run(args.quick, None, args.requests, postgres_url=server.fresh_url())
        finally:
            server.stop()
    else:
        figures = run(args.quick, args.db, args.requests)
    print_table(figures, "Dashboard on a big store" + (" (quick)" if args.quick else "")
                + (", PostgreSQL" if args.postgres or args.postgres_url else ""))
    return figures


if __name__ == "__main__":
    main()
