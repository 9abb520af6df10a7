"""Conversations shared by several processes (PostgreSQL): a lock per conversation, the open
session's row, and the stored history any process can continue from.

``middleware/cluster.py`` uses it around every turn when the store is PostgreSQL:

- ``lock(key)``: a session-level advisory lock keyed by (database, schema, conversation), held
  on a connection of its own for the whole turn, so the turns of one conversation run one at a
  time across processes (in arrival order per process; the lock itself is not FIFO).
- ``current(key)``: the conversation's open session (``sessions.conversation_key``, open) with
  the version and turns of its stored history (``session_history``).
- ``adopt(id)``: this process now serves the session (its ``owner``), so the janitor judges the
  session by this process's liveness.
- ``save(id, version, turns)``: the bounded history after a turn, as JSON.
- ``claim_message(key)``: the first process to take a platform message on answers it; a
  retry or duplicate delivery elsewhere is dropped.
- ``still_mine(id, version)``: whether this process should end the session when it goes idle here.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
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
    def lock(self, key: str) -> Iterator[None]:
        """Hold the conversation's lock (blocking) until the block ends."""
        engine = self._lock_engine()
        k = lock_key(f"{self._namespace}\0conversation", key)
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": k})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": k})
                conn.commit()

    def current(self, key: str) -> OpenSession | None:
        s, h = sessions.c, session_history.c
        with self.store.reading() as conn:
            row = conn.execute(
                sa.select(s.id, s.owner, s.started_at, h.version, h.turns)
                .join_from(sessions, session_history, h.session_id == s.id, isouter=True)
                .where(s.conversation_key == key, s.status == "open")
                .order_by(s.seq.desc()).limit(1)).first()
        if row is None:
            return None
        return OpenSession(row.id, row.owner, float(row.started_at), int(row.version or 0),
                           json.loads(row.turns) if row.turns else [])

    def adopt(self, session_id: str) -> None:
        owner = self.store.owner()
        with self.store.writing() as conn:
            conn.execute(sessions.update().where(sessions.c.id == session_id,
                                                 sessions.c.owner != owner).values(owner=owner))

    def save(self, session_id: str, version: int, turns: list[Any]) -> None:
        with self.store.writing() as conn:
            _upsert(conn, self.store, session_id, version, json.dumps(turns))

    def still_mine(self, session_id: str, version: int) -> bool:
        """True when the session is open and nobody served a turn since this process saved
        ``version`` of its history (or it was never stored: nobody else knows it)."""
        s, h = sessions.c, session_history.c
        with self.store.reading() as conn:
            row = conn.execute(
                sa.select(s.status, h.version)
                .join_from(sessions, session_history, h.session_id == s.id, isouter=True)
                .where(s.id == session_id)).first()
        return row is None or (row.status == "open" and int(row.version or 0) == version)

    def claim_message(self, key: str, now: float) -> bool:
        """Take on the platform message ``key``; False when a process already did."""
        with self.store.writing() as conn:
            taken = conn.execute(self.store.insert_missing(platform_events, ("key",))
                                 .returning(platform_events.c.key),
                                 {"key": key[:1000], "ts": now}).first()
            return taken is not None

    def prune_messages(self, before: float) -> None:
        """Forget message keys older than ``before`` (retries come within minutes)."""
        with self.store.writing() as conn:
            conn.execute(platform_events.delete().where(platform_events.c.ts < before))

    def close(self) -> None:
        if self._locks is not None:
            self._locks.dispose()


def _upsert(conn: Connection, store: Store, session_id: str, version: int, turns: str) -> None:
    h = session_history.c
    done = conn.execute(session_history.update().where(h.session_id == session_id)
                        .values(version=version, turns=turns))
    if not done.rowcount:
        conn.execute(store.insert_missing(session_history, ("session_id",)),
                     {"session_id": session_id, "version": version, "turns": turns})
