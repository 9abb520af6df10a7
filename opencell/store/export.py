"""Export: sessions with their timelines as JSON Lines (``opencell export``, :func:`export_jsonl`).

One line per session, oldest session first::

    {"schema": "opencell.session/1",
     "session": {...},      # what `opencell session ID --json` shows, without the timeline
     "timeline": [{...}]}   # the session's events, exactly as the timeline shows them

``session`` holds ``id, bot, bot_type, platform, workspace, user_id, user_name, channel,
thread, status, end_reason, started_at, ended_at, last_activity`` (ISO 8601 UTC),
``duration_ms``, the totals (``messages, failed_turns, llm_calls, tool_calls, errors,
input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_usd,
unpriced_calls``),
``tags``, ``metadata``, ``last_turn_failed``, ``conversation_key`` and ``owner``. Each
timeline event is ``{id, ts, kind, name, duration_ms, success, …}`` with the kind's own
fields (``records.py``); a custom event's data sits under ``data``. Events whose content
expired or was erased carry ``content_expired`` / ``erased``.

Streaming: sessions are read a page at a time by key, their events through a streaming
cursor in chunks, and each line is written as it is built — a session's events are never
all in memory at once, so memory stays flat however much is exported. The caller's
``redactor`` (the configured one) is applied again to everything written: an event's stored
JSON is redacted as text and, if that changes anything, re-encoded with value-level
redaction (see :func:`_event_json`).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter
from typing import IO, Any, Protocol

import sqlalchemy as sa
from sqlalchemy import Connection

from opencell.store.reads import EVENT_COLUMNS, SESSION_COLUMNS, event_dicts, session_dict
from opencell.store.scrub import TEXT_REF
from opencell.store.store import Store
from opencell.store.tables import events, sessions

SCHEMA = "opencell.session/1"
PAGE = 200
"""Sessions per page."""
CHUNK = 2000
"""Events per fetch from the streaming cursor."""



class Redactor(Protocol):
    """What the export needs of ``observability.redact.Redactor``."""

    json_safe: bool

    def redact(self, text: str) -> str: ...

    def redact_value(self, value: Any) -> Any: ...


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
            lines.page(page)
            for part in _event_parts(conn, page):
                texts = [(row[0], _event_json(conn, row, redactor)) for row in part]
                for seq, group in groupby(texts, key=itemgetter(0)):
                    lines.events(seq, [text for _, text in group])
            lines.finish_page()
    return lines.stats


class _Lines:
    """Writes sessions' lines as their events arrive in (session, time) order: a line is
    opened at the session's first event (or when a later session's events come) and closed
    when the next one opens."""

    def __init__(self, out: IO[str], redactor: Redactor | None,
                 progress: Callable[[int, int], None] | None) -> None:
        self.out, self.redactor, self.progress = out, redactor, progress
        self.stats = ExportStats()
        self._pending: list[dict[str, Any]] = []
        self._open: int | None = None
        self._written = 0

    def page(self, page: list[dict[str, Any]]) -> None:
        self._pending = list(reversed(page))

    def events(self, seq: int, texts: list[str]) -> None:
        while self._open != seq:
            self._close()
            self._start(self._pending.pop())
        self.out.write(("," if self._written else "") + ",".join(texts))
        self._written += len(texts)

    def finish_page(self) -> None:
        self._close()
        while self._pending:
            self._start(self._pending.pop())
            self._close()

    def _start(self, row: dict[str, Any]) -> None:
        session = session_dict({k: v for k, v in row.items() if k != "seq"})
        if self.redactor is not None:
            session = self.redactor.redact_value(session)
        self.out.write(_dumps({"schema": SCHEMA, "session": session})[:-1] + ',"timeline":[')
        self._open, self._written = int(row["seq"]), 0

    def _close(self) -> None:
        if self._open is None:
            return
        self.out.write("]}\n")
        self.stats.sessions += 1
        self.stats.events += self._written
        self._open = None
        if self.progress is not None:
            self.progress(self.stats.sessions, self.stats.events)


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


def _event_parts(conn: Connection, page: list[dict[str, Any]]) -> Iterator[Sequence[Any]]:
    """The page's events in (session, time, id) order, a streamed chunk at a time, as
    ``(session_seq, *EVENT_COLUMNS)`` tuples. SQLite: straight from the driver's cursor
    (it streams by itself; SQLAlchemy's rows were a seventh of an export); PostgreSQL: a
    server-side cursor."""
    seqs = [int(row["seq"]) for row in page]
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


_FIELDS = tuple(column.name for column in EVENT_COLUMNS)


_CLASH = re.compile(r'"(?:id|ts|kind|name|duration_ms|success)":')
"""A data key that would collide with an event field (``event_dict`` moves it)."""
_CREDENTIAL_HINT = re.compile(r'(?i)(?:key|token|secret|passw|passphrase|authorization|cookie)'
                              r'":"')
"""A key the redactor treats as a credential wherever its value is (value-level rule)."""


def _event_json(conn: Connection, row: Any, redactor: Redactor | None) -> str:
    """One timeline event as JSON: what ``event_dict`` gives, re-encoded.

    The common event is spliced from its stored JSON without decoding it: the event's fields,
    then the stored data's keys (under ``data`` for a custom event). Events that need more —
    a shared text to put back, a key to move, or anything the redactor would change in the
    text — go through ``event_dicts`` and value-level redaction.
    """
    _seq, event_id, ts, kind, name, duration, success, data = row  # EVENT_COLUMNS' order
    data = data or "{}"
    if data[:1] == "{" and TEXT_REF not in data and (kind == "custom"
                                                      or _CLASH.search(data) is None):
        head = (f'{{"id":{int(event_id)},"ts":"{_iso(ts)}","kind":{_string(kind)},'
                f'"name":{_string(name)},"duration_ms":'
                f'{"null" if duration is None else float.__repr__(float(duration))},'
                f'"success":{"null" if success is None else "true" if success else "false"}')
        if kind == "custom":
            text = head + ',"data":' + data + "}"
        else:
            body = data[1:-1]
            text = head + ("," + body if body else "") + "}"
        if redactor is None:
            return text
        if redactor.json_safe and _CREDENTIAL_HINT.search(text) is None:
            redacted = redactor.redact(text)
            if redacted is text or redacted == text:
                return text
    [event] = event_dicts(conn, [dict(zip(_FIELDS, row[1:], strict=True))])
    return _dumps(redactor.redact_value(event) if redactor is not None else event)


def _iso(ts: float) -> str:
    """``reads.iso`` without a datetime per call: the same rounding (to the microsecond,
    half to even, as ``datetime.fromtimestamp``), then milliseconds cut, as ``isoformat``."""
    frac, whole = math.modf(ts)
    micros = round(frac * 1e6)
    if micros >= 1_000_000:
        whole, micros = whole + 1, micros - 1_000_000
    elif micros < 0:
        whole, micros = whole - 1, micros + 1_000_000
    second = int(whole)
    cached, text = _last_second[0]
    if second != cached:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _last_second[0] = (second, text)  # one tuple: threads never see half an update
    return f"{text}.{micros // 1000:03d}Z"


_last_second: list[tuple[int | None, str]] = [(None, "")]
_string = json.encoder.encode_basestring
"""A JSON string as ``json.dumps(..., ensure_ascii=False)`` writes it."""


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
