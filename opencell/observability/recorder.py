"""The recorder: hands records to the store without ever blocking or failing the caller.

``Recorder.record()`` appends to a bounded in-memory queue (a ``deque``: about 0.1 µs) and
returns. One daemon writer thread wakes every ``flush_interval`` seconds, takes what is queued
in batches and gives each batch to the store's ``write_batch`` (one transaction). If the store
fails (locked, disk full, file deleted, anything), the writer keeps the batch, retries it with
exponential back-off and jitter, and logs once when the outage starts and once when it ends;
meanwhile ``record()`` keeps queueing up to ``max_queue``. Only past that bound are records
dropped, and every drop is counted (``stats.dropped``, by reason in ``stats.dropped_by``) and
logged by the writer with its reason, never by the caller. ``flush(timeout)`` waits until
everything queued before it is stored, and says False if anything was dropped since the last
flush; ``close`` flushes and stops the thread.

One record can never stop the recorder: when a sink that can ``quarantine`` rejects a batch
for a reason it does not call an outage (``is_outage``), the batch is split in halves until
the bad record is alone; every other record is stored, the bad one is handed to
``quarantine`` (the store keeps it in a table of its own) and recording goes on. If even the
quarantine fails, that is an outage: the records are kept and retried like any other.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from opencell.guard import guard, one_line
from opencell.observability._isolate import write_isolating
from opencell.observability.sinks import (
    DROP_REASONS,
    NullRecorder,
    RecorderStats,
    RecordSink,
    SinkFactory,
)
from opencell.records import Kind, Record
from opencell.retry import Backoff

__all__ = ["DROP_REASONS", "NullRecorder", "Recorder", "RecordSink", "RecorderStats",
           "SinkFactory"]

log = logging.getLogger("opencell.recorder")

BACKOFF_START = 0.05
BACKOFF_CAP = 2.0
DROP_LOG_INTERVAL = 10.0


class _FlushMarker:
    """Queued by ``flush``: set once every record ahead of it is stored."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class Recorder:
    """Queues records for one writer thread that batches them into the store."""

    def __init__(self, store: RecordSink | SinkFactory, *, max_queue: int = 100_000,
                 flush_interval: float = 0.05, batch_size: int = 5_000,
                 name: str = "opencell-recorder") -> None:
        """Start the writer thread.

        ``store`` is the sink, or a zero-argument factory that opens it on the writer thread
        (the recorder then owns it and closes it on ``close``). Records become durable within
        about ``flush_interval`` plus one batch write.
        """
        if hasattr(store, "write_batch"):
            self._sink: RecordSink | None = store
            self._factory: SinkFactory | None = None
        else:
            self._sink = None
            self._factory = store
        self._max = max_queue
        self._max_queue = max_queue
        self._interval = flush_interval
        self._batch_size = max(1, batch_size)
        self._queue: deque[Record | _FlushMarker] = deque()
        self._pending: list[Record] = []
        self._markers: list[_FlushMarker] = []
        self._wake = threading.Event()
        self._retry = threading.Event()
        self._drop_lock = threading.Lock()
        self._dropped = 0
        self._dropped_by: dict[str, int] = {}
        self._dropped_seen = 0  # by the last flush
        self._logged_by: dict[str, int] = {}
        self._noted = 0  # drops told to the sink's note_drops
        self._noted_by: dict[str, int] = {}
        self._quarantined = 0
        self._dropped_logged = 0
        self._last_drop_log = -DROP_LOG_INTERVAL
        self._written = 0
        self._batches = 0
        self._failures = 0
        self._attempt = 0
        self._last_error: str | None = None
        self._failing_since: float | None = None
        self._stopping = False
        self._abandon = False
        self._closed: bool | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # ------------------------------------------------------------ the hot path

    def record(self, record: Record) -> None:
        """Queue ``record`` for the store. O(1); never blocks, never raises.

        When ``max_queue`` records are already waiting (the store is down, or slower than
        the producers), the record is dropped and counted in ``stats.dropped``; the writer
        thread logs drops, rate-limited. After ``close`` every record is dropped and counted.
        """
        try:
            if len(self._queue) < self._max:
                self._queue.append(record)
            else:
                self._drop("closed" if self._stopping else "queue_full")
        except Exception:  # noqa: BLE001 - the contract: never raise into the bot
            self._drop("error")

    def emit(self, kind: Kind, session_id: str, name: str, data: Mapping[str, Any],
             duration_ms: float | None = None, success: bool | None = None,
             ts: float | None = None) -> None:
        """Build a :class:`Record` (``ts`` defaults to now) and :meth:`record` it. Never raises."""
        try:
            self.record(Record(kind, session_id, time.time() if ts is None else ts, name, data,
                               duration_ms, success))
        except Exception:  # noqa: BLE001 - the contract: never raise into the bot
            self._drop("error")

    def _drop(self, reason: str, n: int = 1) -> None:
        with self._drop_lock:
            self._dropped += n
            self._dropped_by[reason] = self._dropped_by.get(reason, 0) + n

    # ------------------------------------------------------------ control

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every record queued before this call is stored.

        True when it is and nothing was dropped since the previous ``flush``; False when
        ``timeout`` seconds pass first (the store is failing or slow), when records were
        dropped since the previous ``flush`` (see ``stats.dropped_by``), or when called from
        the writer thread itself. Records the store quarantined are kept, not dropped.
        """
        if threading.current_thread() is self._thread:
            return False
        if not self._thread.is_alive():
            return not self._pending and not self._queue and self._nothing_dropped()
        marker = _FlushMarker()
        self._queue.append(marker)  # past the bound on purpose: a marker is never dropped
        self._wake.set()
        done = marker.done.wait(max(0.0, timeout))
        return self._nothing_dropped() and done

    def _nothing_dropped(self) -> bool:
        """Whether nothing was dropped since the previous call (each drop is reported once)."""
        with self._drop_lock:
            seen, self._dropped_seen = self._dropped_seen, self._dropped
        return seen == self._dropped

    def close(self, timeout: float = 5.0) -> bool:
        """Flush (up to ``timeout`` seconds), then stop the writer thread.

        Returns whether everything was stored. Records still unstored when the writer stops
        are counted as dropped and logged. Calling ``close`` again returns the first result.
        """
        if self._closed is not None:
            return self._closed
        deadline = time.monotonic() + max(0.0, timeout)
        flushed = self.flush(timeout)
        self._max = 0  # from now on record() drops (and counts)
        self._stopping = True
        self._abandon = not flushed
        self._closed = flushed
        self._wake.set()
        self._retry.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(max(0.2, deadline - time.monotonic()))
        if self._factory is not None and self._sink is not None:
            close = getattr(self._sink, "close", None)
            if callable(close):
                with guard("recorder.close_store", logger=log):
                    close()
        return flushed

    @property
    def stats(self) -> RecorderStats:
        """The recorder's counters right now."""
        return RecorderStats(
            queued=len(self._queue) + len(self._pending), written=self._written,
            dropped=self._dropped, failures=self._failures, last_error=self._last_error,
            batches=self._batches, failing=self._failing_since is not None,
            quarantined=self._quarantined, dropped_by=dict(self._dropped_by))

    # ------------------------------------------------------------ the writer thread

    def _run(self) -> None:
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            with guard("recorder.writer", logger=log):
                self._drain()
            with guard("recorder.report_drops", logger=log):
                self._report_drops()
            if self._abandon or (self._stopping and not self._queue and not self._pending):
                break
        with guard("recorder.finish", logger=log):
            self._finish()

    def _drain(self) -> None:
        while True:
            if not self._pending and not self._markers:
                self._take()
                if not self._pending and not self._markers:
                    return
            if self._pending:
                stored = self._store_pending()
                self._report_drops()  # here too: under overload this loop may not end soon
                if not stored:
                    if self._abandon:
                        return
                    self._retry.wait(self._backoff())
                    continue
            for marker in self._markers:
                marker.done.set()
            self._markers.clear()

    def _take(self) -> None:
        queue, pending, limit = self._queue, self._pending, self._batch_size
        while queue and len(pending) < limit:
            item = queue.popleft()
            if type(item) is _FlushMarker:
                self._markers.append(item)  # stored once what is ahead of it is
                return
            pending.append(item)  # type: ignore[arg-type]

    def _store_pending(self) -> bool:
        try:
            if self._sink is None:
                if self._factory is None:
                    raise RuntimeError("the recorder has neither a store nor a factory")
                self._sink = self._factory()
                if self._sink is None:
                    raise RuntimeError("the store factory returned no store")
        except BaseException as exc:  # noqa: BLE001 - the writer must outlive any sink
            self._outage(exc)
            return False
        outcome = write_isolating(self._sink, self._pending)
        self._written += outcome.stored
        self._batches += outcome.batches
        self._failures += outcome.refused
        for record, reason in outcome.quarantined:
            self._quarantined += 1
            self._last_error = _printable(reason[:300])
            kind, session_id = _describe(record)
            log.warning("record quarantined kind=%s session=%s reason=%s total=%d "
                        "action=stored_apart_recording_goes_on", kind, session_id,
                        self._last_error, self._quarantined)
        if outcome.outage is not None:
            self._pending = outcome.unstored
            self._outage(outcome.outage)
            return False
        self._pending = []
        if self._failing_since is not None:
            log.warning("store recovered outage_s=%.1f failed_attempts=%d queued=%d",
                        time.monotonic() - self._failing_since, self._attempt,
                        self.stats.queued)
            self._failing_since = None
            self._attempt = 0
        return True

    def _outage(self, exc: BaseException) -> None:
        self._failures += 1
        self._attempt += 1
        self._last_error = f"{type(exc).__name__}: {one_line(exc)}"
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            log.warning("store unavailable error=%s queued=%d action=keeping_records_"
                        "and_retrying", self._last_error, self.stats.queued)

    def _backoff(self) -> float:
        return Backoff(start=BACKOFF_START, cap=BACKOFF_CAP)(self._attempt)  # failures only

    def _report_drops(self) -> None:
        dropped = self._dropped
        now = time.monotonic()
        if dropped != self._dropped_logged and now - self._last_drop_log >= DROP_LOG_INTERVAL:
            with self._drop_lock:
                now_by = dict(self._dropped_by)
            by = {k: n - self._logged_by.get(k, 0) for k, n in now_by.items()
                  if n != self._logged_by.get(k, 0)}
            reasons = ",".join(f"{k}:{n}" for k, n in by.items())
            log.warning("records dropped count=%d total=%d reason=%s max_queue=%d "
                        "last_error=%s", dropped - self._dropped_logged, dropped, reasons,
                        self._max_queue, self._last_error)
            self._dropped_logged = dropped
            self._logged_by = now_by
            self._last_drop_log = now
            self._note_drops()  # as rate-limited as the log: never a write per record

    def _note_drops(self) -> None:
        """Tell a sink that keeps count (the store's ``note_drops``) about new drops."""
        note = getattr(self._sink, "note_drops", None)
        if not callable(note) or self._dropped == self._noted:
            return
        with self._drop_lock:
            total, by = self._dropped, dict(self._dropped_by)
        delta = {k: n - self._noted_by.get(k, 0) for k, n in by.items()}
        try:
            note({k: n for k, n in delta.items() if n}, self._last_error)
        except Exception as exc:  # noqa: BLE001 - noted next time; the drops are logged anyway
            log.debug("could not note drops in the store error=%s", one_line(exc))
            return
        self._noted, self._noted_by = total, by

    def _finish(self) -> None:
        left = len(self._pending) + sum(1 for i in self._queue if type(i) is not _FlushMarker)
        if left:
            self._drop("unstored_at_close", left)
            log.warning("recorder stopped with records unstored count=%d last_error=%s",
                        left, self._last_error)
        self._last_drop_log = -DROP_LOG_INTERVAL
        self._report_drops()
        self._note_drops()  # also drops logged earlier while the store could not note them
        self._queue.clear()
        self._pending = []


def _describe(record: object) -> tuple[str, str]:
    kind = str(getattr(record, "kind", type(record).__name__))[:40]
    return _printable(kind), _printable(str(getattr(record, "session_id", ""))[:64])


def _printable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
