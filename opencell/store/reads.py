"""The store's read side: session listing with keyset cursors, rows turned into JSON-ready dicts.

Listing never uses OFFSET: a page ends with an opaque cursor holding the last row's sort value
and id, and the next page starts strictly after that pair, so pages neither repeat nor skip
rows while sessions keep arriving.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy import Connection

from opencell.calendar import PERIODS, period_bounds, utc_date
from opencell.errors import StoreError
from opencell.store.dialect import Dialect
from opencell.store.feedback import feedback_filter, session_score
from opencell.store.search import WordPlan, query_words, words_condition
from opencell.store.tables import DURATION_SORT, cost_rollups, events, sessions
from opencell.store.texts import expand

SessionSort = Literal["started_at", "duration", "cost", "feedback"]

SORT_KEYS: dict[str, sa.ColumnElement[Any]] = {
    "started_at": sessions.c.started_at,
    "duration": DURATION_SORT,
    "cost": sessions.c.cost_usd,
    "feedback": session_score(),
}

COST_KEYS: dict[str, sa.Column[Any]] = {
    "bot": cost_rollups.c.bot, "user": cost_rollups.c.user_id,
    "platform": cost_rollups.c.platform, "provider": cost_rollups.c.provider,
    "model": cost_rollups.c.model,
}

_s = sessions.c
SESSION_COLUMNS = (
    _s.id, _s.bot, _s.bot_type, _s.platform, _s.workspace, _s.user_id, _s.user_name,
    _s.channel, _s.thread, _s.status, _s.end_reason, _s.started_at, _s.ended_at,
    _s.duration_ms, _s.messages, _s.failed_turns, _s.llm_calls, _s.tool_calls, _s.errors,
    _s.input_tokens, _s.output_tokens, _s.cache_read_tokens, _s.cache_write_tokens, _s.cost_usd,
    _s.unpriced_calls, _s.tags, _s.metadata, _s.last_activity, _s.last_turn_failed,
    _s.bot_version, _s.replay_of,
    _s.conversation_key, _s.owner,
)
EVENT_COLUMNS = (events.c.id, events.c.ts, events.c.kind, events.c.name, events.c.duration_ms,
                 events.c.success, events.c.data)
_EVENT_FIELDS = frozenset(("id", "ts", "kind", "name", "duration_ms", "success"))
TOTAL_COLUMNS = ("calls", "input_tokens", "output_tokens", "cache_read_tokens",
                 "cache_write_tokens", "cost_usd", "unpriced_calls", "estimated_calls")


def iso(ts: float | None) -> str | None:
    """Epoch seconds as ISO 8601 UTC with milliseconds (``2025-01-31T12:00:00.000Z``)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def _json(text: str | None, default: Any) -> Any:
    try:
        return json.loads(text) if text else default
    except ValueError:
        return default


