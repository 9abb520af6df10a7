"""The activity rollups the dashboard reads: kept on the write path, rebuilt by migration 4's
backfill to the same numbers, crash-closed sessions counted, percentiles within 5 %."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from benchmarks.seed import seed
from opencell.dashboard import queries
from opencell.records import Record, new_session_id
from opencell.store import _activity
from opencell.store.store import Store
from opencell.store.tables import (
    cost_daily,
    cost_rollups,
    event_rollups,
    latency_rollups,
    user_cost_rollups,
)

TABLES = (event_rollups, latency_rollups, cost_daily, user_cost_rollups)


def snapshot(store: Store) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """Every rollup row by (table, key): its values (floats compared approximately: sums
    added in another order differ in the last bits)."""
    out: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    with store.engine.connect() as conn:
        for table in TABLES:
            keys = [c.name for c in table.c if c.primary_key]
            for row in conn.execute(sa.select(table)).mappings():
                out[(table.name, *(row[k] for k in keys))] = tuple(
                    v for name, v in row.items() if name not in keys)
    return out


@pytest.fixture
def seeded(tmp_path: Path) -> Store:
    store = Store.open(f"sqlite:///{tmp_path}/seeded.db")
    seed(store, sessions=300, events=3_000, days=10)
    return store


def test_the_backfill_rebuilds_exactly_what_the_write_path_kept(seeded: Store) -> None:
    kept = snapshot(seeded)
    assert {key[0] for key in kept} == {table.name for table in TABLES}
    with seeded.engine.begin() as conn:
        for table in TABLES:
            conn.execute(table.delete())
        _activity.backfill(conn)
    rebuilt = snapshot(seeded)
    assert rebuilt.keys() == kept.keys()
    for key, values in kept.items():
        assert rebuilt[key] == pytest.approx(values, rel=1e-9, abs=1e-12), key
    seeded.close()


def test_rollups_agree_with_the_events_and_the_user_keyed_cost_rollups(seeded: Store) -> None:
    with seeded.engine.connect() as conn:
        by_kind = dict(conn.execute(sa.text(
            "SELECT kind, count(*) FROM events GROUP BY kind")).all())
        rolled = dict(conn.execute(sa.select(event_rollups.c.kind,
                                             sa.func.sum(event_rollups.c["count"]))
                                   .group_by(event_rollups.c.kind)).all())
        assert rolled == by_kind
        total = conn.execute(sa.select(sa.func.sum(cost_rollups.c.cost_usd))).scalar()
        assert conn.execute(sa.select(sa.func.sum(cost_daily.c.cost_usd))).scalar() == \
            pytest.approx(total)
        for period in ("week", "month"):
            assert conn.execute(sa.select(sa.func.sum(user_cost_rollups.c.cost_usd))
                                .where(user_cost_rollups.c.period == period)).scalar() == \
                pytest.approx(total)
    seeded.close()


def test_latency_percentiles_are_within_five_percent_of_exact(seeded: Store) -> None:
    with seeded.engine.connect() as conn:
        exact = sorted(ms for (ms,) in conn.execute(sa.text(
            "SELECT e.duration_ms FROM events e JOIN sessions s ON s.seq = e.session_seq "
            "WHERE e.kind = 'message' AND s.bot = 'support'")))
        histogram = dict(conn.execute(
            sa.select(latency_rollups.c.bucket, sa.func.sum(latency_rollups.c["count"]))
            .where(latency_rollups.c.bot == "support").group_by(latency_rollups.c.bucket)).all())
    for q in (50, 95):
        truth = exact[max(0, math.ceil(q / 100 * len(exact)) - 1)]
        estimate = queries.percentile(histogram, q)
        assert estimate is not None and abs(estimate - truth) / truth <= 0.05 + 1e-9, (q, truth)
    seeded.close()


def test_a_session_closed_after_a_crash_counts_as_ended(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path}/crash.db")
    sid, now = new_session_id(), time.time()
    store.write_batch([Record("session_start", sid, now, "bot", {"bot": "bot", "user_id": "u"})])
    assert store.close_orphans(lambda owner: False) == [sid]
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(event_rollups.c.kind, event_rollups.c.name,
                                      event_rollups.c["count"])
                            .order_by(event_rollups.c.kind)).all()
    assert [tuple(r) for r in rows] == [("session_end", "interrupted", 1),
                                        ("session_start", "bot", 1)]
    store.close()


def test_a_failed_model_call_is_not_an_unpriced_one(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path}/failed.db")
    sid, now = new_session_id(), time.time()
    store.write_batch([
        Record("session_start", sid, now, "bot", {"bot": "bot", "user_id": "u"}),
        Record("llm_call", sid, now, "claude:x", {"provider": "claude", "model": "x",
                                                  "error": "boom"}, 5.0, False),
        Record("llm_call", sid, now, "claude:y", {"provider": "claude", "model": "y",
                                                  "cost_usd": None}, 5.0, True)])
    with store.engine.connect() as conn:
        day = queries.today()
        assert [u["model"] for u in queries.unpriced_models(conn, day, day)] == ["y"]
    store.close()
