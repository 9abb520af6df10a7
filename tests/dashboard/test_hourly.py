"""The hourly rollups (schema v14) and each session's failed turns: kept on the write path, in
agreement with the daily rollups and the events, and rebuilt by the v14 upgrade of a store
written before it to the same numbers. Retention keeps them; forget has no user to change."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from benchmarks.seed import seed
from opencell.dashboard import quality
from opencell.records import Record, new_session_id
from opencell.store import migrations
from opencell.store.retention import RetentionPolicy, prune
from opencell.store.store import Store
from opencell.store.tables import (
    cost_daily,
    cost_hourly,
    event_hourly,
    event_rollups,
    latency_hourly,
    latency_rollups,
    sessions,
    ttft_rollups,
)

HOURLY = (event_hourly, latency_hourly, cost_hourly, ttft_rollups)


def snapshot(store: Store) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """Every hourly rollup row and every session's failed turns, by key."""
    out: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    with store.engine.connect() as conn:
        for table in HOURLY:
            keys = [c.name for c in table.c if c.primary_key]
            for row in conn.execute(sa.select(table)).mappings():
                out[(table.name, *(row[k] for k in keys))] = tuple(
                    v for name, v in row.items() if name not in keys)
        for sid, failed in conn.execute(sa.select(sessions.c.id, sessions.c.failed_turns)):
            out[("sessions", sid)] = (failed,)
    return out


FIRST_TOKENS = [120.0, 180.0, 240.0, 300.0, 900.0, 2400.0]


def streamed_calls(store: Store) -> str:
    """A session of streamed model calls (the seed has none); its id."""
    sid, now = new_session_id(), time.time()
    store.write_batch([Record("session_start", sid, now, "bot", {"bot": "streamer"}), *(
        Record("llm_call", sid, now + n, "claude:asked",
               {"provider": "claude", "model": "asked", "response_model": "answered",
                "streamed": True, "time_to_first_token_ms": ms, "input_tokens": 5,
                "output_tokens": 5, "cost_usd": 0.001}, ms + 100, True)
        for n, ms in enumerate(FIRST_TOKENS))])
    return sid


@pytest.fixture
def seeded(isolated_store: str) -> Store:
    """A seeded store: SQLite and PostgreSQL (the suite's ``isolated_store``)."""
    store = Store.open(isolated_store)
    seed(store, sessions=300, events=3_000, days=3)
    streamed_calls(store)
    return store


def summed(conn: sa.Connection, stmt: sa.Select[Any]) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """Rows of ``stmt`` by every column but the last ones named ``v*`` (floats rounded)."""
    out = {}
    for row in conn.execute(stmt).mappings():
        keys = tuple(v for k, v in row.items() if not k.startswith("v"))
        out[keys] = tuple(round(float(v), 9) for k, v in row.items() if k.startswith("v"))
    return out


def test_hours_add_up_to_their_days(seeded: Store) -> None:
    def day(hour: Any, start: int, length: int) -> Any:  # literals: PostgreSQL groups by it
        return sa.func.substr(hour, sa.literal_column(str(start)), sa.literal_column(str(length)))

    with seeded.engine.connect() as conn:
        e, eh = event_rollups.c, event_hourly.c
        assert summed(conn, sa.select(e.day, e.bot, e.kind, sa.func.sum(e["count"]).label("v1"),
                                      sa.func.sum(e.failures).label("v2"))
                      .group_by(e.day, e.bot, e.kind)) == summed(
            conn, sa.select(day(eh.hour, 1, 10).label("day"), eh.bot, eh.kind,
                            sa.func.sum(eh["count"]).label("v1"),
                            sa.func.sum(eh.failures).label("v2"))
            .group_by(day(eh.hour, 1, 10), eh.bot, eh.kind))
        la, lh = latency_rollups.c, latency_hourly.c
        assert summed(conn, sa.select(la.day, la.bot, la.bucket, la["count"].label("v"))) == \
            summed(conn, sa.select(day(lh.hour, 1, 10).label("day"), lh.bot, lh.bucket,
                                   sa.func.sum(lh["count"]).label("v"))
                   .group_by(day(lh.hour, 1, 10), lh.bot, lh.bucket))
        c, ch = cost_daily.c, cost_hourly.c
        sums = ("calls", "input_tokens", "output_tokens", "cost_usd", "unpriced_calls")
        daily = summed(conn, sa.select(c.day, c.bot, c.model, *(
            sa.func.sum(c[n]).label(f"v{i}") for i, n in enumerate(sums)))
            .group_by(c.day, c.bot, c.model))
        hourly = summed(conn, sa.select(day(ch.hour, 1, 10).label("day"), ch.bot, ch.model, *(
            sa.func.sum(ch[n]).label(f"v{i}") for i, n in enumerate(sums)))
            .group_by(day(ch.hour, 1, 10), ch.bot, ch.model))
        assert hourly == daily and len({k[0] for k in daily}) >= 3
        # Every hour key names the hour its events happened in.
        by_hour = Counter(time.strftime("%Y-%m-%dT%H", time.gmtime(ts)) for (ts,) in conn.execute(
            sa.text("SELECT ts FROM events WHERE kind = 'message'")))
        rolled = dict(conn.execute(sa.select(eh.hour, sa.func.sum(eh["count"]))
                                   .where(eh.kind == "message").group_by(eh.hour)).all())
        assert rolled == dict(by_hour)
    seeded.close()


