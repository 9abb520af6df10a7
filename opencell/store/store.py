"""The local store of sessions, events and cost rollups (SQLAlchemy Core; SQLite or PostgreSQL).

``Store.open(url)`` creates or upgrades the schema. The recorder's writer thread calls
``write_batch`` (one transaction per batch); the CLI and dashboard call the read methods,
which return plain JSON-ready dicts (ISO 8601 UTC timestamps, tags as lists). All methods are
safe to call from several threads; ``sqlite:///:memory:`` is for single-threaded use only.

Decisions a caller may notice:

- Records of a session that has no row (no ``session_start`` was stored: facade misuse, or the
  database file was deleted while the session was open) are kept: a *placeholder* session row
  is created (empty bot, ``metadata.placeholder = true``), counted in ``stats()`` and logged.
  A later ``session_start`` for that id fills the placeholder in.
- A SQLite database file deleted (or replaced) while the store is open is noticed on the next
  call: the store drops its connections and its stale ``-wal``/``-shm`` files, and recreates
  the schema in a new file. What the deleted file held is gone; later events land in the new
  file (their open sessions as placeholders). Writing on into the unlinked file would lose
  everything silently when the process exits.
- A second ``session_end`` for a session is stored as an event but does not change the row.
- A record the store cannot write (unreadable, or refused by the database) is kept as a row of
  the ``quarantine`` table with the reason, counted in ``stats()`` and logged; the recorder
  isolates it by splitting the batch (``quarantine``/``is_outage`` are its hooks).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from opencell.errors import StoreError
from opencell.records import Record
from opencell.store._activity import ActivityStatements, write_activity
from opencell.store._batch import BatchPlan, plan_batch
from opencell.store._direct import Run
from opencell.store._orphans import close_orphans, judge_each
from opencell.store._owner import owner_is_alive
from opencell.store._reads import SessionReads, table_counts
from opencell.store._writes import SessionInfo, Statements, resolve_sessions, rollup_rows
from opencell.store.cluster import Membership, process_owner
from opencell.store.dialect import WRITE, Dialect, dialect_for, remove_stale_wal
from opencell.store.indexed_terms import IndexedTerms
from opencell.store.losses import drop_rows, losses, quarantine_row
from opencell.store.migrations import LATEST, check_version, current_version, upgrade
from opencell.store.search import term_rows
from opencell.store.tables import (
    quarantine,
    record_drops,
    schema_version,
    texts,
)
from opencell.store.texts import rows as shared_rows

log = logging.getLogger("opencell.store")

_CACHE_SIZE = 20_000


class Store(SessionReads):
    """Sessions with running totals, their events, and daily cost rollups."""

    def __init__(self, engine: Engine, dialect: Dialect, url: URL) -> None:
        """Use :meth:`Store.open`."""
        self._engine = engine
        self._dialect = dialect
        self.url = url.render_as_string(hide_password=True)
        """The database URL, password hidden."""
        self._lock = threading.RLock()
        self._serialised = dialect.name == "sqlite"
        self._sql = Statements(dialect)
        self._activity = ActivityStatements(dialect)
        self._cache: OrderedDict[str, SessionInfo] = OrderedDict()
        self._indexed = IndexedTerms()
        self._indexing: list[tuple[int, str]] = []
        self._file_id: tuple[int, int] | None = None
        self._placeholders = 0
        self._rejected = 0
        self._recreated = 0
        self._last_warning: dict[str, float] = {}
        self._members = Membership(engine, dialect)

    def owner(self) -> str:
        """This process's instance name, registered in this store (see ``cluster.py``)."""
        return self._members.owner()

    def is_alive(self, owner: str) -> bool:
        """Whether the instance ``owner`` is still running (its lock is held)."""
        return self._members.is_alive(owner)

    def serve_alone(self) -> None:
        """SQLite: claim the file for this process's bots, or raise ``StoreError`` when
        another process runs bots on it (several bot processes need PostgreSQL)."""
        self._members.serve_alone()

    def dead(self, owners: Iterable[str]) -> set[str]:
        """Which of ``owners`` are instances that are gone."""
        return self._members.dead(owners)

    def insert_missing(self, table: sa.Table, keys: Sequence[str]) -> sa.Insert:
        """``INSERT … ON CONFLICT (keys) DO NOTHING`` in this database's dialect."""
        return self._dialect.insert_missing(table, keys)

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for instrumentation and tests; do not write through it)."""
        return self._engine

    # ------------------------------------------------------------ opening

    @classmethod
    def open(cls, url: str) -> Store:
        """Open (creating or upgrading) the store at ``url``.

        ``sqlite:///path/to/file.db`` (the parent directory is created) or
        ``postgresql+psycopg://…``. Raises ``StoreError`` when the URL is unusable, the
        database cannot be reached, or its schema is newer than this OpenCell.
        """
        dialect, parsed = dialect_for(url)
        safe_url = parsed.render_as_string(hide_password=True)
        try:
            engine = dialect.create_engine(parsed)
        except Exception as exc:  # noqa: BLE001 - e.g. a missing driver, an unwritable dir
            raise StoreError(f"cannot open the store at {safe_url}: {exc}") from exc
        store = cls(engine, dialect, parsed)
        try:
            store._migrate()
        except StoreError:
            store.close()
            raise
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            store.close()
            raise StoreError(f"cannot open the store at {safe_url}: {_reason(exc)}") from exc
        return store

    def close(self) -> None:
        """Close every pooled connection and give up this process's registration. The
        store can be used again (it reconnects and registers again)."""
        self._members.release()
        self._dialect.close()
        self._engine.dispose()

    def _migrate(self) -> None:
        with self._engine.connect() as conn:
            version = current_version(conn)
        check_version(version)
        if version < LATEST:
            with self.writing() as conn:
                before, after = upgrade(conn, self._dialect)
            if before:
                log.info("store schema upgraded url=%s from=%d to=%d", self.url, before, after)
        self._file_id = self._current_file_id()

    @property
    def dialect_name(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return str(self._engine.dialect.name)

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        """A connection in one write transaction (committed on exit, rolled back on error).

        Every write to the store's tables goes through here. On SQLite the writers of this
        process take turns on the store's lock (the recorder's batches, feedback, budget
        alerts, the pruner): with only the busy timeout between them, a short write could
        fail with "database is locked" behind a long batch and be lost."""
        with self._lock if self._serialised else nullcontext(), self._engine.connect() as conn:
            conn.execution_options(**{WRITE: True})
            with conn.begin():
                yield conn

    @contextmanager
    def autocommit(self) -> Iterator[Connection]:
        """A pooled connection on which each statement is its own transaction (one trip)."""
        with self._engine.connect() as conn:
            yield conn.execution_options(isolation_level="AUTOCOMMIT")

    def schema_version(self) -> int:
        """The schema version the database is at."""
        with self.reading() as conn:
            return current_version(conn)

    def check_writable(self) -> None:
        """Make a real write (it takes the write lock) and roll it back; raises if the
        database refuses writes (read-only file, full disk, locked by another writer)."""
        with self._engine.connect() as conn:
            conn.execution_options(**{WRITE: True})
            transaction = conn.begin()
            try:
                conn.execute(schema_version.update().values(version=schema_version.c.version))
            finally:
                transaction.rollback()

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A pooled connection for reads; database failures become ``StoreError``.

        Also notices a deleted or replaced SQLite file and starts a fresh one."""
        try:
            self._ensure_file()
            with self._engine.connect() as conn:
                yield conn
        except (sa.exc.SQLAlchemyError, OSError) as exc:
            raise StoreError(f"cannot read the store at {self.url}: {_reason(exc)}") from exc

    def _current_file_id(self) -> tuple[int, int] | None:
        path = self._dialect.file_path()
        if path is None:
            return None
        try:
            stat = os.stat(path)
        except FileNotFoundError:
            return None
        return stat.st_dev, stat.st_ino

    def _ensure_file(self) -> None:
        """Notice a deleted or replaced SQLite file and start a fresh one (see module doc)."""
        path = self._dialect.file_path()
        if path is None or self._current_file_id() == self._file_id is not None:
            return
        with self._lock:
            found = self._current_file_id()
            if found is not None and found == self._file_id:
                return
            log.warning("store file %s url=%s action=recreating_schema",
                        "missing" if found is None else "replaced", self.url)
            self._engine.dispose()
            if found is None:
                remove_stale_wal(path)
                path.parent.mkdir(parents=True, exist_ok=True)
            self._cache.clear()
            self._indexed.forget()
            self._recreated += 1
            self._migrate()

    # ------------------------------------------------------------ writing

    def write_batch(self, records: Sequence[Record]) -> None:
        """Store ``records`` in one transaction: events, session rows and totals, rollups.

        Raises whatever the database raises (locked, disk full …): nothing of the batch is
        then stored, and the caller (the recorder) retries the same batch later.
        """
        if not records:
            return
        owner = self.owner()
        plan = plan_batch(records, owner)
        if plan.rejected:
            self._rejected += plan.rejected
            first = plan.quarantine[0]
            self._warn("rejected", "records rejected count=%d total=%d reason=unreadable "
                       "first_kind=%s first_session=%s error=%s action=quarantined",
                       plan.rejected, self._rejected, first["kind"], first["session_id"],
                       first["reason"][:200])
        if not plan.events and not plan.quarantine:
            return
        with self._lock:
            self._ensure_file()
            with self.writing() as conn:
                if plan.quarantine:
                    conn.execute(quarantine.insert(), plan.quarantine)
                if plan.texts:
                    conn.execute(self._dialect.insert_missing(texts, ("digest",)),
                                 shared_rows(plan.texts, time.time()))
                infos, new_placeholders = resolve_sessions(conn, self._sql, plan, self._cache,
                                                           owner)
                self._write_plan(conn, plan, infos)
            self._indexed.stored(self._indexing)  # committed: these need not be sent again
            for session_id, info in infos.items():
                self._remember(session_id, info)
            for end in plan.ends:
                self._cache.pop(end.session_id, None)
        self._dialect.after_write()
        if new_placeholders:
            self._placeholders += len(new_placeholders)
            self._warn("placeholder", "session placeholder created count=%d total=%d first=%s "
                       "reason=records_without_session_start", len(new_placeholders),
                       self._placeholders, new_placeholders[0])

    def forget_terms(self, seqs: Iterable[int]) -> None:
        """These sessions' search terms were deleted (retention, erasure): the writer sends
        their words again. Any thread; call it before the deleting commit (``_prune_terms``)."""
        self._indexed.forget(seqs)

    def quarantine(self, record: Record, reason: str) -> None:
        """Keep ``record``, which ``write_batch`` refused, in the ``quarantine`` table.
        Raises when the database cannot be written at all (the recorder then retries)."""
        self._insert(quarantine, [quarantine_row(record, reason)])

    def note_drops(self, counts: Mapping[str, int], last_error: str | None) -> None:
        """Note that this process's recorder dropped ``counts`` records (per reason)."""
        self._insert(record_drops, drop_rows(counts, last_error, self.owner()))

    def losses(self) -> dict[str, Any]:
        """What recording lost or set apart, ever (see ``losses.losses``)."""
        with self.reading() as conn:
            return losses(conn)

    def _insert(self, table: sa.Table, rows: list[dict[str, Any]]) -> None:
        if rows:
            with self._lock:
                self._ensure_file()
                with self.writing() as conn:
                    conn.execute(table.insert(), rows)

    def is_outage(self, exc: BaseException) -> bool:
        """Whether a failed ``write_batch`` is the database's trouble (locked, unreachable,
        disk full, schema) rather than one record's: only the latter is split and quarantined.
        The driver's own errors count too (PostgreSQL's COPY and pipeline call it directly)."""
        dbapi = self._engine.dialect.dbapi
        return isinstance(exc, OSError | StoreError | sa.exc.OperationalError
                          | sa.exc.InterfaceError | sa.exc.DisconnectionError
                          | sa.exc.TimeoutError | sa.exc.ResourceClosedError) or (
            dbapi is not None and isinstance(exc, dbapi.OperationalError | dbapi.InterfaceError))

    def _write_plan(self, conn: Connection, plan: BatchPlan, infos: dict[str, SessionInfo]) -> None:
        sql = self._sql
        if plan.events:  # a batch of nothing but rejected records has none
            sql.insert_events(conn, [(infos[sid][0], ts, kind, name, duration, ok, data)
                                     for sid, ts, kind, name, duration, ok, data in plan.events])
        with self._dialect.pipelined(conn) as run:
            self._write_rest(run, plan, infos)

    def _write_rest(self, run: Run, plan: BatchPlan, infos: dict[str, SessionInfo]) -> None:
        sql = self._sql
        if plan.totals:
            run(sql.add_totals, [
                {"b_seq": infos[sid][0], "b_messages": t.messages,
                 "b_failed_turns": t.failed_turns, "b_llm_calls": t.llm_calls,
                 "b_tool_calls": t.tool_calls, "b_errors": t.errors,
                 "b_input_tokens": t.input_tokens, "b_output_tokens": t.output_tokens,
                 "b_cache_read_tokens": t.cache_read_tokens,
                 "b_cache_write_tokens": t.cache_write_tokens, "b_cost_usd": t.cost_usd,
                 "b_unpriced_calls": t.unpriced_calls, "b_last_activity": t.last_activity,
                 "b_last_turn_failed": t.last_turn_failed}
                for sid, t in sorted(plan.totals.items(), key=lambda item: infos[item[0]][0])])
        if plan.ends:
            run(sql.end_session, [
                {"b_seq": infos[e.session_id][0], "b_status": e.status, "b_reason": e.reason,
                 "b_ended_at": e.ts, "b_metadata": e.metadata}
                for e in sorted(plan.ends, key=lambda end: infos[end.session_id][0])])
        terms = self._indexed.new({infos[sid][0]: words for sid, words in plan.terms.items()})
        if terms:  # in key order, like every multi-row upsert (no deadlock between writers)
            run(sql.insert_terms, term_rows(terms))
        self._indexing = terms
        rollups = rollup_rows(plan.usage, infos) if plan.usage else []
        if rollups:
            run(sql.add_rollups, rollups)
        write_activity(run, self._activity, plan.events, rollups, infos, plan.usage)

    def _remember(self, session_id: str, info: SessionInfo) -> None:
        self._cache[session_id] = info
        self._cache.move_to_end(session_id)
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)

    def _warn(self, key: str, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last_warning.get(key, -1e9) >= 10.0:
            self._last_warning[key] = now
            log.warning(message, *args)

    def stats(self) -> dict[str, Any]:
        """Counts: sessions per status, events, rollup rows, and what this store repaired."""
        with self.reading() as conn:
            found = table_counts(conn)
        return {"url": self.url, **found, "placeholder_sessions": self._placeholders,
                "rejected_records": self._rejected, "files_recreated": self._recreated}

    # ------------------------------------------------------------ crash recovery

    def close_orphans(self, is_alive: Callable[[str], bool] | None = None) -> list[str]:
        """End the sessions of processes that are gone (``_orphans.py``); their ids. Any
        process may call this at any time (the janitor does); a live process's sessions are
        never touched. ``is_alive(owner)`` replaces the instance-lock judgement."""
        judge = self._members.dead if is_alive is None else judge_each(is_alive)
        with self._lock:
            closed = close_orphans(self.reading, self.writing, self._sql, self._activity,
                                   judge, released=self._dialect.name == "postgresql")
            for session_id in closed:
                self._cache.pop(session_id, None)
        return closed


def _reason(exc: Exception) -> str:
    orig = getattr(exc, "orig", None)
    return str(orig if orig is not None else exc).replace("\n", " ")


__all__ = ["Store", "StoreError", "owner_is_alive", "process_owner"]
