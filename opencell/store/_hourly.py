"""Schema v14: the hourly rollups, the time-to-first-token rollup and each session's failed
turns, filled from what is stored.

The analytics page draws ranges of a day or two per hour. The write path keeps three hourly
rollups next to the daily ones (``_activity.py``): ``event_hourly`` (events per UTC hour,
bot and kind), ``latency_hourly`` (the turn-latency histogram per hour and bot) and
``cost_hourly`` (model calls, tokens and cost per hour, bot, provider and model). They hold
no user, so ``forget`` has nothing to change in them, and retention keeps them like the
daily rollups. ``sessions.failed_turns`` counts a session's failed turns (``message`` events
with success false), which ``errors`` (error events) does not tell: a model call that failed
and was retried records an error inside a turn that was answered. ``ttft_rollups`` holds
streamed calls' time to first token per UTC day, bot and model answering, as a histogram in
the latency buckets (p50/p95 within 5 %), so the analytics page no longer reads every model
call of its range for it.

The upgrade builds them from the events still stored (events retention already deleted are
only in the daily rollups): one pass over the events' plain columns, one over the model
calls' data: about 15 s for a million events (a busy 2-core machine), once.
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
    ttft_rows,
)
from opencell.store._batch import usage_of
from opencell.store.dialect import Dialect

_CHUNK = 50_000


def _v14_hourly_rollups(conn: Connection, dialect: Dialect) -> None:
    """Hourly rollups for short analytics ranges; time to first token per day, bot and
    model; failed turns per session."""
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
    sa.Table("ttft_rollups", md, sa.Column("day", sa.String(10), primary_key=True),
             *(sa.Column(name, sa.String(200), primary_key=True) for name in ("bot", "model")),
             sa.Column("bucket", sa.Integer, primary_key=True, autoincrement=False),
             big("count"))
    md.create_all(conn)
    conn.execute(sa.text(
        "ALTER TABLE sessions ADD COLUMN failed_turns INTEGER NOT NULL DEFAULT 0"))
    backfill_hourly(conn)
    _count_failed_turns(conn)


def backfill_hourly(conn: Connection) -> None:
    """Fill the (empty) hourly and time-to-first-token rollups from the events stored."""
    md = sa.MetaData()
    tables = {name: sa.Table(name, md, autoload_with=conn)
              for name in ("event_hourly", "latency_hourly", "cost_hourly", "ttft_rollups")}
    counted, latency = Summed("hour", "bot", "kind"), Summed("hour", "bot", "bucket")
    for part in stored_activity(conn):
        counted.add(part.events_hourly)
        latency.add(part.latency_hourly)
    costs = Summed(*HOURLY_COST_KEYS)
    first_tokens = Summed("day", "bot", "model", "bucket")
    events = sa.table("events", sa.column("id"), sa.column("session_seq"), sa.column("ts"),
                      sa.column("kind"), sa.column("data"))
    sessions = sa.table("sessions", sa.column("seq"), sa.column("bot"))
    e, s = events.c, sessions.c
    low, high = conn.execute(sa.select(sa.func.min(e.id), sa.func.max(e.id))).one()
    # Windows of ids (the primary key), each read once. ``coalesce`` keeps SQLite off the
    # (kind, ts) index, which would walk every model call of the store for each window.
    kind = sa.func.coalesce(e.kind, "")
    for start in range(int(low or 0) - 1, int(high or 0), _CHUNK):
        chunk = conn.execute(
            sa.select(e.ts, e.data, s.bot).join_from(events, sessions, e.session_seq == s.seq)
            .where(e.id > start, e.id <= start + _CHUNK, kind == "llm_call")).all()
        usage = [usage_of(str(row.bot), float(row.ts), _data(row.data)) for row in chunk]
        bots = {bot: (0, bot) for bot in {u.session_id for u in usage}}
        costs.add(cost_hourly_rows(usage, bots))
        first_tokens.add(ttft_rows(usage, bots))
    for name, summed in (("event_hourly", counted), ("latency_hourly", latency),
                         ("cost_hourly", costs), ("ttft_rollups", first_tokens)):
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
    counts = conn.execute(sa.select(e.session_seq, sa.func.count())
                          .where(e.kind == "message", e.success == sa.false())
                          .group_by(e.session_seq)).all()
    if counts:  # one grouped read, then by key: a correlated count per session takes minutes
        conn.execute(sessions.update().where(s.seq == sa.bindparam("b_seq"))
                     .values(failed_turns=sa.bindparam("b_n")),
                     [{"b_seq": seq, "b_n": int(n)} for seq, n in sorted(counts)])
    conn.execute(sessions.update().where(s.last_turn_failed == sa.true(), s.failed_turns == 0)
                 .values(failed_turns=1))
