"""The exporters' outbox: one delivery cursor per exporter over the append-only events table.

Why a cursor and not a row per event per exporter: events are only ever appended, with
increasing integer ids, and exported in id order. "Everything above ``last_event_id`` is
pending" is then exact, costs the ingest path nothing (the writer inserts events as before:
an outbox row per event and exporter would double or triple the rows of every batch, about
halving the ≥100k events/s the store takes) and leaves nothing to prune: delivering advances
one integer. A session's root span waits for the session to end (AgentOps reads the root's
name and tags from it); it is built when the exporter reaches the session's first
``session_end`` event, so "sessions whose root is not yet delivered" are exactly the ended
sessions whose ``session_end`` lies above the cursor. Children go as they happen.

Delivery is at-least-once: the cursor moves only after the backend answered 2xx, so a crash
between the answer and the cursor update resends that one batch (same span ids). Span ids are
derived from (session id, event id), so a resend is recognisably the same span.

A new exporter starts at the first event of the sessions open right now (or at the newest
event): it exports from when it was enabled, not the whole history. A disabled exporter keeps
its cursor, and resumes there when enabled again.

Several processes may share one store: a lease (``lease_owner``/``lease_until``, judged by
the database's clock) lets one of them drain each exporter's outbox; the others wait, and take
over when the lease runs out or its holder is dead (``Store.is_alive``: an advisory lock on
PostgreSQL, a file lock on SQLite; never a hostname, a PID or a clock). Every take-over raises
the row's ``fence``; a holder whose fence is stale cannot move the cursor.

The cursor is a position ``(tx, id)``. On PostgreSQL ids are handed out before commit, so a
later id can become visible first; events therefore carry the id of the transaction that
wrote them (``tx``) and the outbox reads in ``(tx, id)`` order, only transactions below the
reading snapshot's ``xmin``: every one of those has finished, so nothing can appear behind the
cursor later. An event whose transaction commits late is read when it commits (never
skipped), there is no settle delay, and a graceful stop drains everything committed. A
transaction left open anywhere on the server pauses export (it never loses an event). SQLite
writers are serialised: ``tx`` is 0 and ids alone are the order.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from opencell.store import Store
from opencell.store.tables import events, export_cursors, sessions
from opencell.store.texts import expand

Position = tuple[int, int]
"""An outbox cursor: ``(tx, id)`` of the last event delivered (``tx`` is 0 on SQLite)."""


@dataclass(frozen=True, slots=True)
class SessionRow:
    """Who a stored event's session is: what spans carry as trace-level attributes."""

    id: str
    seq: int
    bot: str
    bot_type: str
    platform: str
    user_id: str
    user_name: str
    channel: str
    tags: tuple[str, ...]
    started_at: float


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One row of the events table with its session, as an exporter reads it."""

    id: int
    session: SessionRow
    ts: float
    kind: str
    name: str
    duration_ms: float | None
    success: bool | None
    data: dict[str, Any] = field(default_factory=dict)
    tx: int = 0

    @property
    def position(self) -> Position:
        """Where the cursor stands once this event is delivered."""
        return self.tx, self.id


@dataclass(frozen=True, slots=True)
class SessionExtent:
    """What a session's root span needs: its events' time span and its first end."""

    first_ts: float
    last_end: float
    first_end_id: int | None


class Outbox:
    """One exporter's cursor in the store: claim it, read what is pending, advance it."""

    def __init__(self, store: Store, exporter: str, *, lease_s: float = 30.0,
                 owner: str | None = None, wall: Callable[[], float] | None = None) -> None:
        self.store = store
        self.exporter = exporter
        self.owner = owner or store.owner()
        self.lease_s = lease_s
        self.postgres = store.dialect_name == "postgresql"
        self._wall = wall
        self._fence = 0

    def _now(self, conn: Connection) -> float:
        """The lease clock: the database's (PostgreSQL), so hosts' clocks never matter."""
        if self._wall is not None:
            return self._wall()
        if self.postgres:
            return float(conn.execute(sa.text(
                "SELECT EXTRACT(EPOCH FROM clock_timestamp())")).scalar_one())
        return time.time()

    # ------------------------------------------------------------ the cursor

    def claim(self) -> Position | None:
        """Take (or renew) this exporter's lease; the stored cursor, or None if another
        live process holds the lease."""
        c = export_cursors.c
        with self.store.writing() as conn:
            now = self._now(conn)
            row = conn.execute(sa.select(c.last_tx, c.last_event_id, c.lease_owner,
                                         c.lease_until, c.fence)
                               .where(c.exporter == self.exporter)).first()
            if row is None:
                start = _starting_point(conn, self.postgres)
                conn.execute(export_cursors.insert().values(
                    exporter=self.exporter, last_tx=start[0], last_event_id=start[1],
                    updated_at=now, lease_owner=self.owner, lease_until=now + self.lease_s,
                    fence=1))
                self._fence = 1
                return start
            holder = row.lease_owner
            mine = holder == self.owner and int(row.fence) == self._fence
            free = (mine or holder == "" or row.lease_until < now
                    or not self.store.is_alive(holder))
            if not free:
                return None
            fence = int(row.fence) if mine else int(row.fence) + 1
            taken = conn.execute(export_cursors.update().where(
                c.exporter == self.exporter, c.lease_owner == holder, c.fence == row.fence,
            ).values(lease_owner=self.owner, lease_until=now + self.lease_s, fence=fence))
            if not taken.rowcount:
                return None
            self._fence = fence
            return int(row.last_tx), int(row.last_event_id)

    def advance(self, to: Position, *, events_delivered: int, spans_delivered: int) -> bool:
        """Record delivery up to ``to`` and renew the lease; False if the lease was lost
        (another process took over: its fence is newer)."""
        c = export_cursors.c
        with self.store.writing() as conn:
            now = self._now(conn)
            done = conn.execute(export_cursors.update().where(
                c.exporter == self.exporter, c.lease_owner == self.owner,
                c.fence == self._fence,
            ).values(last_tx=to[0], last_event_id=to[1], updated_at=now,
                     lease_until=now + self.lease_s,
                     delivered_events=c.delivered_events + events_delivered,
                     delivered_spans=c.delivered_spans + spans_delivered))
            return bool(done.rowcount)

    def release(self) -> None:
        """Give the lease up (graceful stop), so the next start takes over at once."""
        c = export_cursors.c
        with self.store.writing() as conn:
            conn.execute(export_cursors.update().where(
                c.exporter == self.exporter, c.lease_owner == self.owner,
                c.fence == self._fence,
            ).values(lease_until=0.0))

    # ------------------------------------------------------------ reading

    def window(self, after: Position, limit: int) -> list[StoredEvent]:
        """Up to ``limit`` events after ``after``, in order; on PostgreSQL only those written
        by transactions that have all finished (below the snapshot's xmin)."""
        e = events.c
        if self.postgres:
            condition = sa.and_(sa.tuple_(e.tx, e.id) > sa.tuple_(*after), e.tx < _XMIN)
            order: tuple[Any, ...] = (e.tx, e.id)
        else:
            condition, order = e.id > after[1], (e.id,)
        stmt = (sa.select(*_EVENT_COLUMNS).join_from(events, sessions, e.session_seq ==
                                                      sessions.c.seq)
                .where(condition).order_by(*order).limit(max(1, limit)))
        with self.store.reading() as conn:
            return _events(conn, conn.execute(stmt))

    def held_back(self, after: Position) -> bool:
        """Whether committed events after ``after`` wait behind a transaction still open
        somewhere on the server (PostgreSQL: their ``tx`` is not below the xmin yet); they
        become readable when it ends. Never on SQLite."""
        if not self.postgres:
            return False
        e = events.c
        stmt = (sa.select(e.id).join_from(events, sessions, e.session_seq == sessions.c.seq)
                .where(sa.tuple_(e.tx, e.id) > sa.tuple_(*after)).limit(1))  # as window()
        with self.store.reading() as conn:
            return conn.execute(stmt).first() is not None

    def neighbours(self, session_seq: int, low: int, high: int) -> list[StoredEvent]:
        """The session's events with ids in ``[low, high]``."""
        e = events.c
        stmt = (sa.select(*_EVENT_COLUMNS).join_from(events, sessions, e.session_seq ==
                                                      sessions.c.seq)
                .where(e.session_seq == session_seq, e.id >= low, e.id <= high)
                .order_by(e.id))
        with self.store.reading() as conn:
            return _events(conn, conn.execute(stmt))

    def model_calls(self, session_seq: int, upto: int) -> list[StoredEvent]:
        """The session's ``llm_call`` events with ids up to ``upto``, oldest first (to rebuild
        a model call's input from the deltas the records keep)."""
        e = events.c
        stmt = (sa.select(*_EVENT_COLUMNS).join_from(events, sessions, e.session_seq ==
                                                      sessions.c.seq)
                .where(e.session_seq == session_seq, e.id <= upto, e.kind == "llm_call")
                .order_by(e.id))
        with self.store.reading() as conn:
            return _events(conn, conn.execute(stmt))

    def turn_events(self, message: StoredEvent) -> list[StoredEvent]:
        """The events of the turn a ``message`` event ends: its session's events recorded
        before it, since the turn started, that carry its turn number."""
        e = events.c
        turn = message.data.get("turn")
        stmt = (sa.select(*_EVENT_COLUMNS).join_from(events, sessions, e.session_seq ==
                                                      sessions.c.seq)
                .where(e.session_seq == message.session.seq, e.id < message.id,
                       e.ts >= message.ts - 2.0, e.kind != "message")
                .order_by(e.id))
        with self.store.reading() as conn:
            found = [event for event in _events(conn, conn.execute(stmt))
                     if event.data.get("turn") == turn]
        return found

    def loose_events(self, session_seq: int, upto: int) -> bool:
        """Whether the session has events before ``upto`` that belong to no turn (tracked by
        hand, custom events, alerts): they hang under a session-wide root span."""
        e = events.c
        loose = sa.or_(e.kind.in_(("custom", "alert")), sa.and_(
            e.kind.in_(("llm_call", "tool_call", "error")), e.data.not_like('%"turn":%')))
        stmt = sa.select(e.id).where(e.session_seq == session_seq, e.id < upto,
                                     loose).limit(1)
        with self.store.reading() as conn:
            return conn.execute(stmt).first() is not None

    def unfinished_turns(self, session_seq: int, upto: int) -> list[StoredEvent]:
        """Turn events after the session's last ``message`` (a crash cut the turn off)."""
        e = events.c
        last = sa.select(sa.func.coalesce(sa.func.max(e.id), 0)).where(
            e.session_seq == session_seq, e.kind == "message", e.id < upto).scalar_subquery()
        stmt = (sa.select(*_EVENT_COLUMNS).join_from(events, sessions, e.session_seq ==
                                                      sessions.c.seq)
                .where(e.session_seq == session_seq, e.id > last, e.id < upto,
                       e.kind.in_(("llm_call", "tool_call", "error")))
                .order_by(e.id))
        with self.store.reading() as conn:
            return [event for event in _events(conn, conn.execute(stmt))
                    if isinstance(event.data.get("turn"), int)]

    def extent(self, session_seq: int) -> SessionExtent:
        """First start, last end and the first ``session_end`` id of a session's events."""
        e = events.c
        end = e.ts + sa.func.coalesce(e.duration_ms, 0.0) / 1000.0
        first_end = sa.func.min(sa.case((e.kind == "session_end", e.id)))
        stmt = sa.select(sa.func.min(e.ts), sa.func.max(end), first_end).where(
            e.session_seq == session_seq)
        with self.store.reading() as conn:
            first, last, end_id = conn.execute(stmt).one()
        return SessionExtent(float(first or 0.0), float(last or 0.0),
                             None if end_id is None else int(end_id))

    def backlog(self, after: Position) -> tuple[int, float | None]:
        """(events pending, time of the oldest pending event) after ``after``.

        The count is the id distance: exact on SQLite, an estimate where ids have gaps or
        commit out of order (PostgreSQL).
        """
        e = events.c
        with self.store.reading() as conn:
            newest = conn.execute(sa.select(sa.func.max(e.id))).scalar()
            oldest = conn.execute(sa.select(e.ts).where(e.id > after[1])
                                  .order_by(e.id).limit(1)).scalar()
        pending = max(0, int(newest or 0) - after[1])
        return pending, (None if oldest is None or not pending else float(oldest))


