"""A batch holding nothing but unreadable records is quarantined whole; the store stays usable."""

from __future__ import annotations

import time

import sqlalchemy as sa

from opencell.records import Record, new_session_id
from opencell.store import Store
from opencell.store.tables import quarantine


def test_a_batch_of_only_rejected_records_is_quarantined(isolated_store: str) -> None:
    store = Store.open(isolated_store)
    try:
        bad = [Record("message", new_session_id(), "not a time", "x", {})  # type: ignore[arg-type]
               for _ in range(3)]
        store.write_batch(bad)
        good = new_session_id()
        store.write_batch([Record("session_start", good, time.time(), "bot", {"bot": "bot"})])
        with store.reading() as conn:
            assert conn.execute(sa.select(sa.func.count()).select_from(quarantine)).scalar() == 3
        assert store.get_session(good) is not None
    finally:
        store.close()
