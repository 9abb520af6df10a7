"""The outbox: its migration, where a new exporter starts, and the lease between processes."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from opencell.config import OpenCellConfig, StoreConfig
from opencell.exporters import outbox as outbox_module
from opencell.exporters.outbox import Outbox, cursor_rows
from opencell.observability.observer import Observability
from opencell.store import migrations
from opencell.store.store import Store
from tests.fakes.clock import ManualClock


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
    assert first.claim() == 0
    assert second.claim() is None  # another host holds a live lease
    assert first.advance(5, events_delivered=5, spans_delivered=4)
    clock[0] += 31  # the lease ran out: the other process takes over where it stopped
    assert second.claim() == 5
    assert not first.advance(9, events_delivered=4, spans_delivered=4)  # lost: no write
    second.release()
    assert first.claim() == 5  # released at a graceful stop: taken at once
    (row,) = cursor_rows(store)
    assert (row["last_event_id"], row["delivered_spans"], row["lease_owner"]) == (
        5, 4, "hostA:1")
    store.close()


def test_a_settle_delay_hides_ids_that_may_still_be_committing(
        isolated_store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = ManualClock(1000.0)  # the outbox reads time.monotonic() when it looks
    monkeypatch.setattr(outbox_module, "time", SimpleNamespace(monotonic=clock, time=time.time))
    obs = Observability.from_config(OpenCellConfig(store=StoreConfig(url=isolated_store)))
    session = obs.start_session(bot="b", bot_type="agent", user_id="u", platform="api")
    assert obs.recorder.flush(5)
    outbox = Outbox(obs.store, "otlp", settle_s=0.25)  # type: ignore[arg-type]
    assert outbox.horizon() == 0  # nothing has been visible long enough yet
    clock.advance(0.125)  # (binary fractions: exact sums)
    assert outbox.horizon() == 0  # still not
    clock.advance(0.125)
    obs.custom(session, "later", {})
    assert obs.recorder.flush(5)
    assert outbox.horizon() == 1  # the id seen 0.25 s ago, not the newer one
    assert [e.id for e in outbox.window(0, 10, outbox.horizon())] == [1]
    obs.close()
