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
cursor in chunks, and each line is written as it is built — a session's events are never
all in memory at once, so memory stays flat however much is exported. The caller's
``redact`` (the configured redactor) is applied to every line.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy import Connection

from opencell.store.reads import EVENT_COLUMNS, SESSION_COLUMNS, event_dicts, session_dict
from opencell.store.store import Store
from opencell.store.tables import events, sessions

SCHEMA = "opencell.session/1"
PAGE = 200
"""Sessions per page."""
CHUNK = 2000
"""Events per fetch from the streaming cursor."""

Redact = Callable[[Any], Any]


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


def export_jsonl(store: Store, out: IO[str], selection: Selection = Selection(), *,
                 redact: Redact | None = None,
                 progress: Callable[[int, int], None] | None = None) -> ExportStats:
    """Write the selected sessions to ``out`` as JSON Lines; ``progress(sessions, events)``
    is called after each session."""
    stats = ExportStats()
    for page in _pages(store, selection):
        with store.reading() as conn:
            for session, timeline in _timelines(conn, page):
                written = _write(out, session, timeline, redact)
                stats.sessions += 1
                stats.events += written
                if progress is not None:
                    progress(stats.sessions, stats.events)
    return stats


def _pages(store: Store, selection: Selection) -> Iterator[list[dict[str, Any]]]:
    s = sessions.c
    after = 0
    while True:
        stmt = (sa.select(s.seq, *SESSION_COLUMNS).where(s.seq > after,
                                                         *selection.conditions())
                .order_by(s.seq).limit(PAGE))
        with store.reading() as conn:
            rows = [dict(row) for row in conn.execute(stmt).mappings()]
        if not rows:
            return
        yield rows
        after = int(rows[-1]["seq"])


def _timelines(conn: Connection, page: list[dict[str, Any]]
               ) -> Iterator[tuple[dict[str, Any], Iterator[dict[str, Any]]]]:
    """Each session of the page with an iterator over its events (consumed in order)."""
    e = events.c
    by_seq = {int(row["seq"]): row for row in page}
    stmt = (sa.select(e.session_seq, *EVENT_COLUMNS).where(e.session_seq.in_(list(by_seq)))
            .order_by(e.session_seq, e.ts, e.id))
    result = conn.execution_options(yield_per=CHUNK).execute(stmt).mappings()

    def stream() -> Iterator[tuple[int, dict[str, Any]]]:
        for part in result.partitions():
            for seq, event in zip([r["session_seq"] for r in part], event_dicts(conn, part),
                                  strict=True):
                yield int(seq), event

    grouped = _Grouped(stream())
    for seq, row in by_seq.items():
        session = session_dict({k: v for k, v in row.items() if k != "seq"})
        yield session, grouped.take(seq)
        for _ in grouped.take(seq):  # a caller that stopped early: skip the rest
            pass


class _Grouped:
    """One ordered stream of (session seq, event), handed out a session at a time."""

    def __init__(self, stream: Iterator[tuple[int, dict[str, Any]]]) -> None:
        self._stream = stream
        self._head = next(stream, None)

    def take(self, seq: int) -> Iterator[dict[str, Any]]:
        while self._head is not None and self._head[0] == seq:
            yield self._head[1]
            self._head = next(self._stream, None)


def _write(out: IO[str], session: dict[str, Any], timeline: Iterator[dict[str, Any]],
           redact: Redact | None) -> int:
    head = {"schema": SCHEMA, "session": redact(session) if redact else session}
    out.write(_dumps(head)[:-1] + ',"timeline":[')
    written = 0
    for event in timeline:
        if written:
            out.write(",")
        out.write(_dumps(redact(event) if redact else event))
        written += 1
    out.write("]}\n")
    return written


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
