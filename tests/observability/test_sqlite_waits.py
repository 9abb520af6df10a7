"""SQLite: how long the store waits for the file's lock. A write waits briefly (the
recorder's writer retries with back-off); a read, and opening a connection, waits out a busy
moment. In WAL mode a reader waits only when the file is locked whole (another connection
closing the WAL, or one in exclusive locking mode); under load such a moment can outlast
the writers' 150 ms, and a dashboard page then failed with "database is locked"."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from opencell.errors import StoreError
from opencell.records import Record, new_session_id
from opencell.store.dialect import SQLITE_BUSY_TIMEOUT_MS
from opencell.store.store import Store

T0 = 1_764_000_000.0


def _session(sid: str) -> Record:
    return Record("session_start", sid, T0, "support", {
        "bot": "support", "platform": "slack", "user_id": "u1", "tags": []})


def _lock_whole_file(path: Path) -> sqlite3.Connection:
    locker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    locker.execute("PRAGMA locking_mode = EXCLUSIVE")
    locker.execute("BEGIN EXCLUSIVE")
    locker.execute("CREATE TABLE IF NOT EXISTS held (x)")
    locker.execute("COMMIT")  # exclusive mode keeps the lock until the connection closes
    return locker


def test_opening_and_reading_wait_out_a_moment_the_file_is_locked(tmp_path: Path) -> None:
    path = tmp_path / "opencell.db"
    store = Store.open(f"sqlite:///{path}")
    sid = new_session_id(T0)
    store.write_batch([_session(sid)])
    store.close()

    locker = _lock_whole_file(path)
    release = threading.Timer(4 * SQLITE_BUSY_TIMEOUT_MS / 1000, locker.close)
    release.start()
    began = time.perf_counter()
    try:
        store = Store.open(f"sqlite:///{path}")  # waits for the lock, then reads
        rows, _ = store.list_sessions()
    except StoreError as exc:
        pytest.fail(f"gave up after {time.perf_counter() - began:.2f} s: {exc}")
    waited = time.perf_counter() - began
    release.join()
    try:
        assert [row["id"] for row in rows] == [sid]
        assert waited >= 2 * SQLITE_BUSY_TIMEOUT_MS / 1000  # it did wait, past a write's
    finally:
        store.close()


def test_a_write_still_gives_up_soon(tmp_path: Path) -> None:
    path = tmp_path / "opencell.db"
    store = Store.open(f"sqlite:///{path}")
    store.write_batch([_session(new_session_id(T0))])
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process writing: readers go on, writers wait
    try:
        assert len(store.list_sessions()[0]) == 1
        began = time.perf_counter()
        with pytest.raises(Exception, match="locked"):
            store.write_batch([_session(new_session_id(T0 + 1))])
        assert time.perf_counter() - began < 2.0  # the recorder retries instead
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        store.close()
