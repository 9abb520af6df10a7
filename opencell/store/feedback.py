"""Feedback in the store: which turn each bot reply answered, and the feedback standing on it.

Plain functions over a :class:`~opencell.store.store.Store` (``writing()``/``reading()``);
they block, so the async side calls them in a worker thread (see
``opencell/observability/feedback.py``). Rows are small and few — one per reply the bot
posted and one per rating — and never on the recorder's path.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy import Connection

from opencell.store.tables import feedback, reply_messages, sessions


class Store(Protocol):
    """What these functions need of ``opencell.store.store.Store`` (named here, not
    imported: the store's reads import this module)."""

    def writing(self) -> AbstractContextManager[Connection]: ...

    def reading(self) -> AbstractContextManager[Connection]: ...

FEEDBACK_FILTERS = ("good", "bad", "rated", "unrated")
"""``good``: the session's ratings add up above zero; ``bad``: below zero; ``rated``: any;
``unrated``: none."""


def remember_replies(store: Store, rows: Iterable[Mapping[str, Any]]) -> None:
    """Store reply message → turn rows (a row already there is replaced)."""
    rows = [dict(r) for r in rows]
    if not rows:
        return
    t = reply_messages.c
    with store.writing() as conn:
        for row in rows:
            conn.execute(reply_messages.delete().where(
                t.bot == row["bot"], t.platform == row["platform"],
                t.channel == row["channel"], t.message_id == row["message_id"]))
        conn.execute(reply_messages.insert(), rows)


def find_reply(store: Store, *, bot: str, platform: str, channel: str,
               message_id: str) -> dict[str, Any] | None:
    """The reply row of one platform message of the bot's, or None."""
    t = reply_messages.c
    with store.reading() as conn:
        row = conn.execute(sa.select(reply_messages).where(
            t.bot == bot, t.platform == platform, t.channel == channel,
            t.message_id == message_id)).mappings().first()
    return dict(row) if row else None


def took_part(store: Store, *, bot: str, platform: str, channel: str, thread: str,
              user_id: str) -> bool:
    """Whether the bot answered ``user_id`` in this thread."""
    t = reply_messages.c
    with store.reading() as conn:
        found = conn.execute(sa.select(t.message_id).where(
            t.bot == bot, t.platform == platform, t.channel == channel, t.thread == thread,
            t.user_id == user_id).limit(1)).first()
    return found is not None


def last_turn(store: Store, session_id: str) -> str | None:
    """The turn of the session's latest reply the store knows of."""
    t = reply_messages.c
    with store.reading() as conn:
        found = conn.execute(sa.select(t.turn).where(t.session_id == session_id)
                             .order_by(t.ts.desc()).limit(1)).first()
    return None if found is None else str(found[0])


def set_feedback(store: Store, *, session_id: str, bot: str, turn: str, user_id: str,
                 source: str, score: int, comment: str | None = None,
                 ts: float | None = None) -> None:
    """Make (turn, person, source)'s standing ``score`` (+1/-1); 0 removes it (retracted)."""
    f = feedback.c
    with store.writing() as conn:
        conn.execute(feedback.delete().where(
            f.session_id == session_id, f.turn == turn, f.user_id == user_id,
            f.source == source))
        if score:
            conn.execute(feedback.insert().values(
                session_id=session_id, bot=bot, turn=turn, user_id=user_id, source=source,
                score=1 if score > 0 else -1, comment=comment,
                ts=time.time() if ts is None else ts))


def session_feedback(store: Store, session_id: str) -> list[dict[str, Any]]:
    """The feedback standing in one session, oldest first."""
    f = feedback.c
    with store.reading() as conn:
        rows = conn.execute(sa.select(f.turn, f.user_id, f.source, f.score, f.comment, f.ts)
                            .where(f.session_id == session_id).order_by(f.ts, f.id)
                            ).mappings().all()
    return [{**row, "value": "good" if row["score"] > 0 else "bad",
             "ts": _iso(row["ts"])} for row in rows]


def session_scores(store: Store, session_ids: Iterable[str]) -> dict[str, dict[str, int]]:
    """``{session id: {"good": n, "bad": n}}`` for the rated ones among ``session_ids``."""
    ids = list(session_ids)
    if not ids:
        return {}
    f = feedback.c
    out: dict[str, dict[str, int]] = {}
    with store.reading() as conn:
        for session_id, score, n in conn.execute(
                sa.select(f.session_id, f.score, sa.func.count())
                .where(f.session_id.in_(ids)).group_by(f.session_id, f.score)):
            counts = out.setdefault(session_id, {"good": 0, "bad": 0})
            counts["good" if score > 0 else "bad"] += int(n)
    return out


def session_score() -> sa.ScalarSelect[Any]:
    """The net feedback of the session row being read (👍 count − 👎 count; 0 unrated)."""
    f = feedback.c
    return (sa.select(sa.func.coalesce(sa.func.sum(f.score), 0))
            .where(f.session_id == sessions.c.id).scalar_subquery())


def feedback_filter(wanted: str) -> sa.ColumnElement[bool]:
    """The condition on session rows for one of ``FEEDBACK_FILTERS``."""
    f = feedback.c
    rated = sa.exists().where(f.session_id == sessions.c.id)
    if wanted == "good":
        return sa.and_(rated, session_score() > 0)
    if wanted == "bad":
        return sa.and_(rated, session_score() < 0)
    if wanted == "rated":
        return rated
    if wanted == "unrated":
        return ~rated
    raise ValueError(f"unknown feedback filter '{wanted}'; use {', '.join(FEEDBACK_FILTERS)}")


def satisfaction(store: Store, *, since: float, bot: str | None = None
                 ) -> list[dict[str, Any]]:
    """Per UTC day and bot since ``since``: 👍 and 👎 turns and the share of 👍 among rated
    turns (a turn counts once: good if its ratings add up above zero, bad below)."""
    f = feedback.c
    conditions = [f.ts >= since] + ([f.bot == bot] if bot is not None else [])
    with store.reading() as conn:
        rows = conn.execute(sa.select(f.bot, f.session_id, f.turn, f.ts, f.score)
                            .where(*conditions)).all()
    turns: dict[tuple[str, str, str], list[Any]] = {}
    for row_bot, session_id, turn, ts, score in rows:
        entry = turns.setdefault((row_bot, session_id, turn), [ts, 0])
        entry[0] = min(entry[0], ts)
        entry[1] += score
    days: dict[tuple[str, str], list[int]] = {}
    for (row_bot, _, _), (ts, score) in turns.items():
        if score == 0:
            continue
        day = datetime.fromtimestamp(ts, UTC).date().isoformat()
        counts = days.setdefault((day, row_bot), [0, 0])
        counts[0 if score > 0 else 1] += 1
    return [{"day": day, "bot": row_bot, "good": good, "bad": bad,
             "satisfaction": round(good / (good + bad), 4)}
            for (day, row_bot), (good, bad) in sorted(days.items())]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")
