"""The outbox: its migration, where a new exporter starts, and the lease between processes."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from opencell.config import OpenCellConfig, StoreConfig
from opencell.exporters.outbox import Outbox, cursor_rows
from opencell.observability.observer import Observability
from opencell.store import migrations, tables
from opencell.store.store import Store


def test_migrations_are_contiguous_and_build_the_cursor_table(isolated_store: str) -> None:
    names = [step.__name__ for step in migrations.MIGRATIONS]
    assert [int(name.split("_")[1][1:]) for name in names] == list(
        range(1, len(names) + 1))
    store = Store.open(isolated_store)
    with store.engine.connect() as conn:
        assert sa.inspect(conn).has_table("export_cursors")
        assert migrations.current_version(conn) == migrations.LATEST
    store.close()


def test_a_new_exporter_starts_at_the_open_sessions_not_the_history(
        isolated_store: str) -> None:
    obs = Observability.from_config(OpenCellConfig(store=StoreConfig(url=isolated_store)))
    old = obs.start_session(bot="b", bot_type="agent", user_id="u", platform="api")
    obs.custom(old, "history", {})
    obs.end_session(old, reason="explicit", success=True)
    current = obs.start_session(bot="b", bot_type="agent", user_id="u", platform="api")
    obs.custom(current, "now", {})
    assert obs.recorder.flush(5)
    outbox = Outbox(obs.store, "agentops")  # type: ignore[arg-type]
    start = outbox.claim()
    assert start is not None
    window = outbox.window(start, 100)
    assert [(e.kind, e.name) for e in window] == [("session_start", "b"), ("custom", "now")]
    obs.close()


def test_one_process_at_a_time_drains_an_outbox(isolated_store: str) -> None:
    store = Store.open(isolated_store)
    clock = [1000.0]
    first = Outbox(store, "otlp", owner="hostA:1", lease_s=30, wall=lambda: clock[0])
    second = Outbox(store, "otlp", owner="hostB:2", lease_s=30, wall=lambda: clock[0])
    start = first.claim()
    assert start is not None
    assert second.claim() is None  # another host holds a live lease
    moved = (start[0], start[1] + 5)
    assert first.advance(moved, events_delivered=5, spans_delivered=4)
    clock[0] += 31  # the lease ran out: the other process takes over where it stopped
    assert second.claim() == moved
    assert not first.advance((start[0], start[1] + 9), events_delivered=4,
                             spans_delivered=4)  # lost: no write
    second.release()
    assert first.claim() == moved  # released at a graceful stop: taken at once
    (row,) = cursor_rows(store)
    assert (row["last_event_id"], row["delivered_spans"], row["lease_owner"]) == (
        moved[1], 4, "hostA:1")
    store.close()


@pytest.mark.postgres
def test_an_event_whose_transaction_commits_late_is_read_when_it_commits(
        postgres_url: str) -> None:
    """F2: an event takes its id, then its transaction waits (a lock, a stall); later ids
    commit first. The outbox must not pass it: it reads nothing of the later transactions
    until the early one ends, then everything in commit-safe order. (Today's main skipped it
    for good once 2 s had passed; and F1: with no settle delay, nothing is held back.)"""
    obs = Observability.from_config(OpenCellConfig(store=StoreConfig(url=postgres_url)))
    store = obs.store
    assert store is not None
    session = obs.start_session(bot="b", bot_type="agent", user_id="u", platform="api")
    assert obs.recorder.flush(5)
    outbox = Outbox(store, "otlp")
    start = outbox.claim()
    assert start is not None
    seen = [e.kind for e in outbox.window(start, 100)]
    assert seen == ["session_start"]  # committed just now: visible at once (F1)
    with store.engine.connect() as late:
        seq = late.execute(sa.select(tables.sessions.c.seq)).scalar_one()
        late.execute(tables.events.insert().values(session_seq=seq, ts=time.time(),
                                                   kind="custom", name="late", data="{}"))
        obs.custom(session, "fast", {})  # a later id, committed first
        assert obs.recorder.flush(5)
        pending = outbox.window(start, 100)
        assert [e.name for e in pending] == ["b"]  # "fast" waits behind the open transaction
        late.commit()
    names = [e.name for e in outbox.window(start, 100)]
    assert names == ["b", "late", "fast"]
    obs.close()
