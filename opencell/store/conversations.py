"""Conversations shared by several processes (PostgreSQL): a lock per conversation, the open
session's row, and the stored history any process can continue from.

``middleware/cluster.py`` uses it around every turn when the store is PostgreSQL:

- ``turn(key)``: a session-level advisory lock keyed by (database, schema, conversation), held
  on a connection of its own for the whole turn, so the turns of one conversation run one at a
  time across processes (in arrival order per process; the lock itself is not FIFO). The
  turn's statements run on that connection:
- ``Turn.begin``: take the platform message on (the first process to do so answers it; a
  retry or duplicate delivery elsewhere is dropped), read the conversation's open session
  (``sessions.conversation_key``, open) with the version and turns of its stored history
  (``session_history``), and make this process its ``owner`` (the janitor's view) — one
  transaction;
- ``Turn.save(id, version, turns)``: the bounded history after the turn, as JSON.
- ``still_mine(id, version)``: whether this process should end the session when it goes idle here.
- ``release(held)``: a graceful stop leaves the sessions it served open, with no owner and a
  deadline on the database's clock, for any process to continue (or the janitor to end).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from opencell.store.cluster import lock_key
from opencell.store.store import Store
from opencell.store.tables import platform_events, session_history, sessions

LOCK_POOL = 100
"""At most this many turns hold a conversation lock at once in one process."""


@dataclass(frozen=True, slots=True)
class Held:
    """A session this process serves, as a graceful stop hands it over."""

    session_id: str
    version: int
    """The version of its history this process saved last (0: none yet)."""
    idle_left: float
    """Seconds until it would go idle here."""


@dataclass(frozen=True, slots=True)
class OpenSession:
    """A conversation's open session as stored."""

    id: str
    owner: str
    started_at: float
    version: int
    turns: list[Any]


class ConversationStore:
    """The database side of conversations served by several processes."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._locks: Engine | None = None
        self._namespace: str | None = None
        self._guard = threading.Lock()

    def _lock_engine(self) -> Engine:
        with self._guard:
            if self._locks is None:
                self._locks = sa.create_engine(self.store.engine.url, pool_size=5,
                                               max_overflow=LOCK_POOL - 5, pool_pre_ping=True)
                with self.store.reading() as conn:
                    row = conn.execute(sa.text(
                        "SELECT current_database(), current_schema()")).one()
                self._namespace = f"{row[0]}.{row[1]}"
            return self._locks

    @contextmanager
    def turn(self, key: str) -> Iterator[Turn]:
        """Hold the conversation's lock (blocking) until the block ends; the statements of
        the turn run on the lock's own connection (no pool checkout each)."""
        engine = self._lock_engine()
        k = lock_key(f"{self._namespace}\0conversation", key)
        with engine.connect() as pooled:
            # Autocommit: each statement of the turn is one round trip (no BEGIN/COMMIT
            # around it); the session-level lock does not depend on a transaction.
            conn = pooled.execution_options(isolation_level="AUTOCOMMIT")
            conn.execute(_LOCK, {"k": k})
            try:
                yield Turn(conn, self.store)
            finally:
                conn.execute(_UNLOCK, {"k": k})

    def still_mine(self, session_id: str, version: int) -> bool:
        """True when the session is open, this process is its owner (no other process has
        begun a turn in it, nor released it) and nobody served a turn since this process
        saved ``version`` of its history (or it was never stored: nobody else knows it)."""
        s, h = sessions.c, session_history.c
        with self.store.reading() as conn:
            row = conn.execute(
                sa.select(s.status, s.owner, h.version)
                .join_from(sessions, session_history, h.session_id == s.id, isouter=True)
                .where(s.id == session_id)).first()
        return row is None or (row.status == "open" and row.owner == self.store.owner()
                               and int(row.version or 0) == version)

    def release(self, held: Sequence[Held]) -> set[str]:
        """Hand sessions over at a graceful stop: each one that is open, this process's and
        at the history version this process saved (nobody served it since) keeps its row
        open with no owner, and ``idle_until`` = the database's clock + its idle seconds
        left, so the janitor of any process ends it once it is idle (``_orphans.py``) and any
        process may continue it before that. Returns the ids released; the others are not
        this process's to end or hand over (or have no row yet)."""
        s, h = sessions.c, session_history.c
        me = self.store.owner()
        released: set[str] = set()
        with self.store.writing() as conn:
            for item in held:
                version = sa.select(h.version).where(h.session_id == item.session_id)
                done = conn.execute(
                    sessions.update().where(
                        s.id == item.session_id, s.status == "open", s.owner == me,
                        sa.func.coalesce(version.scalar_subquery(), 0) == item.version)
                    .values(owner=""))
                if not done.rowcount:
                    continue
                until = sa.cast(sa.extract("epoch", sa.func.clock_timestamp()), sa.Float) + \
                    item.idle_left
                kept = conn.execute(session_history.update()
                                    .where(h.session_id == item.session_id)
                                    .values(idle_until=until))
                if not kept.rowcount:
                    conn.execute(session_history.insert().from_select(
                        ["session_id", "version", "turns", "idle_until"],
                        sa.select(sa.literal(item.session_id), sa.literal(0), sa.literal("[]"),
                                  until)))
                released.add(item.session_id)
        return released

    def prune_messages(self, before: float) -> None:
        """Forget message keys older than ``before`` (retries come within minutes)."""
        with self.store.writing() as conn:
            conn.execute(platform_events.delete().where(platform_events.c.ts < before))

    def close(self) -> None:
        if self._locks is not None:
            self._locks.dispose()


