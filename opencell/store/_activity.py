"""Activity rollups kept with every write batch: what the dashboard reads instead of raw events.

Four small tables, all additive (``count = count + :n`` upserts, so several writers can share
them, like ``cost_rollups``; rows go in key order, so concurrent writers lock them in the same
order and never deadlock):

- ``event_rollups``: events per UTC day, bot, kind and name (sessions started and ended by
  reason, turns, model calls per model, tool calls per tool, errors per type, custom events),
  with failures and summed duration;
- ``latency_rollups``: turn response times per day and bot as a histogram of geometric buckets
  (each 10 % wide), so p50/p95 over any range of days is a sum over a few hundred rows, to
  within 5 %;
- ``cost_daily``: ``cost_rollups`` without the user dimension (about a hundred times fewer rows:
  every breakdown except per-user reads these);
- ``user_cost_rollups``: cost per user per ISO week and per month, so "top users this month"
  reads one row per active user instead of one per user and day;
- per UTC hour (``_hourly.py``, schema v14), for the analytics page's short ranges:
  ``event_hourly`` (events per hour, bot and kind), ``latency_hourly`` (the turn-latency
  histogram per hour and bot) and ``cost_hourly`` (cost per hour, bot, provider and model);
  and ``ttft_rollups``: streamed calls' time to first token per day, bot and model, in the
  latency buckets. Like the daily ones they carry no user, and retention keeps them.

``write_activity`` adds a batch's share inside the batch's transaction; ``backfill`` builds
them from the events and cost rollups already stored (schema migration 4).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from opencell.calendar import first_day, hour_key, utc_day
from opencell.store._batch import EventRow, Usage
from opencell.store._direct import Run
from opencell.store._writes import add_call
from opencell.store.dialect import Dialect
from opencell.store.tables import (
    cost_daily,
    cost_hourly,
    cost_rollups,
    event_hourly,
    event_rollups,
    events,
    latency_hourly,
    latency_rollups,
    sessions,
    ttft_rollups,
    user_cost_rollups,
)

LATENCY_RATIO = 1.1
"""Each latency bucket spans [r**b, r**(b+1)) milliseconds; bucket 0 also holds < 1 ms."""
_LOG_RATIO = math.log(LATENCY_RATIO)

COST_SUMS = ("calls", "input_tokens", "output_tokens", "cache_read_tokens",
             "cache_write_tokens", "cost_usd", "unpriced_calls")
_DAILY_KEYS = ("day", "bot", "platform", "provider", "model")
_USER_KEYS = ("period", "start", "user_id")
HOURLY_COST_KEYS = ("hour", "bot", "provider", "model")
_BACKFILL_CHUNK = 50_000

SessionBots = Mapping[str, tuple[Any, ...]]
"""Session id → stored session info whose second item is the bot (``SessionInfo``)."""


def latency_bucket(ms: float) -> int:
    """The histogram bucket of a response time in milliseconds."""
    return int(math.log(ms) / _LOG_RATIO) if ms > 1.0 else 0


def bucket_ms(bucket: int) -> float:
    """A bucket's representative value: its geometric middle (within 5 % of any member)."""
    return float(LATENCY_RATIO ** (bucket + 0.5))


def periods_of(day: str) -> tuple[str, str]:
    """The Monday of the ISO week and the first of the month holding ``day`` (``YYYY-MM-DD``)."""
    when = date.fromisoformat(day)
    return first_day("week", when).isoformat(), first_day("month", when).isoformat()


