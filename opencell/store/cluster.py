"""Which processes are alive: one lock per process and database, never a hostname, PID or clock.

Each process that writes to a store is an *instance*, named by :func:`process_owner`
(``host:pid/token``; the random token differs for every process, so two containers with the
same hostname and PID 1 are still two instances). Before its name is written anywhere (a
session's ``owner``, an exporter lease), the instance takes a lock that lives exactly as long
as it holds the store open (or the process, whichever ends first):

- PostgreSQL: a session-level advisory lock, keyed by (database, schema, instance), on one
  dedicated connection per server. The server frees it the moment that connection dies (a
  crash, ``kill -9``, a lost host), so any other process can tell by ``pg_try_advisory_xact_lock``.
  The connection must be direct or through session-mode pooling (not PgBouncer's
  transaction mode).
- SQLite: ``flock`` on a small file next to the database (``.<db>.locks/<token>``: hidden,
  so ``<db>*`` globs miss it). The kernel frees it when the process dies, in whatever PID
  namespace it ran. ``bots.lock`` there marks the one process that runs bots on the file.

Owners written by older OpenCells (``host:pid`` without a token) are judged the old way
(``_owner.owner_is_alive``). This process's own instance is always alive.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import secrets
import socket
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from opencell.errors import StoreError
from opencell.store._owner import owner_is_alive
from opencell.store.dialect import WRITE, Dialect
from opencell.store.tables import instances

_lock = threading.Lock()
_token: tuple[int, str] = (0, "")
_held: dict[str, _Held] = {}


def process_owner() -> str:
    """This process's instance name: ``host:pid/token`` (a new token in every process)."""
    global _token
    pid = os.getpid()
    if _token[0] != pid:
        _token = (pid, secrets.token_hex(6))
    return f"{socket.gethostname()}:{pid}/{_token[1]}"


