"""The machine's floor for storing events: SQLite alone inserting rows into a store's table.

A same-run baseline for the figures that count the writer's work (``recorder``'s ingest,
``pipeline``'s full chain): the rows OpenCell stored, with their JSON already encoded, go to a
fresh store's ``events`` table and indexes through ``sqlite3``'s ``executemany``, in
transactions of the recorder's batch size, with the store's WAL settings and its checkpointer
thread (SQLite's own checkpoints in the inserting connection would cost about 4 µs a row
more than the store pays). Nothing OpenCell does per event (planning, search words, session
totals, rollups) is in it, so what a figure adds to it is OpenCell's, and the floor itself is
the machine's: a VM whose disk and memory are slower shows it here too.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opencell.records import Record, new_session_id
from opencell.store._checkpoint import SAFETY_NET_PAGES, Checkpointer
from opencell.store.store import Store

BATCH = 5_000
"""The recorder's default batch size (``Recorder(batch_size=…)``)."""

Row = tuple[int, float, str, str, float | None, bool | None, str]
"""(session number below ``sessions``, ts, kind, name, duration_ms, success, data JSON)."""

_INSERT = ("INSERT INTO events (session_seq, ts, kind, name, duration_ms, success, data) "
           "VALUES (?, ?, ?, ?, ?, ?, ?)")


def floor_us(rows: Sequence[Row], sessions: int, batch: int = BATCH) -> float:
    """µs per row that SQLite alone takes to insert ``rows`` (see the module docstring);
    NaN for no rows (nothing was stored to compare with)."""
    if not rows:
        return float("nan")
    with tempfile.TemporaryDirectory(prefix="opencell-floor-") as tmp:
        path = Path(tmp) / "floor.db"
        store = Store.open(f"sqlite:///{path}")
        now = time.time()
        store.write_batch([Record("session_start", new_session_id(), now, "bench",
                                  {"bot": "bench", "platform": "bench"}, None, None)
                           for _ in range(sessions)])
        store.close()
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute(f"PRAGMA wal_autocheckpoint = {SAFETY_NET_PAGES}")
        seqs = [seq for (seq,) in conn.execute("SELECT seq FROM sessions ORDER BY seq")]
        ready: list[tuple[Any, ...]] = [(seqs[s], *rest) for s, *rest in rows]
        checkpointer = Checkpointer(path)
        start = time.perf_counter()
        for first in range(0, len(ready), batch):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(_INSERT, ready[first:first + batch])
            conn.execute("COMMIT")
            checkpointer.nudge()
        elapsed = time.perf_counter() - start
        checkpointer.stop()
        conn.close()
    return elapsed / len(ready) * 1e6


def stored_rows(path: Path, last: int) -> tuple[list[Row], int]:
    """The ``last`` events stored in the SQLite store at ``path``, oldest first, as rows for
    :func:`floor_us`, and how many sessions they belong to."""
    conn = sqlite3.connect(path)
    try:
        found = conn.execute(
            "SELECT session_seq, ts, kind, name, duration_ms, success, data FROM events "
            "ORDER BY id DESC LIMIT ?", (last,)).fetchall()
    finally:
        conn.close()
    numbers: dict[int, int] = {}
    rows = [(numbers.setdefault(seq, len(numbers)), ts, kind, name, duration,
             None if success is None else bool(success), data)
            for seq, ts, kind, name, duration, success, data in reversed(found)]
    return rows, len(numbers)
