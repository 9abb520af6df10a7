"""Discord shards claimed by this process (``shards: {count: N, ids: auto}``).

On PostgreSQL each shard is a session-level advisory lock keyed by (database, schema, bot,
shard), held on one connection of this process's own: a shard runs in the process holding its
lock, so in exactly one process, and when that process dies the server frees the lock and
another process's next ``claim`` takes the shard over. On SQLite (one bot process per file)
every shard is this process's.

A process that stops gracefully leaves each shard's Discord gateway session resumable and
saves it here (``save_sessions``) before it gives the shards up; the process that claims a
shard next takes that session (``take_session``) to replay the events Discord sent in between.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from opencell.store.cluster import lock_key
from opencell.store.store import Store
from opencell.store.tables import shard_sessions


@dataclass(frozen=True, slots=True)
class ShardSession:
    """A Discord gateway session left resumable for one shard."""

    shard: int
    session_id: str
    sequence: int
    """The last event sequence number the stopped process read."""
    resume_url: str


class ShardClaims:
    """The shards of one bot this process holds."""

    def __init__(self, store: Store, bot: str, count: int) -> None:
        self.store = store
        self.bot = bot
        self.count = count
        self.held: list[int] = []
        self._engine: Engine | None = None
        self._conn: Connection | None = None
        self._namespace = ""
        self._guard = threading.Lock()

    def claim(self, limit: int | None = None) -> list[int]:
        """Take free shards until this process holds ``limit`` (all, when None); the newly
        taken ids, in order."""
        want = self.count if limit is None else min(limit, self.count)
        with self._guard:
            if self.store.dialect_name != "postgresql":
                new = [i for i in range(want) if i not in self.held]
                self.held.extend(new)
                return new
            conn = self._connection()
            new = []
            for shard in range(self.count):
                if len(self.held) >= want:
                    break
                if shard in self.held:
                    continue
                key = lock_key(self._namespace, f"discord-shard\0{self.bot}\0{shard}")
                if conn.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
                    self.held.append(shard)
                    new.append(shard)
            conn.commit()
            return new

    def save_sessions(self, saved: Iterable[ShardSession]) -> None:
        """Keep the gateway sessions of shards this process gives up, for their next holder."""
        rows = [{"bot": self.bot, "shard": one.shard, "shard_count": self.count,
                 "session_id": one.session_id, "sequence": one.sequence,
                 "resume_url": one.resume_url, "saved_at": time.time()} for one in saved]
        if not rows or self.store.dialect_name != "postgresql":
            return
        t = shard_sessions.c
        with self.store.writing() as conn:
            conn.execute(shard_sessions.delete().where(
                t.bot == self.bot, t.shard.in_([row["shard"] for row in rows])))
            conn.execute(shard_sessions.insert(), rows)

    def take_session(self, shard: int) -> ShardSession | None:
        """The session saved for ``shard`` (a shard this process holds), once: it is removed.
        None when there is none, or it was saved for another shard count."""
        if self.store.dialect_name != "postgresql":
            return None
        t = shard_sessions.c
        with self.store.writing() as conn:
            row = conn.execute(shard_sessions.delete().where(t.bot == self.bot, t.shard == shard)
                               .returning(t.shard_count, t.session_id, t.sequence,
                                          t.resume_url)).first()
        if row is None or row.shard_count != self.count:
            return None
        return ShardSession(shard, row.session_id, int(row.sequence), row.resume_url)

    def _connection(self) -> Connection:
        if self._conn is None:
            self._engine = sa.create_engine(self.store.engine.url, poolclass=NullPool)
            self._conn = self._engine.connect()
            row = self._conn.execute(sa.text("SELECT current_database(), current_schema()")).one()
            self._namespace = f"{row[0]}.{row[1]}"
            self._conn.commit()
        return self._conn

    def close(self) -> None:
        """Give every shard up (the connection's end frees its locks)."""
        with self._guard:
            self.held.clear()
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None