def test_failed_turns_are_the_failed_message_events(seeded: Store) -> None:
    with seeded.engine.connect() as conn:
        truth = dict(conn.execute(sa.text(
            "SELECT s.id, count(e.id) FROM sessions s LEFT JOIN events e ON e.session_seq = "
            "s.seq AND e.kind = 'message' AND e.success = false GROUP BY s.id")).all())
        stored = dict(conn.execute(sa.select(sessions.c.id, sessions.c.failed_turns)).all())
    assert stored == truth and sum(truth.values()) > 0
    seeded.close()


def test_time_to_first_token_from_its_rollup(seeded: Store) -> None:
    today = datetime.now(UTC).date()
    with seeded.reading() as conn:
        (row,) = quality.time_to_first_token(conn, first=today, last=today, bot="streamer")
        assert quality.time_to_first_token(conn, first=today, last=today, bot="support") == []
    assert (row["bot"], row["model"], row["calls"]) == ("streamer", "answered", 6)
    for q, exact in ((50, FIRST_TOKENS[2]), (95, FIRST_TOKENS[-1])):  # nearest rank
        assert abs(row[f"p{q}_ms"] - exact) / exact <= 0.05 + 1e-9, (q, row)
    seeded.close()


def test_the_v14_upgrade_rebuilds_what_the_write_path_kept(seeded: Store,
                                                           isolated_store: str) -> None:
    kept = snapshot(seeded)
    assert {key[0] for key in kept} == {"event_hourly", "latency_hourly", "cost_hourly",
                                        "ttft_rollups", "sessions"}
    with seeded.engine.begin() as conn:  # the store as version 13 left it
        for table in HOURLY:
            conn.execute(sa.text(f"DROP TABLE {table.name}"))
        conn.execute(sa.text("ALTER TABLE sessions DROP COLUMN failed_turns"))
        conn.execute(sa.text("DROP TABLE shard_sessions"))  # and what v15 added after it
        conn.execute(sa.text("ALTER TABLE session_history DROP COLUMN idle_until"))
        conn.execute(sa.text("UPDATE opencell_schema SET version = 13"))
    seeded.close()
    upgraded = Store.open(isolated_store)
    try:
        assert upgraded.stats()["schema_version"] == migrations.LATEST
        rebuilt = snapshot(upgraded)
        assert rebuilt.keys() == kept.keys()
        for key, values in kept.items():
            assert rebuilt[key] == pytest.approx(values, rel=1e-9, abs=1e-12), key
    finally:
        upgraded.close()


def test_retention_keeps_the_hourly_rollups(isolated_store: str) -> None:
    store = Store.open(isolated_store)
    sid, long_ago = new_session_id(), time.time() - 200 * 86400
    store.write_batch([
        Record("session_start", sid, long_ago, "bot", {"bot": "bot", "user_id": "u"}),
        Record("llm_call", sid, long_ago + 1, "claude:x",
               {"provider": "claude", "model": "x", "input_tokens": 10, "output_tokens": 5,
                "cost_usd": 0.5}, 20.0, True),
        Record("message", sid, long_ago + 2, "turn", {"input": "hi", "output": "no"}, 900.0,
               False)])
    # A recent event: retention never deletes the newest one (export cursors rely on it).
    store.write_batch([Record("session_start", new_session_id(), time.time(), "bot",
                              {"bot": "bot", "user_id": "v"})])
    before = snapshot(store)
    prune(store, RetentionPolicy(events_s=90 * 86400, content_s=30 * 86400, duty=1.0))
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM events")).scalar() == 1
    assert snapshot(store) == before  # the events are gone; their hours and failed turn stay
    assert before[("sessions", sid)] == (1,)
    store.close()