class ActivityStatements:
    """The upserts, daily and hourly, built once per store."""

    def __init__(self, dialect: Dialect) -> None:
        def adding(table: sa.Table, names: Iterable[str]) -> Any:
            return lambda excluded: {name: table.c[name] + excluded[name] for name in names}

        self.add_events = dialect.upsert(event_rollups, ("day", "bot", "kind", "name"),
                                         adding(event_rollups,
                                                ("count", "failures", "duration_ms")))
        self.add_latency = dialect.upsert(latency_rollups, ("day", "bot", "bucket"),
                                          adding(latency_rollups, ("count",)))
        self.add_daily = dialect.upsert(cost_daily, _DAILY_KEYS, adding(cost_daily, COST_SUMS))
        self.add_users = dialect.upsert(user_cost_rollups, _USER_KEYS,
                                        adding(user_cost_rollups, COST_SUMS))
        self.add_events_hourly = dialect.upsert(event_hourly, ("hour", "bot", "kind"), adding(
            event_hourly, ("count", "failures", "duration_ms")))
        self.add_latency_hourly = dialect.upsert(latency_hourly, ("hour", "bot", "bucket"),
                                                 adding(latency_hourly, ("count",)))
        self.add_cost_hourly = dialect.upsert(cost_hourly, HOURLY_COST_KEYS,
                                              adding(cost_hourly, COST_SUMS))
        self.add_ttft = dialect.upsert(ttft_rollups, ("day", "bot", "model", "bucket"),
                                       adding(ttft_rollups, ("count",)))


@dataclass(slots=True)
class ActivityRows:
    """A batch's events summed for the rollups: per day and per hour."""

    events: list[dict[str, Any]]
    """Per (day, bot, kind, name): ``event_rollups`` rows."""
    latency: list[dict[str, Any]]
    """Per (day, bot, bucket): ``latency_rollups`` rows."""
    events_hourly: list[dict[str, Any]]
    """Per (hour, bot, kind): ``event_hourly`` rows."""
    latency_hourly: list[dict[str, Any]]
    """Per (hour, bot, bucket): ``latency_hourly`` rows."""