_XMIN: sa.ColumnElement[int] = sa.literal_column(
    "pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
"""The oldest transaction still running when the reading statement started."""


def cursor_rows(store: Store) -> list[dict[str, Any]]:
    """Every exporter's persisted cursor with its backlog (for ``doctor`` and other processes)."""
    c = export_cursors.c
    with store.reading() as conn:
        rows = conn.execute(sa.select(export_cursors).order_by(c.exporter)).mappings().all()
        newest = int(conn.execute(sa.select(sa.func.max(events.c.id))).scalar() or 0)
    return [{"exporter": row["exporter"], "last_event_id": int(row["last_event_id"]),
             "pending_events": max(0, newest - int(row["last_event_id"])),
             "delivered_events": int(row["delivered_events"]),
             "delivered_spans": int(row["delivered_spans"]), "updated_at": row["updated_at"],
             "lease_owner": row["lease_owner"]} for row in rows]


_EVENT_COLUMNS = (
    events.c.id, events.c.tx, events.c.ts, events.c.kind, events.c.name, events.c.duration_ms,
    events.c.success, events.c.data, sessions.c.seq, sessions.c.id.label("session_id"),
    sessions.c.bot, sessions.c.bot_type, sessions.c.platform, sessions.c.user_id,
    sessions.c.user_name, sessions.c.channel, sessions.c.tags, sessions.c.started_at,
)

def _events(conn: Connection, rows: Iterable[Any]) -> list[StoredEvent]:
    """Stored events with the large texts their data refers to put back."""
    found = [_event(row) for row in rows]
    expand(conn, [event.data for event in found])
    return found


def _event(row: Any) -> StoredEvent:
    session = SessionRow(
        id=row.session_id, seq=int(row.seq), bot=row.bot or "", bot_type=row.bot_type or "",
        platform=row.platform or "", user_id=row.user_id or "", user_name=row.user_name or "",
        channel=row.channel or "", tags=_tags(row.tags), started_at=float(row.started_at))
    return StoredEvent(id=int(row.id), session=session, ts=float(row.ts), kind=row.kind,
                       name=row.name or "", duration_ms=row.duration_ms,
                       success=None if row.success is None else bool(row.success),
                       data=_data(row.data), tx=int(row.tx or 0))


def _tags(text: str | None) -> tuple[str, ...]:
    try:
        value = json.loads(text or "[]")
    except ValueError:
        return ()
    return tuple(str(tag) for tag in value) if isinstance(value, list) else ()


def _data(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {"data": value}


def _starting_point(conn: Connection, postgres: bool) -> Position:
    """Where a new exporter starts: before the first event of any open session, else at the
    newest event (it exports what happens from now on, not the history). On PostgreSQL,
    "newest" is every transaction still running or newer, so none is skipped."""
    e, s = events.c, sessions.c
    if postgres:
        xmin = int(conn.execute(sa.select(_XMIN)).scalar_one())
        first = conn.execute(sa.select(e.tx, e.id).join_from(
            events, sessions, e.session_seq == s.seq).where(s.status == "open")
            .order_by(e.tx, e.id).limit(1)).first()
        if first is None or xmin <= first.tx:  # (xmin, 0): every transaction from xmin on
            return xmin, 0
        return int(first.tx), int(first.id) - 1
    open_first = conn.execute(sa.select(sa.func.min(e.id)).join_from(
        events, sessions, e.session_seq == s.seq).where(s.status == "open")).scalar()
    if open_first is not None:
        return 0, int(open_first) - 1
    return 0, int(conn.execute(sa.select(sa.func.max(e.id))).scalar() or 0)