_LOCK = sa.text("SELECT pg_advisory_lock(:k)")
_UNLOCK = sa.text("SELECT pg_advisory_unlock(:k)")
_SAVE = sa.text("INSERT INTO session_history (session_id, version, turns) "
                "VALUES (:session_id, :version, :turns) ON CONFLICT (session_id) "
                "DO UPDATE SET version = excluded.version, turns = excluded.turns")


class Turn:
    """What a turn asks of the database, on the connection that holds its lock."""

    def __init__(self, conn: Connection, store: Store) -> None:
        self.conn = conn
        self.store = store

    def begin(self, key: str, message: str | None,
              now: float) -> tuple[bool, OpenSession | None]:
        """Take the platform message on (False: some process already did; ``None``: no id)
        and read the conversation's open session (one statement each: the conversation's
        lock keeps other processes' turns out meanwhile)."""
        s, h = sessions.c, session_history.c
        conn = self.conn
        fresh = True
        if message:
            fresh = conn.execute(self.store.insert_missing(platform_events, ("key",))
                                 .returning(platform_events.c.key),
                                 {"key": message[:1000], "ts": now}).first() is not None
        row = conn.execute(
            sa.select(s.id, s.owner, s.started_at, h.version, h.turns)
            .join_from(sessions, session_history, h.session_id == s.id, isouter=True)
            .where(s.conversation_key == key, s.status == "open")
            .order_by(s.seq.desc()).limit(1)).first()
        if fresh and row is not None and row.owner != self.store.owner():
            # This process serves it now (the janitor's view; not for a duplicate it drops).
            # Re-checked as open: a released session the janitor ended is not revived.
            taken = conn.execute(sessions.update().where(s.id == row.id, s.status == "open")
                                 .values(owner=self.store.owner()))
            if not taken.rowcount:
                row = None
        if row is None:
            return fresh, None
        return fresh, OpenSession(row.id, row.owner, float(row.started_at),
                                  int(row.version or 0),
                                  json.loads(row.turns) if row.turns else [])

    def save(self, session_id: str, version: int, turns: list[Any]) -> None:
        """Store the session's bounded history as ``version``."""
        self.conn.execute(_SAVE, {"session_id": session_id, "version": version,
                                  "turns": json.dumps(turns)})
