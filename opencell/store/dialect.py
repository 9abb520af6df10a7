"""The one seam between the store and its database: everything SQLite- or PostgreSQL-only.

The store speaks SQLAlchemy Core and calls this module for the few things the two databases
spell differently: engine set-up (SQLite pragmas, explicit ``BEGIN``, WAL checkpoints off
the writer's thread), upserts (``INSERT … ON CONFLICT``), ``LIMIT``, id-prefix matching, the
tag filter over the JSON ``tags`` column, the lock that serialises schema migrations, and
whether the database is a local file that can disappear.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.pool import StaticPool

from opencell.errors import StoreError
from opencell.store._checkpoint import SAFETY_NET_PAGES, Checkpointer
from opencell.store._direct import CompiledStatements, Run, through_sqlalchemy

SQLITE_BUSY_TIMEOUT_MS = 150
"""How long a write waits for the file's lock: short on purpose, the recorder's writer
retries with back-off instead of waiting long."""
SQLITE_READ_BUSY_TIMEOUT_MS = 5000
"""How long a read (or opening a connection) waits: in WAL mode readers rarely wait at all,
but when they must (another connection closing the WAL, a file locked exclusively), a
dashboard page should wait out a busy moment, not fail after 150 ms."""

WRITE = "opencell_write"
"""Execution option marking a connection that will write (SQLite: ``BEGIN IMMEDIATE``)."""

SetClause = Callable[[Any], Mapping[str, Any]]
"""Given the ``excluded`` row of an upsert, the columns to update and their new values."""


class Dialect:
    """What differs between the databases the store supports. Subclasses per backend."""

    name = "generic"

    def create_engine(self, url: URL) -> Engine:
        """An engine configured for the store's access pattern."""
        return sa.create_engine(url)

    def upsert(self, table: sa.Table, keys: Sequence[str], set_: SetClause) -> sa.Insert:
        """``INSERT … ON CONFLICT (keys) DO UPDATE SET …``; ``set_`` receives ``excluded``."""
        raise NotImplementedError

    def insert_missing(self, table: sa.Table, keys: Sequence[str]) -> sa.Insert:
        """``INSERT … ON CONFLICT (keys) DO NOTHING``: rows already there are left alone."""
        raise NotImplementedError

    def tag_filter(self, column: sa.ColumnElement[Any], tag: str) -> sa.ColumnElement[bool]:
        """True where the JSON list of strings in ``column`` contains ``tag``."""
        listed = self.tag_listed(column, tag)
        if not _written_verbatim_in_json(tag):
            return listed
        # A tag JSON writes as itself is a substring of any list holding it: the substring
        # test skips most rows before their JSON is parsed (100,000 sessions: 48 → 24 ms).
        return sa.and_(column.contains(tag, autoescape=True), listed)

    def tag_listed(self, column: sa.ColumnElement[Any], tag: str) -> sa.ColumnElement[bool]:
        """The exact test of ``tag_filter``: the JSON list in ``column`` holds ``tag``."""
        raise NotImplementedError

    def limit(self, stmt: sa.Select[Any], rows: int) -> sa.Select[Any]:
        """``stmt`` returning at most ``rows`` rows."""
        return stmt.limit(rows)

    def prefix_match(self, column: sa.ColumnElement[str], prefix: str) -> sa.ColumnElement[bool]:
        """True where ``column`` starts with ``prefix`` (an index-friendly spelling)."""
        return column.startswith(prefix, autoescape=True)

    def among(self, column: sa.ColumnElement[Any],
              short: sa.Select[Any]) -> sa.ColumnElement[bool]:
        """``column IN (short)``, for a subquery known to return few rows (a thousand)."""
        return column.in_(short)

    def pipelined(self, conn: Connection) -> AbstractContextManager[Run]:
        """A block whose statements are sent without waiting for each answer, where the
        driver can (one wait for all of them at the end); it gives the way to run the write
        batch's statements (plain ``conn.execute`` elsewhere)."""
        return nullcontext(through_sqlalchemy(conn))

    def lock_schema(self, conn: Connection) -> None:
        """Serialise concurrent migrations (inside the migrating transaction)."""

    def file_path(self) -> Path | None:
        """The database file when it is a local file (watched for deletion), else None."""
        return None

    def after_write(self) -> None:
        """Called after each committed write batch."""

    def close(self) -> None:
        """Stop whatever ``after_write`` started."""


