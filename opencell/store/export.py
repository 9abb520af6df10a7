"""Export: sessions with their timelines as JSON Lines (``opencell export``, :func:`export_jsonl`).

One line per session, oldest session first::

    {"schema": "opencell.session/1",
     "session": {...},      # what `opencell session ID --json` shows, without the timeline
     "timeline": [{...}]}   # the session's events, exactly as the timeline shows them

``session`` holds ``id, bot, bot_type, platform, workspace, user_id, user_name, channel,
thread, status, end_reason, started_at, ended_at, last_activity`` (ISO 8601 UTC),
``duration_ms``, the totals (``messages, llm_calls, tool_calls, errors, input_tokens,
output_tokens, cache_read_tokens, cache_write_tokens, cost_usd, unpriced_calls``),
``tags``, ``metadata``, ``last_turn_failed``, ``conversation_key`` and ``owner``. Each
timeline event is ``{id, ts, kind, name, duration_ms, success, …}`` with the kind's own
fields (``records.py``); a custom event's data sits under ``data``. Events whose content
expired or was erased carry ``content_expired`` / ``erased``.

Streaming: sessions are read a page at a time by key, their events through a streaming
cursor in chunks, and each session's line is written as it is built, in one write (a long
session's in one write per ``CHUNK`` events) — a session's events are never all in memory at
once, so memory stays flat however much is exported. The caller's ``redactor`` (the
configured one) is applied again to everything written: an event's stored JSON is redacted
as text and, if that changes anything, re-encoded with value-level redaction (see
``_export_json.py``, which also says how an event is encoded without being decoded).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy import Connection

from opencell.store._export_json import Redactor, dumps, event_texts, session
from opencell.store.reads import EVENT_COLUMNS, SESSION_COLUMNS
from opencell.store.store import Store
from opencell.store.tables import events, sessions

SCHEMA = "opencell.session/1"
PAGE = 200
"""Sessions per page."""
CHUNK = 2000
"""Events per fetch from the streaming cursor, and at most per write."""


@dataclass(frozen=True, slots=True)
class Selection:
    """Which sessions to export (all of them when every field is None)."""

    session_id: str | None = None
    user: str | None = None
    bot: str | None = None
    platform: str | None = None
    since: float | None = None
    until: float | None = None

    def conditions(self) -> list[sa.ColumnElement[bool]]:
        s = sessions.c
        out: list[sa.ColumnElement[bool]] = []
        if self.session_id is not None:
            out.append(s.id == self.session_id)
        if self.user is not None:
            out.append(sa.or_(s.user_id == self.user, s.user_name == self.user))
        if self.bot is not None:
            out.append(s.bot == self.bot)
        if self.platform is not None:
            out.append(s.platform == self.platform)
        if self.since is not None:
            out.append(s.started_at >= self.since)
        if self.until is not None:
            out.append(s.started_at < self.until)
        return out


@dataclass(slots=True)
class ExportStats:
    sessions: int = 0
    events: int = 0


def count(store: Store, selection: Selection) -> int:
    """How many sessions the selection holds (for a progress bar)."""
    with store.reading() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(sessions)
                                .where(*selection.conditions())).scalar() or 0)


def export_jsonl(store: Store, out: IO[str], selection: Selection | None = None, *,
                 redactor: Redactor | None = None,
                 progress: Callable[[int, int], None] | None = None) -> ExportStats:
    """Write the selected sessions to ``out`` as JSON Lines; ``progress(sessions, events)``
    is called after each session."""
    lines = _Lines(out, redactor, progress)
    for page in _pages(store, selection or Selection()):
        with store.reading() as conn:
            lines.page(conn, page)
    return lines.stats


class _Lines:
    """Writes a page of sessions as their events arrive in (session, time) order: a
    session's line goes out in one write once its last event has come (a long session's in
    one write per ``CHUNK`` events, so memory stays flat); a session without events gets an
    empty timeline in its place."""

    def __init__(self, out: IO[str], redactor: Redactor | None,
                 progress: Callable[[int, int], None] | None) -> None:
        self.out, self.redactor, self.progress = out, redactor, progress
        self.stats = ExportStats()
        self._head = ""
        """The open session's line up to its timeline, until its first write."""
        self._texts: list[str] = []
        self._written = 0

    def page(self, conn: Connection, page: list[Sequence[Any]]) -> None:
        waiting = iter(page)
        current = None
        for part in _event_parts(conn, [int(row[0]) for row in page]):
            texts = event_texts(conn, part, self.redactor)
            seqs = [row[0] for row in part]
            start, end = 0, len(seqs)
            while start < end:
                seq = seqs[start]
                stop = bisect_right(seqs, seq, start)  # the session's run in this chunk
                if seq != current:
                    if current is not None:
                        self._close()
                    for session in waiting:  # those before it have no events (pruned)
                        self._open(session)
                        if session[0] == seq:
                            break
                        self._close()
                    current = seq
                self._texts.extend(texts[start:stop])
                if len(self._texts) >= CHUNK:
                    self._flush()
                start = stop
        if current is not None:
            self._close()
        for session in waiting:
            self._open(session)
            self._close()

    def _open(self, row: Sequence[Any]) -> None:
        data = session(row)
        if self.redactor is not None:
            data = self.redactor.redact_value(data)
        self._head = dumps({"schema": SCHEMA, "session": data})[:-1] + ',"timeline":['
        self._texts, self._written = [], 0

    def _flush(self, end: str = "") -> None:
        texts = self._texts
        if texts or end:
            sep = "," if texts and self._written else ""
            self.out.write(self._head + sep + ",".join(texts) + end)
            self._head = ""
            self._written += len(texts)
            self._texts = []

    def _close(self) -> None:
        self._flush("]}\n")
        self.stats.sessions += 1
        self.stats.events += self._written
        if self.progress is not None:
            self.progress(self.stats.sessions, self.stats.events)


def _pages(store: Store, selection: Selection) -> Iterator[list[Sequence[Any]]]:
    """The selected sessions, ``(seq, *SESSION_COLUMNS)`` tuples, a page at a time by key."""
    s = sessions.c
    after = 0
    while True:
        stmt = (sa.select(s.seq, *SESSION_COLUMNS).where(s.seq > after,
                                                         *selection.conditions())
                .order_by(s.seq).limit(PAGE))
        with store.reading() as conn:
            rows: list[Sequence[Any]] = [tuple(row) for row in conn.execute(stmt)]
        if not rows:
            return
        yield rows
        after = int(rows[-1][0])


def _event_parts(conn: Connection, seqs: list[int]) -> Iterator[Sequence[Any]]:
    """The sessions' events in (session, time, id) order, a streamed chunk at a time, as
    ``(session_seq, *EVENT_COLUMNS)`` tuples. SQLite: straight from the driver's cursor
    (it streams by itself; SQLAlchemy's rows were a seventh of an export); PostgreSQL: a
    server-side cursor."""
    if conn.dialect.name == "sqlite":
        cursor = conn.connection.cursor()
        try:
            cursor.execute("SELECT session_seq, id, ts, kind, name, duration_ms, success, data "
                           f"FROM events WHERE session_seq IN ({','.join('?' * len(seqs))}) "
                           "ORDER BY session_seq, ts, id", seqs)
            while rows := cursor.fetchmany(CHUNK):
                yield rows
        finally:
            cursor.close()
        return
    e = events.c
    stmt = (sa.select(e.session_seq, *EVENT_COLUMNS).where(e.session_seq.in_(seqs))
            .order_by(e.session_seq, e.ts, e.id))
    yield from conn.execution_options(yield_per=CHUNK).execute(stmt).partitions()
