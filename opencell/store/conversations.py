"""Conversations shared by several processes (PostgreSQL): a lock per conversation, the open
session's row, and the stored history any process can continue from.

``middleware/cluster.py`` uses it around every turn when the store is PostgreSQL:

- ``turn(key)``: a session-level advisory lock keyed by (database, schema, conversation), held
  on a connection of its own for the whole turn, so the turns of one conversation run one at a
  time across processes (in arrival order per process; the lock itself is not FIFO). The
  turn's statements run on that connection, pipelined (the driver sends several and waits
  once):
- ``Turn.begin``: take the lock, take the platform message on (the first process to do so
  answers it; a retry or duplicate delivery elsewhere is dropped) and read the conversation's
  open session (``sessions.conversation_key``, open) with the version and turns of its stored
  history (``session_history``) — one round trip; then, only when another process served it
  last, make this process its ``owner`` (the janitor's view);
- ``Turn.save(id, version, turns)``: the bounded history after the turn, as JSON, stored in
  the same round trip that lets the lock go.
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

from opencell.records import valid_text
from opencell.store.cluster import lock_key
from opencell.store.dialect import driver_pipeline
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
                # Autocommit for good, and nothing to reset when a connection goes back to
                # the pool (a turn commits what it writes; one that fails is closed, not
                # pooled): a turn's checkout and return cost no round trip of their own.
                self._locks = sa.create_engine(
                    self.store.engine.url, pool_size=5, max_overflow=LOCK_POOL - 5,
                    pool_pre_ping=True, isolation_level="AUTOCOMMIT", pool_reset_on_return=None)
                with self.store.reading() as conn:
                    row = conn.execute(sa.text(
                        "SELECT current_database(), current_schema()")).one()
                self._namespace = f"{row[0]}.{row[1]}"
            return self._locks

    @contextmanager
    def turn(self, key: str) -> Iterator[Turn]:
        """A turn of the conversation ``key`` on a connection of its own: ``Turn.begin``
        takes the conversation's lock (blocking), and the lock is let go when the block ends,
        after the history ``Turn.save`` was given is stored."""
        engine = self._lock_engine()
        k = lock_key(f"{self._namespace}\0conversation", key)
        with engine.connect() as pooled:
            turn = Turn(pooled, self.store, k)
            try:
                yield turn
            finally:
                turn.end()

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


# The statements of a turn, sent to the driver as they are: a turn's round trips are most of
# what cluster mode adds to it, and each one through the SQL layer cost more than the round
# trip itself (0.1-0.3 ms). Pipelined where the driver can (one wait for several).
_LOCK = "SELECT pg_advisory_lock(%(k)s)"
_UNLOCK = "SELECT pg_advisory_unlock(%(k)s)"
_CLAIM = ("INSERT INTO platform_events (key, ts) VALUES (%(key)s, %(ts)s) "
          "ON CONFLICT (key) DO NOTHING RETURNING key")
_OPEN = ("SELECT s.id, s.owner, s.started_at, h.version, h.turns FROM sessions AS s "
         "LEFT OUTER JOIN session_history AS h ON h.session_id = s.id "
         "WHERE s.conversation_key = %(key)s AND s.status = 'open' ORDER BY s.seq DESC LIMIT 1")
_TAKE = "UPDATE sessions SET owner = %(owner)s WHERE id = %(id)s AND status = 'open'"
_SAVE = ("INSERT INTO session_history (session_id, version, turns) "
         "VALUES (%(session_id)s, %(version)s, %(turns)s) ON CONFLICT (session_id) "
         "DO UPDATE SET version = excluded.version, turns = excluded.turns")

Statement = tuple[str, dict[str, Any]]
_BEGIN: Statement = ("BEGIN ISOLATION LEVEL READ COMMITTED", {})
"""Each statement sees what was committed before it ran (whatever the server's default): the
read after the lock sees what the lock's previous holder stored."""
_COMMIT: Statement = ("COMMIT", {})


class Turn:
    """What a turn asks of the database, on the connection that holds its lock."""

    def __init__(self, conn: Connection, store: Store, lock: int) -> None:
        self.conn = conn
        self.store = store
        self.lock = lock
        self._locked = False
        self._history: dict[str, Any] | None = None

    def _run(self, *statements: Statement) -> list[Any]:
        """Run ``statements`` in order, pipelined (one wait for all); their cursors.

        A pipeline's statements up to its end are one transaction unless they say otherwise
        (the driver's autocommit does not split them): a write that must be seen before the
        lock is let go is committed by an explicit ``BEGIN``/``COMMIT`` around it."""
        driver = self.conn.connection.driver_connection
        assert driver is not None
        cursors = []
        try:
            with driver_pipeline(self.conn):
                for sql, params in statements:
                    cursor = driver.cursor()
                    cursor.execute(sql, params)
                    cursors.append(cursor)
        except BaseException:
            # Whatever failed (the server, or the driver refusing a value before sending it
            # while earlier statements ran), the connection may hold the lock or sit in an
            # open transaction: closed, it lets both go and never goes back to the pool.
            self._locked = False
            self.conn.invalidate()
            raise
        return cursors

    def begin(self, key: str, message: str | None,
              now: float) -> tuple[bool, OpenSession | None]:
        """Take the conversation's lock, take the platform message on (False: some process
        already did; ``None``: no id) and read the conversation's open session — in one
        round trip: the server runs each statement once the one before it is done, so the
        read sees what the lock's previous holder stored."""
        statements: list[Statement] = [_BEGIN, (_LOCK, {"k": self.lock})]
        if message:
            statements.append((_CLAIM, {"key": _text(message[:1000]), "ts": now}))
        statements += [(_OPEN, {"key": _text(key)}), _COMMIT]
        self._locked = True  # from here on, end() lets go (a lock never taken: a no-op)
        cursors = self._run(*statements)
        fresh = not message or cursors[2].fetchone() is not None
        row = cursors[-2].fetchone()
        me = self.store.owner()
        if fresh and row is not None and row[1] != me:
            # This process serves it now (the janitor's view; not for a duplicate it drops).
            # Re-checked as open: a released session the janitor ended is not revived.
            (taken,) = self._run((_TAKE, {"owner": me, "id": row[0]}))
            if not taken.rowcount:
                row = None
        if row is None:
            return fresh, None
        session_id, owner, started_at, version, turns = row
        return fresh, OpenSession(session_id, owner, float(started_at), int(version or 0),
                                  json.loads(turns) if turns else [])

    def save(self, session_id: str, version: int, turns: list[Any]) -> None:
        """Store the session's bounded history as ``version`` when the turn ends (in the
        same round trip as letting the lock go)."""
        self._history = {"session_id": session_id, "version": version,
                         "turns": json.dumps(turns)}

    def end(self) -> None:
        """Store the history given to ``save`` and let the lock go. On any failure the
        connection is closed, which lets the lock go too (it never returns to the pool
        holding it)."""
        if not self._locked:
            return
        statements: list[Statement] = []
        if self._history is not None:
            statements += [_BEGIN, (_SAVE, self._history), _COMMIT]  # committed, then let go
        statements.append((_UNLOCK, {"k": self.lock}))
        self._locked, self._history = False, None
        self._run(*statements)


def _text(value: str) -> str:
    """A platform's id as PostgreSQL text can hold it (no NUL, no lone surrogate)."""
    return valid_text(value).replace("\x00", "\ufffd")
