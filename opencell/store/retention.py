"""Retention: old content and old events leave the store in small batches, in the background.

Two windows (``observability.retention``): after ``content`` (default 30 days) an event's
content — message text, prompts, completions, tool arguments and results, error messages and
context, custom-event data — is removed and the event marked ``content_expired``; its
structure stays (kind, times, durations, lengths, tokens, costs). After ``events`` (default
90 days) the event itself is deleted. Session rows, the daily cost and activity rollups,
budget alerts and the erasure audit trail are kept: costs, budgets, analytics and what-if
over old periods answer as before. Large shared texts go once nothing refers to them.
The search index forgets an expired message's words with its content, in the same step
(``_prune_terms.py``): a session stays findable by its short id, its user's id and name, and
the words of its messages that still hold content — not by what expired.

Off the hot path: :class:`Pruner` is a daemon thread; every step is one short write
transaction of at most ``batch_rows`` rows, and after each it sleeps long enough that it
holds the write lock at most ``duty`` (20 %) of the time. On SQLite it queues on the store's
own writer lock, so the recorder's writer waits its turn instead of failing on a busy file;
readers (the dashboard) never wait (WAL). A failed step is logged and retried next run.

Exporters: an event above an exporter's cursor (not yet delivered) is neither stripped nor
deleted. An exporter that stays down longer than the window holds events for at most
``exporter_grace`` (default 7 days) beyond it; after that they are pruned anyway — the store
would otherwise grow without bound behind a disabled exporter — and the pruner logs how many
events that exporter will never send (and counts them in ``retention_state`` as
``lost:<exporter>``). Its cursor stays valid: it resumes at the next event still stored.

Space: SQLite files created by this version use ``auto_vacuum = INCREMENTAL`` and the pruner
hands freed pages back in bounded ``incremental_vacuum`` steps. An older file has to be
converted once with a full ``VACUUM`` (``opencell prune --vacuum``, which needs exclusive
use of the file). PostgreSQL uses batched deletes: autovacuum makes the freed space reusable
for new rows, so the tables stop growing at about the window's size (measured in
``benchmarks/lifecycle.py``).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy import Connection

from opencell.store import _prune, textgc
from opencell.store._prune_terms import expire_terms
from opencell.store.store import Store
from opencell.store.tables import quarantine, record_drops

if TYPE_CHECKING:
    from opencell.config import RetentionConfig

log = logging.getLogger("opencell.store.retention")

DAY = 86400.0


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """How long the store keeps what (seconds; None = forever)."""

    events_s: float | None = 90 * DAY
    content_s: float | None = 30 * DAY
    exporter_grace_s: float = 7 * DAY
    batch_rows: int = 2000
    duty: float = 0.2
    """Largest share of time the pruner holds the write lock."""
    vacuum_pages: int = 2000
    """Pages one SQLite ``incremental_vacuum`` step hands back."""
    texts_every_s: float = DAY
    """How often shared texts are collected: it reads the events still holding content,
    so it runs daily rather than every run."""

    @property
    def content_after_s(self) -> float | None:
        """Content never outlives its event."""
        if self.content_s is None:
            return self.events_s
        if self.events_s is None:
            return self.content_s
        return min(self.content_s, self.events_s)


@dataclass(slots=True)
class PruneReport:
    """What one run removed."""

    content_expired: int = 0
    events_deleted: int = 0
    texts_deleted: int = 0
    terms_deleted: int = 0
    """Search terms (word, session) that only expired messages held."""
    quarantine_deleted: int = 0
    pages_vacuumed: int = 0
    held: dict[str, int] = field(default_factory=dict)
    """Exporter → its cursor, where it held pruning back."""
    lost: dict[str, int] = field(default_factory=dict)
    """Exporter → events pruned before it delivered them (down longer than the grace)."""


def policy_from(config: RetentionConfig) -> RetentionPolicy:
    """The policy ``observability.retention`` describes."""
    return RetentionPolicy(events_s=config.events, content_s=config.content,
                           exporter_grace_s=config.exporter_grace,
                           batch_rows=config.batch_rows)


def start_pruner(store: Store, config: RetentionConfig) -> Pruner | None:
    """The background pruner ``observability.retention`` asks for, started (None: off)."""
    if not config.enabled or (config.events is None and config.content is None):
        return None
    pruner = Pruner(store, policy_from(config), interval_s=config.interval)
    pruner.start()
    return pruner


class _Stop(Exception):
    pass


def prune(store: Store, policy: RetentionPolicy, *, now: float | None = None,
          stop: threading.Event | None = None, vacuum: bool = True) -> PruneReport:
    """One full retention run; returns what it removed. Raises the database's errors."""
    runner = _Run(store, policy, time.time() if now is None else now, stop)
    try:
        runner.run(vacuum)
    except _Stop:
        pass
    return runner.report