def event_rows(rows: Iterable[EventRow], infos: SessionBots) -> ActivityRows:
    """A batch's events summed per (day, bot, kind, name) and per (hour, bot, kind), and its
    turn-latency histograms per day and per hour."""
    # The one loop over every stored event: keyed on what the row holds as it is (the hour
    # number), turned into days, hours and bots once per key afterwards.
    counts: dict[tuple[str, int, str, str], list[float]] = {}
    latency: dict[tuple[str, int, int], int] = {}
    log, ratio = math.log, _LOG_RATIO
    for session_id, ts, kind, name, duration, ok, _data in rows:
        key = (session_id, int(ts // 3600), kind, name)
        row = counts.get(key)
        if row is None:
            row = counts[key] = [0, 0, 0.0]
        row[0] += 1
        if ok is False:
            row[1] += 1
        if duration is not None:
            row[2] += duration
            if kind == "message":
                slot = (session_id, key[1], int(log(duration) / ratio) if duration > 1.0 else 0)
                latency[slot] = latency.get(slot, 0) + 1
    summed: dict[tuple[str, str, str, str], list[float]] = {}
    hourly: dict[tuple[str, str, str], list[float]] = {}
    for (session_id, hour, kind, name), (n, failed, ms) in counts.items():
        bot = infos[session_id][1]
        for into in (summed.setdefault((_day(hour // 24), bot, kind, name), [0, 0, 0.0]),
                     hourly.setdefault((hour_key(hour), bot, kind), [0, 0, 0.0])):
            into[0] += n
            into[1] += failed
            into[2] += ms
    hist: dict[tuple[str, str, int], int] = {}
    hist_hourly: dict[tuple[str, str, int], int] = {}
    for (session_id, hour, bucket), n in latency.items():
        bot = infos[session_id][1]
        day_key = (_day(hour // 24), bot, bucket)
        hist[day_key] = hist.get(day_key, 0) + n
        hour_slot = (hour_key(hour), bot, bucket)
        hist_hourly[hour_slot] = hist_hourly.get(hour_slot, 0) + n
    return ActivityRows(
        [{"day": k[0], "bot": k[1], "kind": k[2], "name": k[3], "count": int(v[0]),
          "failures": int(v[1]), "duration_ms": v[2]} for k, v in sorted(summed.items())],
        [{"day": k[0], "bot": k[1], "bucket": k[2], "count": n}
         for k, n in sorted(hist.items())],
        [{"hour": k[0], "bot": k[1], "kind": k[2], "count": int(v[0]), "failures": int(v[1]),
          "duration_ms": v[2]} for k, v in sorted(hourly.items())],
        [{"hour": k[0], "bot": k[1], "bucket": k[2], "count": n}
         for k, n in sorted(hist_hourly.items())])


def _day(number: int) -> str:
    return utc_day(number * 86400.0)


def _zero() -> dict[str, Any]:
    row: dict[str, Any] = {name: 0 for name in COST_SUMS}
    row["cost_usd"] = 0.0
    return row


def cost_rows(rollups: Iterable[Mapping[str, Any]],
              ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``cost_rollups`` rows (a batch's, or stored ones) summed per (day, bot, platform,
    provider, model) and per (week or month, user)."""
    daily: dict[tuple[str, ...], dict[str, Any]] = {}
    users: dict[tuple[str, ...], dict[str, Any]] = {}
    for rollup in rollups:
        key = tuple(rollup[name] for name in _DAILY_KEYS)
        targets = [daily.get(key) or daily.setdefault(
            key, dict(zip(_DAILY_KEYS, key, strict=True)) | _zero())]
        for period_key in zip(("week", "month"), _periods(rollup["day"]), strict=True):
            user_key = (*period_key, rollup["user_id"])
            targets.append(users.get(user_key) or users.setdefault(
                user_key, dict(zip(_USER_KEYS, user_key, strict=True)) | _zero()))
        for name in COST_SUMS:
            value = rollup[name] or 0
            for target in targets:
                target[name] += value
    return [daily[k] for k in sorted(daily)], [users[k] for k in sorted(users)]


def cost_hourly_rows(usage: Iterable[Usage], infos: SessionBots) -> list[dict[str, Any]]:
    """Model calls summed per (hour, bot, provider, model), in key order."""
    rows: dict[tuple[str, ...], dict[str, Any]] = {}
    for call in usage:
        key = (hour_key(call.hour), infos[call.session_id][1], call.provider, call.model)
        row = rows.get(key)
        if row is None:
            row = rows[key] = dict(zip(HOURLY_COST_KEYS, key, strict=True)) | _zero()
        add_call(row, call)
    return [rows[key] for key in sorted(rows)]


def ttft_rows(usage: Iterable[Usage], infos: SessionBots) -> list[dict[str, Any]]:
    """Streamed calls' time to first token per (day, bot, model answering, bucket)."""
    counts: dict[tuple[str, str, str, int], int] = {}
    for call in usage:
        if call.ttft_ms is not None:
            key = (call.day, infos[call.session_id][1], call.answered_by,
                   latency_bucket(call.ttft_ms))
            counts[key] = counts.get(key, 0) + 1
    return [{"day": k[0], "bot": k[1], "model": k[2], "bucket": k[3], "count": n}
            for k, n in sorted(counts.items())]


_period_cache: dict[str, tuple[str, str]] = {}


def _periods(day: str) -> tuple[str, str]:
    found = _period_cache.get(day)
    if found is None:
        found = _period_cache[day] = periods_of(day)
    return found


def write_activity(run: Run, sql: ActivityStatements, rows: list[EventRow],
                   rollups: list[dict[str, Any]], infos: SessionBots,
                   usage: Sequence[Usage] = ()) -> None:
    """Add one batch's events, its ``cost_rollups`` rows and its model calls' ``usage`` to
    the activity rollups (daily and hourly; streamed calls' time to first token)."""
    summed = event_rows(rows, infos)
    for statement, part in ((sql.add_events, summed.events), (sql.add_latency, summed.latency),
                            (sql.add_events_hourly, summed.events_hourly),
                            (sql.add_latency_hourly, summed.latency_hourly)):
        if part:
            run(statement, part)
    if rollups:
        daily, users = cost_rows(rollups)
        run(sql.add_daily, daily)
        run(sql.add_users, users)
    hourly = cost_hourly_rows(usage, infos)
    if hourly:
        run(sql.add_cost_hourly, hourly)
    first_tokens = ttft_rows(usage, infos)
    if first_tokens:
        run(sql.add_ttft, first_tokens)


def add_session_end(conn: Connection, sql: ActivityStatements, *, ts: float, bot: str,
                    reason: str, failed: bool) -> None:
    """Count a ``session_end`` event written outside ``write_batch`` (crash recovery)."""
    conn.execute(sql.add_events, [{"day": utc_day(ts), "bot": bot, "kind": "session_end",
                                   "name": reason, "count": 1, "failures": int(failed),
                                   "duration_ms": 0.0}])
    conn.execute(sql.add_events_hourly, [{"hour": hour_key(int(ts // 3600)), "bot": bot,
                                          "kind": "session_end", "count": 1,
                                          "failures": int(failed), "duration_ms": 0.0}])


def stored_activity(conn: Connection) -> Iterator[ActivityRows]:
    """The events already stored, summed like a write batch's, ``_BACKFILL_CHUNK`` events at
    a time in id order; only their plain columns are read (no JSON)."""
    e, s = events.c, sessions.c
    last = 0
    while True:
        chunk = conn.execute(
            sa.select(e.id, e.ts, e.kind, e.name, e.duration_ms, e.success, s.bot)
            .join_from(events, sessions, e.session_seq == s.seq)
            .where(e.id > last).order_by(e.id).limit(_BACKFILL_CHUNK)).all()
        if not chunk:
            return
        last = chunk[-1].id
        rows = [(str(r.bot), r.ts, r.kind, r.name, r.duration_ms,
                 None if r.success is None else bool(r.success), "") for r in chunk]
        yield event_rows(rows, {bot: (0, bot) for bot in {row[0] for row in rows}})


class Summed:
    """Rollup rows added up by their key columns (the backfills' running totals)."""

    def __init__(self, *keys: str) -> None:
        self.keys = keys
        self._rows: dict[tuple[Any, ...], dict[str, Any]] = {}

    def add(self, rows: Iterable[Mapping[str, Any]]) -> None:
        for row in rows:
            key = tuple(row[k] for k in self.keys)
            into = self._rows.get(key)
            if into is None:
                self._rows[key] = dict(row)
                continue
            for name, value in row.items():
                if name not in self.keys:
                    into[name] += value

    def rows(self) -> list[dict[str, Any]]:
        return list(self._rows.values())


def backfill(conn: Connection) -> None:
    """Build the (empty) daily rollups from the events and cost rollups already stored: a
    million events take a few seconds once, at the upgrade."""
    counted, latency = Summed("day", "bot", "kind", "name"), Summed("day", "bot", "bucket")
    for part in stored_activity(conn):
        counted.add(part.events)
        latency.add(part.latency)
    for table, summed in ((event_rollups, counted), (latency_rollups, latency)):
        if summed.rows():
            conn.execute(table.insert(), summed.rows())
    _backfill_costs(conn)


def _backfill_costs(conn: Connection) -> None:
    r = cost_rollups.c
    sums = [sa.func.sum(r[name]).label(name) for name in COST_SUMS]
    stored = conn.execute(sa.select(*(r[key] for key in ("day", "bot", "user_id", "platform",
                                                        "provider", "model")), *sums)
                          .group_by(r.day, r.bot, r.user_id, r.platform, r.provider, r.model))
    daily, users = cost_rows(dict(row._mapping) for row in stored)
    if daily:
        conn.execute(cost_daily.insert(), daily)
    if users:
        conn.execute(user_cost_rollups.insert(), users)