class SQLiteDialect(Dialect):
    """SQLite: WAL, ``synchronous=NORMAL``, short busy timeout, explicit transactions."""

    name = "sqlite"

    def __init__(self, url: URL) -> None:
        database = url.database or ""
        self.memory = database in ("", ":memory:") or "mode=memory" in str(url)
        self.path = None if self.memory else Path(database).expanduser()
        self.checkpointer = None if self.path is None else Checkpointer(self.path)
        self._compiled = CompiledStatements()

    def create_engine(self, url: URL) -> Engine:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(url, connect_args={"check_same_thread": False})
        else:
            # One shared connection: usable from a single thread only (tests, scripts).
            engine = sa.create_engine(url, poolclass=StaticPool,
                                      connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        if self.checkpointer is not None:
            event.listen(engine, "connect", _leave_checkpoints_to_the_checkpointer)
        return engine

    def upsert(self, table: sa.Table, keys: Sequence[str], set_: SetClause) -> sa.Insert:
        stmt = sqlite.insert(table)
        return stmt.on_conflict_do_update(index_elements=list(keys), set_=set_(stmt.excluded))

    def insert_missing(self, table: sa.Table, keys: Sequence[str]) -> sa.Insert:
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=list(keys))

    def tag_listed(self, column: sa.ColumnElement[Any], tag: str) -> sa.ColumnElement[bool]:
        each = sa.func.json_each(column).table_valued("value")
        return sa.exists(sa.select(sa.literal(1)).select_from(each).where(each.c.value == tag))

    def limit(self, stmt: sa.Select[Any], rows: int) -> sa.Select[Any]:
        # SQLAlchemy's SQLite compiler writes every LIMIT as "LIMIT ? OFFSET ?" (offset 0);
        # spelled out, the SQL says what it does: keyset pages, no OFFSET anywhere.
        return stmt.suffix_with(f"LIMIT {int(rows)}")

    def prefix_match(self, column: sa.ColumnElement[str], prefix: str) -> sa.ColumnElement[bool]:
        # SQLite's LIKE is case-insensitive and so cannot use the (binary) index; a range can.
        return sa.and_(column >= prefix, column < prefix + "\U0010ffff")

    def pipelined(self, conn: Connection) -> AbstractContextManager[Run]:
        # No pipeline to wait on, but the statements go to sqlite3 as compiled once
        # (``_direct.py``): SQLAlchemy's per-row parameters cost as much as SQLite's insert.
        return nullcontext(self._compiled.direct(conn, conn.connection.driver_connection))

    def file_path(self) -> Path | None:
        return self.path

    def after_write(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.nudge()

    def close(self) -> None:
        if self.checkpointer is not None:
            self.checkpointer.stop()


class PostgresDialect(Dialect):
    """PostgreSQL: several bot processes sharing one store."""

    name = "postgresql"

    def __init__(self) -> None:
        self._compiled = CompiledStatements()

    def create_engine(self, url: URL) -> Engine:
        return sa.create_engine(url, pool_pre_ping=True)

    def upsert(self, table: sa.Table, keys: Sequence[str], set_: SetClause) -> sa.Insert:
        stmt = postgresql.insert(table)
        return stmt.on_conflict_do_update(index_elements=list(keys), set_=set_(stmt.excluded))

    def insert_missing(self, table: sa.Table, keys: Sequence[str]) -> sa.Insert:
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=list(keys))

    def tag_listed(self, column: sa.ColumnElement[Any], tag: str) -> sa.ColumnElement[bool]:
        return sa.cast(column, postgresql.JSONB).contains([tag])

    def among(self, column: sa.ColumnElement[Any],
              short: sa.Select[Any]) -> sa.ColumnElement[bool]:
        # As an array, the rows are a value the planner can seek an index with, so an OR
        # of it with indexed tests (the search's id prefix and user) becomes a BitmapOr of
        # index scans; "IN (subquery)" there makes it test every session (100,000: 25 ms).
        # Only for short lists: matched row by row, a long array costs far more.
        return column == sa.any_(sa.func.array(short.scalar_subquery()))

    @contextmanager
    def pipelined(self, conn: Connection) -> Iterator[Run]:
        # A write batch's dozen statements wait for the server once, not a dozen times (a
        # turn's batch on loopback: 2.7 → 1.7 ms), and go to the driver as compiled once
        # (``_direct.py``: 0.77 → 0.54 ms). An error is raised by the driver itself when the
        # block ends (``Store.is_outage``).
        with driver_pipeline(conn) as pipeline:
            yield through_sqlalchemy(conn) if pipeline is None else self._compiled.direct(
                conn, conn.connection.driver_connection)

    def lock_schema(self, conn: Connection) -> None:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(7406318471)"))


