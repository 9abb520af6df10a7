"""The recorder: never blocks or raises, batches into the store, survives store outages."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from opencell import guard as _guard
from opencell.guard import guard
from opencell.observability.recorder import NullRecorder, Recorder, RecorderStats
from opencell.records import Record, new_session_id
from opencell.store.store import Store
from tests.fakes.waiting import WAIT, poll


def stored_events(db: Path) -> int:
    with sqlite3.connect(db) as raw:
        count = int(raw.execute("SELECT count(*) FROM events").fetchone()[0])
    raw.close()
    return count


def message(sid: str, i: int) -> Record:
    return Record("message", sid, time.time(), "turn", {"input": f"m{i}", "input_chars": 2},
                  10.0, True)


def session(recorder: Recorder) -> str:
    sid = new_session_id()
    recorder.emit("session_start", sid, "bot", {"bot": "bot", "platform": "test",
                                                 "user_id": "u"})
    return sid


class ListSink:
    """Keeps batches; can fail a number of times or block until released."""

    def __init__(self, fail: int = 0, error: BaseException | None = None) -> None:
        self.records: list[Record] = []
        self.calls = 0
        self.fail = fail
        self.error = error or RuntimeError("disk full")
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def write_batch(self, records: Sequence[Record]) -> None:
        self.calls += 1
        self.entered.set()
        self.release.wait()
        if self.fail:
            self.fail -= 1
            raise self.error
        self.records.extend(records)


# ----------------------------------------------------------------- normal operation

def test_records_become_durable_without_a_flush(db: Path, store: Store) -> None:
    recorder = Recorder(store, flush_interval=0.05)
    sid = session(recorder)
    for i in range(100):
        recorder.record(message(sid, i))
    # The writer wakes every flush_interval on its own: nobody calls flush here.
    assert poll(lambda: stored_events(db) == 101)
    assert recorder.close()


def test_flush_returns_true_once_everything_before_it_is_stored(store: Store) -> None:
    recorder = Recorder(store, flush_interval=10.0)  # only flush can make it write soon
    sid = session(recorder)
    for i in range(1234):
        recorder.record(message(sid, i))
    assert recorder.flush(WAIT)
    stats = recorder.stats
    assert (stats.written, stats.queued, stats.dropped, stats.failures) == (1235, 0, 0, 0)
    assert store.get_session(sid)["messages"] == 1234  # type: ignore[index]
    assert recorder.close()


def test_emit_builds_the_record() -> None:
    sink = ListSink()
    recorder = Recorder(sink)
    before = time.time()
    recorder.emit("custom", "s1", "vote", {"n": 1})
    recorder.emit("tool_call", "s1", "calc", {}, duration_ms=2.0, success=False, ts=5.0)
    assert recorder.flush(WAIT)
    custom, tool = sink.records
    assert custom[:2] == ("custom", "s1") and custom.ts >= before and custom.data == {"n": 1}
    assert tool == Record("tool_call", "s1", 5.0, "calc", {}, 2.0, False)
    recorder.close()


def test_four_threads_of_ten_thousand_records_all_land(store: Store) -> None:
    recorder = Recorder(store)
    sids = [session(recorder) for _ in range(4)]

    def produce(sid: str) -> None:
        for i in range(10_000):
            recorder.record(message(sid, i))

    threads = [threading.Thread(target=produce, args=(sid,)) for sid in sids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert recorder.flush(WAIT)
    assert recorder.stats.dropped == 0
    assert store.stats()["events"] == 40_004
    assert [store.get_session(s)["messages"] for s in sids] == [10_000] * 4  # type: ignore[index]
    recorder.close()


# ----------------------------------------------------------------- overflow

def test_overflow_is_dropped_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    sink = ListSink()
    sink.release.clear()
    recorder = Recorder(sink, max_queue=10, flush_interval=0.01, batch_size=1)
    recorder.record(message("s", 0))
    assert sink.entered.wait(WAIT)  # the writer holds record 0 and is stuck in the store
    with caplog.at_level(logging.WARNING, logger="opencell.recorder"):
        for i in range(1, 16):
            recorder.record(message("s", i))
        assert recorder.stats.dropped == 5 and recorder.stats.queued == 11
        sink.release.set()
        assert recorder.flush(WAIT) is False  # everything queued landed, but 5 were dropped
        assert poll(lambda: "records dropped count=5 total=5 reason=queue_full:5" in caplog.text)
        assert recorder.flush(WAIT) is True  # nothing dropped since the previous flush
    assert [r.data["input"] for r in sink.records] == [f"m{i}" for i in range(11)]
    assert recorder.stats.dropped == 5
    recorder.close()


# ----------------------------------------------------------------- store failures

def test_a_locked_store_buffers_then_everything_lands(
        db: Path, store: Store, caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder(store, flush_interval=0.01)
    sid = session(recorder)
    assert recorder.flush(WAIT)
    # Another process takes the write lock (chmod would not stop root: a lock does).
    locker = sqlite3.connect(db, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    with caplog.at_level(logging.WARNING, logger="opencell.recorder"):
        for i in range(500):
            recorder.record(message(sid, i))  # stays O(1): nothing raised, nothing waited
        assert poll(lambda: recorder.stats.failures >= 2)
        assert recorder.stats.failing and "locked" in (recorder.stats.last_error or "")
        assert recorder.stats.queued == 500
        locker.execute("ROLLBACK")
        locker.close()
        assert recorder.flush(WAIT)
    assert stored_events(db) == 501
    stats = recorder.stats
    assert (stats.dropped, stats.queued, stats.failing) == (0, 0, False)
    assert caplog.text.count("store unavailable") == 1
    assert caplog.text.count("store recovered") == 1
    recorder.close()


@pytest.mark.parametrize("error", [RuntimeError("boom"), OSError(28, "No space left"),
                                   SystemExit(3), KeyboardInterrupt()])
def test_whatever_the_store_raises_never_reaches_record(error: BaseException) -> None:
    sink = ListSink(fail=3, error=error)
    recorder = Recorder(sink, flush_interval=0.01)
    for i in range(50):
        recorder.record(message("s", i))
    assert recorder.flush(WAIT)
    assert len(sink.records) == 50
    assert recorder.stats.failures == 3 and type(error).__name__ in recorder.stats.last_error  # type: ignore[operator]
    recorder.close()


def test_a_store_factory_is_retried_until_it_opens(db: Path) -> None:
    attempts: list[int] = []

    def open_store() -> Store | None:
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("not mounted yet")
        if len(attempts) == 2:
            return None
        return Store.open(f"sqlite:///{db}")

    recorder = Recorder(open_store, flush_interval=0.01)
    session(recorder)
    assert recorder.flush(WAIT)
    assert len(attempts) == 3 and recorder.stats.failures == 2
    assert recorder.close()
    assert stored_events(db) == 1


def test_a_deleted_database_file_does_not_stop_the_writer(db: Path, store: Store) -> None:
    recorder = Recorder(store, flush_interval=0.01)
    sid = session(recorder)
    recorder.record(message(sid, 0))
    assert recorder.flush(WAIT)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    for i in range(1, 11):
        recorder.record(message(sid, i))
    assert recorder.flush(WAIT)
    # The store started a fresh file: the old events went with the old one, the new ones
    # are there, under a placeholder for the session that was open.
    assert stored_events(db) == 10
    assert store.get_session(sid)["metadata"] == {"placeholder": True}  # type: ignore[index]
    assert recorder.stats.failures == 0
    recorder.close()


# ----------------------------------------------------------------- closing

def test_close_stores_everything_then_counts_later_records_as_dropped(store: Store) -> None:
    recorder = Recorder(store, flush_interval=10.0)
    sid = session(recorder)
    recorder.record(message(sid, 1))
    assert recorder.close(WAIT)
    assert store.stats()["events"] == 2
    recorder.record(message(sid, 2))
    assert recorder.stats.dropped == 1
    assert recorder.close() is True  # idempotent
    assert recorder.stats.dropped_by == {"closed": 1}
    assert recorder.flush(0.1) is False  # the record after close was dropped
    assert recorder.flush(0.1) is True  # nothing of its own left to store


def test_close_with_the_store_down_gives_up_and_counts(caplog: pytest.LogCaptureFixture) -> None:
    sink = ListSink(fail=10**9)
    recorder = Recorder(sink, flush_interval=0.01)
    for i in range(7):
        recorder.record(message("s", i))
    with caplog.at_level(logging.WARNING, logger="opencell.recorder"):
        assert recorder.close(0.2) is False
        assert poll(lambda: recorder.stats.dropped == 7)
    assert "records unstored count=7" in caplog.text
    assert recorder.flush(0.1) is False or recorder.stats.queued == 0


def test_null_recorder_has_the_same_surface() -> None:
    null = NullRecorder()
    null.record(message("s", 1))
    null.emit("custom", "s", "x", {})
    assert null.flush(1.0) and null.close(1.0)
    assert null.stats == RecorderStats(0, 0, 0, 0, None, 0, False)
    for name in ("record", "emit", "flush", "close", "stats"):
        assert hasattr(Recorder, name)


# ----------------------------------------------------------------- the guard

def test_guard_swallows_logs_and_rate_limits(caplog: pytest.LogCaptureFixture,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_guard, "_last_logged", {})
    monkeypatch.setattr(_guard, "_suppressed", {})
    with caplog.at_level(logging.WARNING, logger="opencell.internal"):
        for _ in range(3):
            with guard("exporter.test", session="s1") as g:
                raise ValueError("bad\nthing")
            assert g.failed and isinstance(g.error, ValueError)
        with guard("exporter.test") as ok:
            pass
    assert not ok.failed
    assert caplog.text.count("what=exporter.test") == 1
    assert "error_type=ValueError error=bad thing session=s1" in caplog.text
    monkeypatch.setattr(_guard, "REPEAT_INTERVAL", 0.0)
    with caplog.at_level(logging.WARNING, logger="opencell.internal"):
        with guard("exporter.test"):
            raise ValueError("again")
    assert "repeats_not_logged=2" in caplog.text
    with pytest.raises(KeyboardInterrupt), guard("never swallowed"):
        raise KeyboardInterrupt