class _Run:
    def __init__(self, store: Store, policy: RetentionPolicy, now: float,
                 stop: threading.Event | None) -> None:
        self.store, self.policy, self.now, self.stop = store, policy, now, stop
        self.report = PruneReport()
        self.sqlite = store.dialect_name == "sqlite"

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One bounded step: the store's writer lock (SQLite), a write transaction, then a
        pause so the step's share of time stays under ``duty``."""
        if self.stop is not None and self.stop.is_set():
            raise _Stop
        if self.sqlite:
            with self.store._lock:  # waiting for the recorder's batch is not our busy time
                began = time.perf_counter()
                with self.store.writing() as conn:
                    yield conn
                busy = time.perf_counter() - began
        else:
            began = time.perf_counter()
            with self.store.writing() as conn:
                yield conn
            busy = time.perf_counter() - began
        self.pause(busy)

    def pause(self, busy: float) -> None:
        duty = min(max(self.policy.duty, 0.01), 1.0)
        wait = busy * (1.0 - duty) / duty
        if self.stop is not None:
            if self.stop.wait(wait):
                raise _Stop
        elif wait > 0:
            time.sleep(wait)

    def run(self, vacuum: bool) -> None:
        policy = self.policy
        with self.store.reading() as conn:
            holds = _prune.cursors(conn)
            state = _prune.read_state(conn)
        # Deleting first: what goes anyway is not rewritten to lose its content before.
        if policy.events_s is not None:
            self.delete_events(self.now - policy.events_s, holds,
                               int(state.get("content_through", 0)))
        content_s = policy.content_after_s
        if content_s is not None:
            self.expire_content(self.now - content_s, holds, int(state.get("content_through", 0)))
            if self.now - state.get("texts_collected", 0.0) >= policy.texts_every_s:
                self.collect_texts(self.now - content_s)
                with self.write() as conn:
                    _prune.write_state(conn, self.store._dialect, {"texts_collected": self.now})
        with self.write() as conn:
            _prune.write_state(conn, self.store._dialect, {"last_run": self.now})
            _prune.write_state(conn, self.store._dialect, {
                "content_expired": self.report.content_expired,
                "events_deleted": self.report.events_deleted,
                "texts_deleted": self.report.texts_deleted,
                **{f"lost:{name}": n for name, n in self.report.lost.items()}}, add=True)
        if vacuum and self.sqlite:
            self.vacuum()

    def expire_content(self, cutoff: float, holds: dict[str, int], mark: int) -> None:
        with self.store.reading() as conn:
            span = _prune.id_span(conn)
            win = _prune.window(conn, cutoff, self.policy.exporter_grace_s, holds, span,
                                keep_newest=False)
        self._note_holds(win, holds)
        mark = max(mark, span[0] - 1)
        done = mark >= win.upper
        while not done:
            words: dict[int, set[str]] = {}
            with self.write() as conn:
                mark, changed, done = _prune.expire_content(conn, win, mark,
                                                            self.policy.batch_rows, words)
                terms = expire_terms(conn, words, mark, self.store.forget_terms)
                _prune.write_state(conn, self.store._dialect, {"content_through": mark})
            self.report.content_expired += changed
            self.report.terms_deleted += terms

    def collect_texts(self, cutoff: float) -> None:
        """Texts first stored before the content window that no event with content uses."""
        with self.store.reading() as conn:
            mark = int(_prune.read_state(conn).get("content_through", 0))
            if not textgc.old_digests(conn, cutoff, "", 1):
                return
        used, scanned = textgc.referenced(self.store.reading, mark,
                                          pause=lambda: self.pause(0.005))
        after = ""
        while True:
            with self.store.reading() as conn:
                page = textgc.old_digests(conn, cutoff, after, 500)
            if not page:
                return
            after = page[-1]
            unused = set(page) - used
            if unused:
                with self.write() as conn:
                    unused -= textgc.referenced_since(conn, scanned, unused)
                    self.report.texts_deleted += textgc.delete(conn, unused)

    def delete_events(self, cutoff: float, holds: dict[str, int], content_through: int
                      ) -> None:
        with self.store.reading() as conn:
            span = _prune.id_span(conn)
            win = _prune.window(conn, cutoff, self.policy.exporter_grace_s, holds, span,
                                keep_newest=True)
        self._note_holds(win, holds)
        after, done = span[0] - 1, span[0] > win.upper
        while not done:
            words: dict[int, set[str]] = {}
            with self.write() as conn:
                ids, done = _prune.delete_events(conn, win, after, self.policy.batch_rows,
                                                 words)
                terms = expire_terms(conn, words, content_through, self.store.forget_terms)
            self.report.terms_deleted += terms
            if ids:
                after = ids[-1]
                self.report.events_deleted += len(ids)
                for name, cursor in holds.items():
                    lost = sum(1 for i in ids if i > cursor)
                    if lost:
                        self.report.lost[name] = self.report.lost.get(name, 0) + lost
        with self.write() as conn:
            gone = conn.execute(quarantine.delete().where(quarantine.c.quarantined_at < cutoff))
            conn.execute(record_drops.delete().where(record_drops.c.ts < cutoff))
            self.report.quarantine_deleted += int(gone.rowcount or 0)
        for name, lost in self.report.lost.items():
            log.warning("retention pruned events exporter=%s has not delivered count=%d "
                        "reason=exporter_behind_longer_than_window_plus_grace", name, lost)

    def _note_holds(self, win: _prune.Window, holds: dict[str, int]) -> None:
        if win.hold_id is not None:
            for name, cursor in holds.items():
                if cursor == win.hold_id:
                    self.report.held[name] = cursor

    def vacuum(self) -> None:
        """Hand freed pages back to the file system, a bounded step at a time.

        ``incremental_vacuum`` frees one page per statement step, and Python's ``execute``
        steps once: ``executescript`` runs it to the end. It is its own (autocommit) write,
        so it runs on a raw connection outside any transaction, under the writer lock."""
        pages = max(1, int(self.policy.vacuum_pages))
        while True:
            with self.store.reading() as conn:
                mode = conn.exec_driver_sql("PRAGMA auto_vacuum").scalar()
                free = int(conn.exec_driver_sql("PRAGMA freelist_count").scalar() or 0)
            if mode != 2 or free == 0:
                return
            if self.stop is not None and self.stop.is_set():
                raise _Stop
            began = time.perf_counter()
            with self.store._lock:
                raw = self.store.engine.raw_connection()
                try:
                    raw.driver_connection.executescript(  # type: ignore[union-attr]
                        f"PRAGMA incremental_vacuum({pages});")
                except sqlite3.OperationalError as exc:  # another process holds the lock
                    log.info("retention vacuum deferred reason=%s", exc)
                    return
                finally:
                    raw.close()
            self.report.pages_vacuumed += min(free, pages)
            self.pause(time.perf_counter() - began)


