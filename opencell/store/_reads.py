"""The reads the CLI and the dashboard share: session lists, one session, its timeline, costs.

A mixin of :class:`~opencell.store.store.Store`, which provides ``reading()`` and the dialect.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from opencell.calendar import CostDimension, Period
from opencell.errors import AmbiguousSessionError
from opencell.store import reads as queries
from opencell.store.dialect import Dialect
from opencell.store.migrations import current_version
from opencell.store.search import plan_words, query_words
from opencell.store.tables import cost_rollups, events, quarantine, sessions


class SessionReads:
    """Sessions, timelines and costs, read through ``reading()``."""

    _dialect: Dialect

    def reading(self) -> AbstractContextManager[Connection]:
        raise NotImplementedError

    def list_sessions(
        self, *, bot: str | None = None, user: str | None = None, platform: str | None = None,
        status: str | None = None, tag: str | None = None, since: float | None = None,
        until: float | None = None, q: str | None = None,
        sort: queries.SessionSort = "started_at", descending: bool = True, limit: int = 50,
        cursor: str | None = None, feedback: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of sessions and the cursor of the next page (None on the last page).

        ``user`` matches the user id or name; ``q`` a session id prefix, user id or user name;
        ``since``/``until`` bound ``started_at`` (epoch seconds, until exclusive). Sorting by
        ``duration`` puts open sessions (no duration yet) last when descending. Keyset
        pagination: pass the returned cursor with the same filters and sort. ``feedback``
        keeps sessions by their ratings (``good``, ``bad``, ``rated``, ``unrated``); sorting
        by ``feedback`` orders by the net rating (👍 − 👎).
        """
        limit = max(1, min(int(limit), 1000))
        stmt = queries.list_query(self._dialect, bot=bot, user=user, platform=platform,
                                  status=status, tag=tag, since=since, until=until, q=q,
                                  sort=sort, descending=descending, limit=limit, cursor=cursor,
                                  feedback=feedback)
        with self.reading() as conn:
            rows = conn.execute(stmt).mappings().all()
        page = rows[:limit]
        next_cursor = None
        if len(rows) > limit:
            last = page[-1]
            next_cursor = queries.encode_cursor(sort, descending, float(last["sort_value"]),
                                                last["id"])
        return [queries.session_dict(_without_sort_value(row)) for row in page], next_cursor

    def session_page(
        self, *, sort: queries.SessionSort = "started_at", descending: bool = True,
        limit: int = 50, cursor: str | None = None, before: str | None = None,
        count: bool = True, **filters: Any,
    ) -> dict[str, Any]:
        """One page of sessions with both ways to page and the listing's total.

        ``{"sessions", "next_cursor", "prev_cursor", "total"}``: pass ``next_cursor`` as
        ``cursor`` for the page after, ``prev_cursor`` as ``before`` for the page before
        (None when there is none); ``total`` counts every page (None without ``count``),
        up to ``reads.count_cap`` (``total_capped`` then says there are more).
        Filters as for :meth:`list_sessions`.
        """
        limit = max(1, min(int(limit), 1000))
        backward = before is not None
        with self.reading() as conn:
            words = query_words(filters.get("q") or "")
            filters["plans"] = plan_words(conn, self._dialect, words) if words else None
            stmt = queries.list_query(self._dialect, sort=sort,
                                      descending=descending != backward, limit=limit,
                                      cursor=before if backward else cursor, **filters)
            rows = list(conn.execute(stmt).mappings().all())
            total = (conn.execute(queries.count_query(self._dialect, **filters)).scalar()
                     if count else None)
        more = len(rows) > limit
        page = rows[:limit]
        if backward:
            page.reverse()
        has_next = backward or more
        has_prev = more if backward else cursor is not None
        next_cursor = prev_cursor = None
        if page and has_next:
            next_cursor = queries.encode_cursor(sort, descending, float(page[-1]["sort_value"]),
                                                page[-1]["id"])
        if page and has_prev:
            prev_cursor = queries.encode_cursor(sort, not descending,
                                                float(page[0]["sort_value"]), page[0]["id"])
        cap = queries.count_cap(filters)
        capped = total is not None and int(total) > cap
        return {"sessions": [queries.session_dict(_without_sort_value(r)) for r in page],
                "next_cursor": next_cursor, "prev_cursor": prev_cursor,
                "total": None if total is None else min(int(total), cap),
                "total_capped": capped}

    def get_session(self, id_or_prefix: str) -> dict[str, Any] | None:
        """The session with this id, or the only one whose id starts — or else ends — with it.

        The short id shown in lists is the id's random tail (a UUIDv7's head is its timestamp,
        shared by sessions started close together). None when nothing matches; ``StoreError``
        when the text matches several sessions.
        """
        text = id_or_prefix.strip().lower()
        if not text:
            return None
        s = sessions.c
        with self.reading() as conn:
            row = conn.execute(sa.select(*queries.SESSION_COLUMNS).where(s.id == text)) \
                .mappings().first()
            if row is None:
                by_prefix = sa.select(*queries.SESSION_COLUMNS).where(
                    self._dialect.prefix_match(s.id, text))
                rows = conn.execute(self._dialect.limit(by_prefix, 2)).mappings().all()
                if not rows and len(text) >= 8:
                    by_suffix = sa.select(*queries.SESSION_COLUMNS).where(
                        s.id.endswith(text, autoescape=True))
                    rows = conn.execute(self._dialect.limit(by_suffix, 2)).mappings().all()
                if len(rows) > 1:
                    raise AmbiguousSessionError(f"'{id_or_prefix}' matches several sessions; "
                                     "give more characters of the id")
                row = rows[0] if rows else None
        return None if row is None else queries.session_dict(row)

    def timeline(self, session_id: str) -> list[dict[str, Any]]:
        """The session's events in time order, ties in recording order ([] for an unknown id).

        A turn's ``message`` is recorded when the turn ends but stamped with its start, so
        ordering by time puts what the user said before the model and tool calls it caused.
        """
        s, e = sessions.c, events.c
        stmt = (sa.select(*queries.EVENT_COLUMNS)
                .join_from(events, sessions, e.session_seq == s.seq)
                .where(s.id == session_id).order_by(e.ts, e.id))
        with self.reading() as conn:
            return queries.event_dicts(conn, conn.execute(stmt).mappings())

    def costs(self, by: CostDimension = "bot", period: Period = "day",
              now: float | None = None) -> list[dict[str, Any]]:
        """Cost totals per ``by`` over the UTC day, ISO week or month holding ``now``.

        Rows ``{key, calls, input_tokens, output_tokens, cache_read_tokens,
        cache_write_tokens, cost_usd, unpriced_calls}``, most expensive first; ``key`` is None
        for calls with no known user/provider/model.
        """
        first, last = queries.period_days(period, time.time() if now is None else now)
        stmt = queries.costs_query(by, first, last)
        with self.reading() as conn:
            return [queries.cost_row(row) for row in conn.execute(stmt).mappings()]

    def open_sessions(self) -> list[dict[str, Any]]:
        """Every session still open, newest first."""
        s = sessions.c
        stmt = (sa.select(*queries.SESSION_COLUMNS).where(s.status == "open")
                .order_by(s.started_at.desc(), s.id.desc()))
        with self.reading() as conn:
            return [queries.session_dict(row) for row in conn.execute(stmt).mappings()]


def _without_sort_value(row: Any) -> dict[str, Any]:
    out = dict(row)
    out.pop("sort_value", None)
    return out


def table_counts(conn: Connection) -> dict[str, Any]:
    """``Store.stats``' counts: sessions (and per status), events, cost rollup rows,
    quarantined records, and the schema version."""
    s = sessions.c
    by_status = {row.status: int(row.n) for row in conn.execute(
        sa.select(s.status, sa.func.count().label("n")).group_by(s.status))}
    count = sa.select(sa.func.count())
    return {"schema_version": current_version(conn), "sessions": sum(by_status.values()),
            "sessions_by_status": by_status,
            "events": int(conn.execute(count.select_from(events)).scalar() or 0),
            "cost_rollup_rows": int(conn.execute(count.select_from(cost_rollups)).scalar() or 0),
            "quarantined_records": int(conn.execute(count.select_from(quarantine)).scalar()
                                       or 0)}
