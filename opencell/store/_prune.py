"""The pruner's SQL steps, each one bounded batch inside the caller's write transaction.

Events are found by id, never by a scan of ``ts``: ids grow with time, so the last id
stamped before a cutoff is found by a binary search over the primary key (about thirty
indexed probes), and a batch is a primary-key range. Events stamped out of order (an
interrupted session's ``session_end`` carries its last activity) are caught by a later run,
once the boundary has moved past them.

The exporters hold what they have not delivered: an event above the lowest exporter cursor
is kept past its window, for at most ``grace_s`` more (see ``retention.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from opencell.store._prune_terms import message_words
from opencell.store.dialect import Dialect
from opencell.store.scrub import dumps, loads, strip_content
from opencell.store.tables import events, export_cursors, retention_state

_e = events.c


@dataclass(frozen=True, slots=True)
class Window:
    """Which events one step may touch: stamped before ``cutoff`` and either delivered by
    every exporter (id at most ``hold_id``) or older than ``cutoff - grace_s``."""

    cutoff: float
    hold_id: int | None
    grace_s: float
    upper: int
    """The highest id the step looks at."""

    def condition(self) -> sa.ColumnElement[bool]:
        cond = _e.ts < self.cutoff
        if self.hold_id is not None:
            cond = sa.and_(cond, sa.or_(_e.id <= self.hold_id,
                                        _e.ts < self.cutoff - self.grace_s))
        return cond

    def allows(self, event_id: int, ts: float) -> bool:
        if ts >= self.cutoff:
            return False
        return self.hold_id is None or event_id <= self.hold_id \
            or ts < self.cutoff - self.grace_s


def cursors(conn: Connection) -> dict[str, int]:
    """Every exporter's hold: the highest event id below which it has delivered everything.

    The outbox's cursor is a (transaction, id) position (``exporters/outbox.py``): on
    PostgreSQL an event whose transaction committed late can have a lower id than events
    already delivered and still be pending. The hold then stops just below the lowest id
    written by a transaction after the cursor's, so such an event is never pruned unsent.
    On SQLite every event's transaction is 0 and the hold is the cursor's id.
    """
    c = export_cursors.c
    holds: dict[str, int] = {}
    for row in conn.execute(sa.select(c.exporter, c.last_event_id, c.last_tx)):
        hold = int(row.last_event_id)
        later = conn.execute(sa.select(sa.func.min(_e.id))
                             .where(_e.tx > int(row.last_tx or 0))).scalar()
        if later is not None:
            hold = min(hold, int(later) - 1)
        holds[row.exporter] = hold
    return holds


def id_span(conn: Connection) -> tuple[int, int]:
    """(lowest, highest) event id; (0, 0) when there are none."""
    low, high = conn.execute(sa.select(sa.func.min(_e.id), sa.func.max(_e.id))).one()
    return int(low or 0), int(high or 0)


def boundary(conn: Connection, cutoff: float, low: int, high: int) -> int:
    """The id just before the first event (in id order) stamped at or after ``cutoff``,
    searching ``[low, high]``; ``high`` when every event there is older."""
    lo, hi = low, high + 1
    while lo < hi:
        mid = (lo + hi) // 2
        row = conn.execute(sa.select(_e.id, _e.ts).where(_e.id >= mid)
                           .order_by(_e.id).limit(1)).first()
        if row is None or row.ts >= cutoff:
            hi = mid
        else:
            lo = int(row.id) + 1
    return lo - 1


def window(conn: Connection, cutoff: float, grace_s: float, holds: dict[str, int],
           span: tuple[int, int], *, keep_newest: bool) -> Window:
    """The window of one step, its upper id found by :func:`boundary`. With
    ``keep_newest`` (deleting) the newest event is never in it: SQLite hands out
    max(id) + 1, so deleting it would reuse ids below the exporters' cursors."""
    low, high = span
    hold = min(holds.values()) if holds else None
    if high == 0:
        return Window(cutoff, hold, grace_s, 0)
    upper = boundary(conn, cutoff, low, high)
    if hold is not None and upper > hold:
        upper = max(hold, boundary(conn, cutoff - grace_s, low, high))
    return Window(cutoff, hold, grace_s, min(upper, high - 1) if keep_newest else upper)


def expire_content(conn: Connection, win: Window, after: int, limit: int,
                   words: dict[int, set[str]]) -> tuple[int, int, bool]:
    """Strip the content of up to ``limit`` events above ``after``; the search terms of the
    stripped messages are added to ``words`` (session seq → terms, see ``_prune_terms``).

    Returns (the new ``content_through`` mark, events changed, whether the step is done).
    The mark stops before the first event the window does not allow (a held or out-of-order
    one), so no event is ever skipped."""
    rows = conn.execute(sa.select(_e.id, _e.ts, _e.kind, _e.data, _e.session_seq)
                        .where(_e.id > after, _e.id <= win.upper)
                        .order_by(_e.id).limit(limit)).all()
    changes: list[tuple[str, int]] = []
    messages: list[tuple[int, Any]] = []
    mark = after
    stopped = False
    for row in rows:
        if not win.allows(int(row.id), float(row.ts)):
            stopped = True
            break
        data = loads(row.data)
        stripped = strip_content(row.kind, data)
        if stripped is not None:
            changes.append((dumps(stripped), int(row.id)))
            if row.kind == "message":
                messages.append((int(row.session_seq), data))
        mark = int(row.id)
    if changes:
        param = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        conn.exec_driver_sql(f"UPDATE events SET data = {param} WHERE id = {param}", changes)
    _add_words(conn, messages, words)
    return mark, len(changes), stopped or len(rows) < limit


def delete_events(conn: Connection, win: Window, after: int, limit: int,
                  words: dict[int, set[str]]) -> tuple[list[int], bool]:
    """Delete up to ``limit`` events of the window above ``after``, as one id range; the
    search terms of the deleted messages (none, for one already stripped) are added to ``words``.
    Returns (their ids, whether the step is done)."""
    found = conn.execute(
        sa.select(_e.id, _e.session_seq, sa.case((_e.kind == "message", _e.data), else_=None))
        .where(_e.id > after, _e.id <= win.upper, win.condition())
        .order_by(_e.id).limit(limit)).all()
    ids = [int(row[0]) for row in found]
    if ids:
        conn.execute(events.delete().where(_e.id >= ids[0], _e.id <= ids[-1],
                                           win.condition()))
    _add_words(conn, [(int(seq), loads(data)) for _, seq, data in found if data is not None],
               words)
    return ids, len(ids) < limit


def _add_words(conn: Connection, messages: list[tuple[int, Any]],
               words: dict[int, set[str]]) -> None:
    if messages:
        for (seq, _), terms in zip(messages, message_words(conn, [d for _, d in messages]),
                                   strict=True):
            if terms:
                words.setdefault(seq, set()).update(terms)


def read_state(conn: Connection) -> dict[str, float]:
    r = retention_state.c
    return {row.key: float(row.value) for row in conn.execute(sa.select(r.key, r.value))}


def write_state(conn: Connection, dialect: Dialect, values: dict[str, float], *,
                add: bool = False) -> None:
    """Set (or, with ``add``, add to) the pruner's state values."""
    if not values:
        return
    stmt = dialect.upsert(retention_state, ("key",), lambda new: {
        "value": retention_state.c.value + new.value if add else new.value})
    conn.execute(stmt, [{"key": key, "value": value} for key, value in values.items()])