def full_vacuum(store: Store) -> None:
    """SQLite: rebuild the file with ``auto_vacuum = INCREMENTAL`` (once, for a file made by
    an older OpenCell); needs exclusive use of the file while it runs. PostgreSQL: nothing
    (autovacuum reuses the space)."""
    if store.dialect_name != "sqlite":
        return
    with store._lock:
        raw = store.engine.raw_connection()  # VACUUM runs outside any transaction
        try:
            raw.driver_connection.execute("PRAGMA auto_vacuum = INCREMENTAL")  # type: ignore[union-attr]
            raw.driver_connection.execute("VACUUM")  # type: ignore[union-attr]
        finally:
            raw.close()


class Pruner:
    """Runs :func:`prune` every ``interval_s`` seconds on a daemon thread."""

    def __init__(self, store: Store, policy: RetentionPolicy, *, interval_s: float = 600.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.store, self.policy, self.interval_s, self.clock = store, policy, interval_s, clock
        self.runs = 0
        self.last: PruneReport | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="opencell-pruner",
                                            daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        # The first run waits a little: a bot starting up has better things to do.
        while not self._stop.wait(min(self.interval_s, 60.0) if self.runs == 0
                                  else self.interval_s):
            try:
                self.last = prune(self.store, self.policy, now=self.clock(), stop=self._stop)
            except (sa.exc.SQLAlchemyError, OSError, Exception) as exc:  # noqa: BLE001
                log.warning("retention run failed error=%s action=retry_next_run",
                            str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            self.runs += 1