def lock_key(namespace: str, owner: str) -> int:
    """The signed 64-bit advisory-lock key of ``owner`` in ``namespace``."""
    digest = hashlib.blake2b(f"{namespace}\0{owner}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class _Held:
    """One registration: the lock (a connection or a file) and how many stores use it."""

    def __init__(self, release: Any) -> None:
        self.release = release
        self.users = 0


class Membership:
    """This process's registration in one store, and liveness checks of other instances."""

    def __init__(self, engine: Engine, dialect: Dialect) -> None:
        self._engine = engine
        self._dialect = dialect
        self._postgres = dialect.name == "postgresql"
        self._path = dialect.file_path()
        self._namespace: str | None = None
        self._registered: str | None = None
        self._guard = threading.Lock()
        self._serving: str | None = None

    # ------------------------------------------------------------ this process

    def owner(self) -> str:
        """This process's name, registered (locked) in this store first."""
        owner = process_owner()
        if self._registered == owner:
            return owner
        with self._guard:
            if self._registered != owner:
                self._register(owner)
                self._registered = owner
        return owner

    def release(self) -> None:
        """The store is closing: give the registration up when no other store uses it."""
        if self._serving is not None:
            _drop(self._serving)
            self._serving = None
        with self._guard:
            if self._registered is None:
                return
            key = self._held_key(self._registered)
            self._registered = None
        _drop(key)

    def _held_key(self, owner: str) -> str:
        if self._postgres:
            return f"pg\0{self._engine.url}\0{self._ns()}\0{owner}"
        return f"file\0{self._path}\0{owner}"

    def _register(self, owner: str) -> None:
        key = self._held_key(owner)
        with _lock:
            held = _held.get(key)
            if held is None:
                if self._postgres:
                    held = _Held(self._lock_postgres(owner))
                elif self._path is not None:
                    held = _Held(_lock_file(self._lock_path(owner)))
                else:
                    held = _Held(lambda: None)  # :memory: is one process by definition
                _held[key] = held
            held.users += 1
        if self._path is not None or self._postgres:
            self._note_instance(owner)

    def _lock_postgres(self, owner: str) -> Any:
        engine = sa.create_engine(self._engine.url, poolclass=NullPool)
        conn = engine.connect()
        conn.execute(sa.text("SELECT pg_advisory_lock(:k)"),
                     {"k": lock_key(self._ns(), owner)})
        conn.commit()

        def release() -> None:
            conn.close()  # the server frees the lock with the session
            engine.dispose()
        return release

    def _note_instance(self, owner: str) -> None:
        """Keep a row per instance (for operators and the janitor); best effort."""
        try:
            # SQLite's instances hold a lock file, not an advisory lock: any key will do.
            key = lock_key(self._ns() if self._postgres else str(self._path), owner)
            with self._engine.connect() as conn, conn.execution_options(**{WRITE: True}).begin():
                conn.execute(self._dialect.insert_missing(instances, ("id",)), {
                    "id": owner, "lock_key": key,
                    "label": owner.partition("/")[0], "started_at": time.time()})
        except sa.exc.SQLAlchemyError:
            pass

    def serve_alone(self) -> None:
        """SQLite: become the one process that runs bots on this file, or raise
        ``StoreError`` naming the process that already does and PostgreSQL.

        Several bot processes on one SQLite file would each keep their own conversations and
        budget tallies (SCALE-OUT.md D3, D5); PostgreSQL shares them. Held until the store
        closes or the process ends; reading processes (CLI, dashboard) never take it."""
        if self._postgres or self._path is None:
            return
        owner = self.owner()
        path = self._path.parent / f".{self._path.name}.locks" / "bots.lock"
        key = f"serve\0{path}"
        with _lock:
            held = _held.get(key)
            if held is None:
                try:
                    release = _lock_file(path, keep=True, note=owner)
                except BlockingIOError:
                    other = _read(path)
                    raise StoreError(
                        f"another OpenCell process ({other or 'unknown'}) already runs bots "
                        f"on the SQLite store {self._path}; several processes cannot share "
                        "conversations and budgets through SQLite: stop it, or point every "
                        "process at one PostgreSQL database (OPENCELL_DATABASE_URL="
                        "postgresql+psycopg://…)") from None
                held = _held[key] = _Held(release)
            held.users += 1
        self._serving = key

    # ------------------------------------------------------------ others

    def is_alive(self, owner: str) -> bool:
        """Whether the instance ``owner`` still holds its lock in this store."""
        return owner not in self.dead([owner])

    def dead(self, owners: Iterable[str]) -> set[str]:
        """Which of ``owners`` are gone (their lock is free). Unknowable counts as alive."""
        me = process_owner()
        found: set[str] = set()
        tokened = []
        for owner in set(owners):
            if owner == me or owner == "":
                continue
            if "/" not in owner:
                if not _legacy_alive(owner):
                    found.add(owner)
            else:
                tokened.append(owner)
        if not tokened:
            return found
        if self._postgres:
            found.update(self._dead_postgres(tokened))
        elif self._path is not None:
            found.update(owner for owner in tokened if _file_free(self._lock_path(owner)))
        return found

    def _dead_postgres(self, owners: list[str]) -> set[str]:
        namespace = self._ns()
        dead = set()
        with self._engine.connect() as conn:
            with conn.begin() as transaction:
                for owner in owners:  # each free lock is taken and let go at the rollback
                    if conn.execute(sa.text("SELECT pg_try_advisory_xact_lock(:k)"),
                                    {"k": lock_key(namespace, owner)}).scalar():
                        dead.add(owner)
                transaction.rollback()
        return dead

    def mark_stopped(self, conn: Connection, owners: Iterable[str], reason: str) -> None:
        """Note in ``instances`` that these instances were found dead."""
        ids = list(owners)
        if ids:
            c = instances.c
            conn.execute(instances.update().where(c.id.in_(ids), c.stopped_at.is_(None))
                         .values(stopped_at=time.time(), stop_reason=reason))

    # ------------------------------------------------------------ helpers

    def _ns(self) -> str:
        if self._namespace is None:
            with self._engine.connect() as conn:
                row = conn.execute(sa.text("SELECT current_database(), current_schema()")).one()
            self._namespace = f"{row[0]}.{row[1]}"
        return self._namespace

    def _lock_path(self, owner: str) -> Path:
        assert self._path is not None
        return self._path.parent / f".{self._path.name}.locks" / owner.rpartition("/")[2]


def _legacy_alive(owner: str) -> bool:
    try:
        return owner_is_alive(owner)
    except Exception:  # noqa: BLE001 - unknowable counts as alive
        return True


def _drop(key: str) -> None:
    with _lock:
        held = _held.get(key)
        if held is not None:
            held.users -= 1
            if held.users <= 0:
                del _held[key]
                held.release()


def _lock_file(path: Path, *, keep: bool = False, note: str = "") -> Any:
    """Hold ``flock`` on ``path`` (raises ``BlockingIOError`` when another process does);
    the release removes the file unless ``keep`` (a shared name: removing it would let a
    second process lock a new file while the first holds the old one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException:
        os.close(fd)
        raise
    if note:
        os.ftruncate(fd, 0)
        os.write(fd, note.encode())

    def release() -> None:
        if not keep:
            try:
                os.unlink(path)
            except OSError:
                pass
        os.close(fd)
    return release


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace").strip()[:300]
    except OSError:
        return ""


def _file_free(path: Path) -> bool:
    """True when no process holds ``path``'s lock (its owner is gone)."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return True  # released at a clean stop, or never taken: nobody is there
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return False
    else:
        try:
            os.unlink(path)
        except OSError:
            pass
        return True
    finally:
        os.close(fd)