def driver_pipeline(conn: Connection) -> AbstractContextManager[Any]:
    """psycopg's pipeline mode (libpq 14+) on ``conn``'s own connection: statements sent
    inside go without waiting for each answer (one wait at the end); a plain block, giving
    None, with a driver that has none."""
    driver = conn.connection.driver_connection
    if not hasattr(driver, "pipeline") or not _pipeline_supported():
        return nullcontext()
    return driver.pipeline()  # type: ignore[union-attr,no-any-return]


@cache
def _pipeline_supported() -> bool:
    import psycopg

    return bool(psycopg.Pipeline.is_supported())


def dialect_for(url: str | URL) -> tuple[Dialect, URL]:
    """The dialect for a database URL (``sqlite:///path`` or ``postgresql+driver://…``)."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # noqa: BLE001 - any parse failure is the user's URL
        raise StoreError(f"cannot read the database URL ({exc}); expected e.g. "
                         "sqlite:///opencell.db or postgresql+psycopg://user@host/db") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return SQLiteDialect(parsed), parsed
    if backend == "postgresql":
        return PostgresDialect(), parsed
    raise StoreError(f"unsupported database '{backend}' in the store URL; "
                     "use sqlite:///path or postgresql+psycopg://…")


def remove_stale_wal(path: Path) -> None:
    """After the database file vanished, drop its ``-wal``/``-shm`` so they are not replayed."""
    for suffix in ("-wal", "-shm", "-journal"):
        try:
            os.remove(f"{path}{suffix}")
        except FileNotFoundError:
            pass


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # SQLAlchemy emits BEGIN itself (see _sqlite_begin): the sqlite3 module's implicit,
    # DML-only transactions would leave DDL and reads outside the transaction.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_READ_BUSY_TIMEOUT_MS}")
        # Takes effect only in a file with no tables yet (a new store): retention can then
        # hand freed pages back with PRAGMA incremental_vacuum. An older file keeps its mode
        # until a full VACUUM (`opencell prune --vacuum`); see store/retention.py. Set only
        # there: setting it takes the write lock, so every new connection (a dashboard read)
        # waited for the writer's batch, and failed "database is locked" behind a long one.
        if cursor.execute("PRAGMA auto_vacuum").fetchone()[0] != 2 and \
                cursor.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0:
            cursor.execute("PRAGMA auto_vacuum = INCREMENTAL")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _leave_checkpoints_to_the_checkpointer(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA wal_autocheckpoint = {SAFETY_NET_PAGES}")
    finally:
        cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    # A writer takes the write lock up front: a deferred transaction that read first and
    # then writes can fail with SQLITE_BUSY without the busy handler ever waiting.
    write = bool(conn.get_execution_options().get(WRITE))
    timeout = SQLITE_BUSY_TIMEOUT_MS if write else SQLITE_READ_BUSY_TIMEOUT_MS
    info = conn.connection.info  # a pooled connection serves reads and writes in turn
    if info.get("busy_timeout", SQLITE_READ_BUSY_TIMEOUT_MS) != timeout:
        conn.exec_driver_sql(f"PRAGMA busy_timeout = {timeout}")
        info["busy_timeout"] = timeout
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


_VERBATIM_IN_JSON = frozenset(chr(c) for c in range(0x20, 0x7F)) - set('"\\/<>&')


def _written_verbatim_in_json(text: str) -> bool:
    """True when every JSON encoder writes ``text`` inside a string as the text itself."""
    return bool(text) and all(char in _VERBATIM_IN_JSON for char in text)