def session_dict(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A session row as a JSON-ready dict (ISO timestamps, tags as a list)."""
    out = dict(row)
    for key in ("started_at", "ended_at", "last_activity"):
        out[key] = iso(out[key])
    tags = _json(out["tags"], [])
    out["tags"] = tags if isinstance(tags, list) else []
    out["metadata"] = _json(out["metadata"], {})
    out["last_turn_failed"] = bool(out["last_turn_failed"])
    return out


def event_dicts(conn: Connection, rows: Iterable[Mapping[Any, Any]]) -> list[dict[str, Any]]:
    """:func:`event_dict` for each row, with the large texts they refer to put back."""
    out = [event_dict(row) for row in rows]
    expand(conn, out)  # a custom event's own data sits one level down, under "data"
    expand(conn, [event["data"] for event in out
                  if event["kind"] == "custom" and type(event.get("data")) is dict])
    return out


def event_dict(row: Mapping[Any, Any]) -> dict[str, Any]:
    """An event as ``{id, ts, kind, name, duration_ms, success, **data}``.

    A ``custom`` event's data is the user's own mapping: it stays whole under ``data`` so its
    keys can never shadow the event's fields. For other kinds a data key that collides with an
    event field is kept under ``data`` too.
    """
    data = _json(row["data"], {})
    success = row["success"]
    out: dict[str, Any] = {
        "id": row["id"], "ts": iso(row["ts"]), "kind": row["kind"], "name": row["name"],
        "duration_ms": row["duration_ms"], "success": None if success is None else bool(success),
    }
    if row["kind"] == "custom" or not isinstance(data, dict):
        out["data"] = data
        return out
    clashes = {}
    for key, value in data.items():
        if key in _EVENT_FIELDS:
            clashes[key] = value
        else:
            out[key] = value
    if clashes:
        out["data"] = clashes
    return out


def encode_cursor(sort: str, descending: bool, value: float, session_id: str) -> str:
    """An opaque cursor: where the next page of this listing starts."""
    raw = json.dumps([sort, "d" if descending else "a", value, session_id],
                     separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str, sort: str, descending: bool) -> tuple[float, str]:
    """The (sort value, session id) a cursor holds; ``StoreError`` for a foreign cursor."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        c_sort, c_dir, value, session_id = json.loads(raw)
    except (ValueError, TypeError, binascii.Error):
        raise StoreError("the cursor is not one this store handed out; "
                         "start again without a cursor") from None
    if c_sort != sort or c_dir != ("d" if descending else "a"):
        raise StoreError(f"the cursor belongs to a listing sorted by {c_sort}; "
                         "use the same sort and direction, or start without a cursor")
    if not isinstance(value, int | float) or not isinstance(session_id, str):
        raise StoreError("the cursor is damaged; start again without a cursor")
    return float(value), session_id


def session_conditions(dialect: Dialect, *, bot: str | None = None, user: str | None = None,
                       platform: str | None = None, status: str | None = None,
                       tag: str | None = None, since: float | None = None,
                       until: float | None = None, q: str | None = None,
                       plans: list[WordPlan] | None = None, feedback: str | None = None,
                       ) -> list[sa.ColumnElement[bool]]:
    """The WHERE terms of a session listing (shared by a page and its total count).

    ``q`` matches a session id prefix, a user id or name exactly, or — through the word
    index — sessions where every word of ``q`` starts a word said in them, a word of the
    user's id or name, or the short id shown in lists. ``plans``: how to match each word
    (``search.plan_words``; without, every word's matches are fetched and intersected).
    ``feedback``: good, bad, rated or unrated (``store/feedback.py``).
    """
    conditions: list[sa.ColumnElement[bool]] = []
    for column, wanted in ((_s.bot, bot), (_s.platform, platform), (_s.status, status)):
        if wanted is not None:
            conditions.append(column == wanted)
    if user is not None:
        conditions.append(sa.or_(_s.user_id == user, _s.user_name == user))
    if tag is not None:
        conditions.append(dialect.tag_filter(_s.tags, tag))
    if since is not None:
        conditions.append(_s.started_at >= since)
    if until is not None:
        conditions.append(_s.started_at < until)
    if q is not None and q.strip():
        needle = q.strip()
        either = [dialect.prefix_match(_s.id, needle.lower()), _s.user_id == needle,
                  _s.user_name == needle]
        words = query_words(needle)
        if words:
            either.append(words_condition(dialect, _s.seq, plans or [
                ("rare", word, []) for word in words]))
        conditions.append(sa.or_(*either))
    if feedback is not None:
        conditions.append(feedback_filter(feedback))
    return conditions


def list_query(dialect: Dialect, *, sort: str, descending: bool, limit: int,
               cursor: str | None, **filters: Any) -> sa.Select[Any]:
    """The SELECT for one page of sessions (``limit + 1`` rows: the extra one says "more")."""
    key = SORT_KEYS.get(sort)
    if key is None:
        raise StoreError(f"cannot sort sessions by '{sort}'; use one of {', '.join(SORT_KEYS)}")
    conditions = session_conditions(dialect, **filters)
    if cursor is not None:
        value, last_id = decode_cursor(cursor, sort, descending)
        conditions.append(_after(key, value, last_id, descending))
    order = (key.desc(), _s.id.desc()) if descending else (key.asc(), _s.id.asc())
    return dialect.limit(sa.select(*SESSION_COLUMNS, key.label("sort_value"))
                         .where(*conditions).order_by(*order), limit + 1)


COUNT_CAP = 10_000
"""Totals are exact up to this; above it a listing says "10,000+" (counting 60,000 matches
of a common word would cost more than the page itself)."""


COMMON_COUNT_CAP = 1_000
"""The cap when the search words are common (each match is tested one session at a time)."""


def count_cap(filters: Mapping[str, Any]) -> int:
    plans = filters.get("plans") or []
    return COUNT_CAP if all(how == "rare" for how, _, _ in plans) else COMMON_COUNT_CAP


def count_query(dialect: Dialect, **filters: Any) -> sa.Select[Any]:
    """How many sessions a listing holds over all its pages, up to ``count_cap + 1``."""
    capped = dialect.limit(sa.select(sa.literal(1)).select_from(sessions).where(
        *session_conditions(dialect, **filters)), count_cap(filters) + 1).subquery()
    return sa.select(sa.func.count()).select_from(capped)


def _after(key: sa.ColumnElement[Any], value: float, last_id: str,
           descending: bool) -> sa.ColumnElement[bool]:
    """Rows strictly after (value, last_id) in the listing's order.

    Spelled ``key <= v AND (key < v OR id < last)`` rather than as a row-value comparison:
    the first term is a plain range both SQLite and PostgreSQL seek with an index, also on
    the expression index that sorts by duration.
    """
    bound = sa.literal(value, sa.Float)
    if descending:
        return sa.and_(key <= bound, sa.or_(key < bound, _s.id < last_id))
    return sa.and_(key >= bound, sa.or_(key > bound, _s.id > last_id))


def period_days(period: str, now: float) -> tuple[str, str]:
    """First and last UTC day (``YYYY-MM-DD``) of the day, ISO week or month holding ``now``."""
    if period not in PERIODS:
        raise StoreError(f"unknown period '{period}'; use day, week or month")
    first, last = period_bounds(period, utc_date(now))
    return first.isoformat(), last.isoformat()


def costs_query(by: str, first_day: str, last_day: str) -> sa.Select[Any]:
    """Cost totals per ``by`` over the rollups of [first_day, last_day]."""
    key = COST_KEYS.get(by)
    if key is None:
        raise StoreError(f"cannot break costs down by '{by}'; use one of {', '.join(COST_KEYS)}")
    r = cost_rollups.c
    totals = [sa.func.sum(r[name]).label(name) for name in TOTAL_COLUMNS]
    return (sa.select(key.label("key"), *totals)
            .where(r.day >= first_day, r.day <= last_day)
            .group_by(key).order_by(sa.func.sum(r.cost_usd).desc(), key))


def cost_row(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A costs row as a dict; an unknown key (no user, no provider) is None."""
    out: dict[str, Any] = {"key": row["key"] or None}
    for name in TOTAL_COLUMNS:
        value = row[name]
        out[name] = float(value or 0.0) if name == "cost_usd" else int(value or 0)
    return out
