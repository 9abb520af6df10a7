"""Schema v14: the hourly rollups and each session's failed turns, filled from what is stored.

The analytics page draws ranges of a day or two per hour. The write path keeps three hourly
rollups next to the daily ones (``_activity.py``): ``event_hourly`` (events per UTC hour,
bot and kind), ``latency_hourly`` (the turn-latency histogram per hour and bot) and
``cost_hourly`` (model calls, tokens and cost per hour, bot, provider and model). They hold
no user, so ``forget`` has nothing to change in them, and retention keeps them like the
daily rollups. ``sessions.failed_turns`` counts a session's failed turns (``message`` events
with success false), which ``errors`` (error events) does not tell: a model call that failed
and was retried records an error inside a turn that was answered.

The upgrade builds them from the events still stored (events retention already deleted are
only in the daily rollups): one pass over the events' plain columns, one over the model
calls' data, a few seconds for a million events, once.
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from opencell.store._activity import (
    HOURLY_COST_KEYS,
    Summed,
    cost_hourly_rows,
    stored_activity,
)
from opencell.store._batch import usage_of
from opencell.store.dialect import Dialect

_CHUNK = 20_000


def v14_hourly_rollups(conn: Connection, dialect: Dialect) -> None:
    """Hourly rollups for short analytics ranges; failed turns per session."""
    md = sa.MetaData()

    def hour_and(*names: str) -> list[sa.Column[Any]]:
        return [sa.Column("hour", sa.String(13), primary_key=True),
                *(sa.Column(name, sa.String(200), primary_key=True) for name in names)]

    def big(name: str) -> sa.Column[Any]:
        return sa.Column(name, sa.BigInteger, nullable=False, server_default="0")

    sa.Table("event_hourly", md, *hour_and("bot"),
             sa.Column("kind", sa.String(32), primary_key=True), big("count"), big("failures"),
             sa.Column("duration_ms", sa.Float, nullable=False, server_default="0"))
    sa.Table("latency_hourly", md, *hour_and("bot"),
             sa.Column("bucket", sa.Integer, primary_key=True, autoincrement=False),
             big("count"))
    sa.Table("cost_hourly", md, *hour_and("bot", "provider", "model"),
             sa.Column("calls", sa.Integer, nullable=False, server_default="0"),
             *(big(name) for name in ("input_tokens", "output_tokens", "cache_read_tokens",
                                      "cache_write_tokens")),
             sa.Column("cost_usd", sa.Float, nullable=False, server_default="0"),
             sa.Column("unpriced_calls", sa.Integer, nullable=False, server_default="0"))
    md.create_all(conn)
    conn.execute(sa.text(
        "ALTER TABLE sessions ADD COLUMN failed_turns INTEGER NOT NULL DEFAULT 0"))
    backfill_hourly(conn)
    _count_failed_turns(conn)


def backfill_hourly(conn: Connection) -> None:
    """Fill the (empty) hourly rollups from the events stored."""
    md = sa.MetaData()
    tables = {name: sa.Table(name, md, autoload_with=conn)
              for name in ("event_hourly", "latency_hourly", "cost_hourly")}
    counted, latency = Summed("hour", "bot", "kind"), Summed("hour", "bot", "bucket")
    for part in stored_activity(conn):
        counted.add(part.events_hourly)
        latency.add(part.latency_hourly)
    costs = Summed(*HOURLY_COST_KEYS)
    events = sa.table("events", sa.column("id"), sa.column("session_seq"), sa.column("ts"),
                      sa.column("kind"), sa.column("data"))
    sessions = sa.table("sessions", sa.column("seq"), sa.column("bot"))
    e, s = events.c, sessions.c
    last = 0
    while True:
        chunk = conn.execute(
            sa.select(e.id, e.ts, e.data, s.bot).join_from(events, sessions,
                                                           e.session_seq == s.seq)
            .where(e.kind == "llm_call", e.id > last).order_by(e.id).limit(_CHUNK)).all()
        if not chunk:
            break
        last = chunk[-1].id
        usage = [usage_of(str(row.bot), float(row.ts), _data(row.data)) for row in chunk]
        costs.add(cost_hourly_rows(usage, {bot: (0, bot) for bot in {u.session_id
                                                                      for u in usage}}))
    for name, summed in (("event_hourly", counted), ("latency_hourly", latency),
                         ("cost_hourly", costs)):
        if summed.rows():
            conn.execute(tables[name].insert(), summed.rows())


def _data(text: str | None) -> dict[str, Any]:
    try:
        found = json.loads(text or "{}")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _count_failed_turns(conn: Connection) -> None:
    """Each session's failed turns from its stored ``message`` events; a session whose last
    turn failed but whose events retention already deleted counts that one."""
    sessions = sa.table("sessions", sa.column("seq"), sa.column("failed_turns"),
                        sa.column("last_turn_failed"))
    events = sa.table("events", sa.column("session_seq"), sa.column("kind"),
                      sa.column("success"))
    s, e = sessions.c, events.c
    failed = sa.and_(e.kind == "message", e.success == sa.false())
    per_session = (sa.select(sa.func.count()).select_from(events)
                   .where(e.session_seq == s.seq, failed).scalar_subquery())
    conn.execute(sessions.update().where(s.seq.in_(sa.select(e.session_seq).where(failed)))
                 .values(failed_turns=per_session))
    conn.execute(sessions.update().where(s.last_turn_failed == sa.true(), s.failed_turns == 0)
                 .values(failed_turns=1))
