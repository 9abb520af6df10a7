"""The dashboard's reads beyond the store's own: analytics, cost breakdowns, metrics, live ticks.

Everything here reads the rollup tables (``cost_rollups``, and the activity rollups of
``observability/_activity.py``), never a scan of events or sessions, so each call costs the
same on a store of a thousand events or a million. Days are UTC days, as in the rollups.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from opencell.calendar import CostDimension, Period, period_bounds
from opencell.dashboard.timeaxis import TimeAxis, time_axis
from opencell.store import COST_SUMS, bucket_ms
from opencell.store.tables import (
    cost_daily,
    cost_rollups,
    event_rollups,
    events,
    export_cursors,
    latency_rollups,
    sessions,
    user_cost_rollups,
)

TOP_ROWS = 100
"""Breakdown rows returned per dimension; the rest are summed into ``others``."""


def today(now: float | None = None) -> date:
    """The current UTC day."""
    return datetime.fromtimestamp(time.time() if now is None else now, UTC).date()


def _sums(table: sa.Table) -> list[sa.Label[Any]]:
    return [sa.func.coalesce(sa.func.sum(table.c[name]), 0).label(name) for name in COST_SUMS]


def _money_row(row: Mapping[Any, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {name: int(row[name] or 0) for name in COST_SUMS}
    out["cost_usd"] = float(row["cost_usd"] or 0.0)
    return out


def percentile(histogram: Mapping[int, int], q: float) -> float | None:
    """The ``q``-th percentile (0–100) of a latency histogram, in ms (None when empty)."""
    total = sum(histogram.values())
    if total == 0:
        return None
    rank = max(1, round(q / 100 * total))
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= rank:
            return round(bucket_ms(bucket), 1)
    return round(bucket_ms(max(histogram)), 1)


# ------------------------------------------------------------------ costs


def cost_totals(conn: Connection, first: date, last: date,
                bot: str | None = None) -> dict[str, Any]:
    """Calls, tokens and cost over [first, last] (optionally one bot's)."""
    c = cost_daily.c
    stmt = sa.select(*_sums(cost_daily)).where(c.day >= first.isoformat(),
                                                c.day <= last.isoformat())
    if bot is not None:
        stmt = stmt.where(c.bot == bot)
    return _money_row(conn.execute(stmt).mappings().one())


def cost_breakdown(conn: Connection, by: CostDimension, period: Period,
                   at: date) -> dict[str, Any]:
    """One period's cost per ``by``: the top rows, the rest as ``others``, and the totals."""
    first, last = period_bounds(period, at)
    if by == "user":
        if period == "day":
            r = cost_rollups.c
            grouped = (sa.select(r.user_id.label("key"), *_sums(cost_rollups))
                       .where(r.day == first.isoformat()).group_by(r.user_id).subquery())
        else:
            u = user_cost_rollups.c
            grouped = (sa.select(u.user_id.label("key"), *(u[n] for n in COST_SUMS))
                       .where(u.period == period, u.start == first.isoformat()).subquery())
    else:
        d = cost_daily.c
        grouped = (sa.select(d[by].label("key"), *_sums(cost_daily))
                   .where(d.day >= first.isoformat(), d.day <= last.isoformat())
                   .group_by(d[by]).subquery())
    g = grouped.c
    rows = conn.execute(sa.select(grouped).order_by(g.cost_usd.desc(), g.calls.desc(), g.key)
                        .limit(TOP_ROWS)).mappings().all()
    summed = conn.execute(
        sa.select(*(sa.func.coalesce(sa.func.sum(g[n]), 0).label(n) for n in COST_SUMS),
                  sa.func.count().label("keys")).select_from(grouped)).mappings().one()
    totals, keys = _money_row(summed), int(summed["keys"] or 0)
    listed = [{"key": row["key"] or None, **_money_row(row)} for row in rows]
    others = None
    if keys > len(listed):
        others = {name: totals[name] - sum(r[name] for r in listed) for name in COST_SUMS}
        others["keys"] = keys - len(listed)
    return {"by": by, "period": period, "first_day": first.isoformat(),
            "last_day": last.isoformat(), "rows": listed, "others": others, "keys": keys,
            "total": totals}


def unpriced_models(conn: Connection, first: date, last: date) -> list[dict[str, Any]]:
    """Models called without a known price in [first, last], most calls first."""
    d = cost_daily.c
    stmt = (sa.select(d.provider, d.model, sa.func.sum(d.unpriced_calls).label("calls"),
                      sa.func.max(d.day).label("last_day"))
            .where(d.day >= first.isoformat(), d.day <= last.isoformat(), d.unpriced_calls > 0)
            .group_by(d.provider, d.model).order_by(sa.func.sum(d.unpriced_calls).desc()))
    return [{"provider": r.provider, "model": r.model, "calls": int(r.calls),
             "last_day": r.last_day} for r in conn.execute(stmt)]


def estimated_usage(conn: Connection, first: date, last: date) -> list[dict[str, Any]]:
    """Models whose provider left usage out (or sent impossible numbers) in [first, last],
    most calls first: those calls are counted at their worst case."""
    r = cost_rollups.c
    calls = sa.func.sum(r.estimated_calls)
    stmt = (sa.select(r.provider, r.model, calls.label("calls"),
                      sa.func.max(r.day).label("last_day"))
            .where(r.day >= first.isoformat(), r.day <= last.isoformat(), r.estimated_calls > 0)
            .group_by(r.provider, r.model).order_by(calls.desc()))
    return [{"provider": row.provider, "model": row.model, "calls": int(row.calls),
             "last_day": row.last_day} for row in conn.execute(stmt)]


def daily_cost(conn: Connection, first: date, last: date, *, by: str = "bot",
               bot: str | None = None) -> dict[str, Any]:
    """Cost per day over [first, last]: ``{granularity, days, series: [{name, values}],
    total}``, the series most expensive first."""
    return cost_over(conn, time_axis(first, last, "day"), by=by, bot=bot)


def cost_over(conn: Connection, axis: TimeAxis, *, by: str = "bot",
              bot: str | None = None) -> dict[str, Any]:
    """Cost per day or hour of ``axis`` by ``by`` (per hour: bot, provider or model)."""
    d = axis.costs.c
    slot, key = axis.slot(axis.costs), d[by]
    stmt = (sa.select(slot.label("slot"), key.label("key"), sa.func.sum(d.cost_usd).label("n"))
            .where(*axis.within(axis.costs)).group_by(slot, key))
    if bot is not None:
        stmt = stmt.where(d.bot == bot)
    return _series(axis, conn.execute(stmt))


def _series(axis: TimeAxis, rows: Iterable[Any]) -> dict[str, Any]:
    index = {key: n for n, key in enumerate(axis.keys)}
    width = len(axis.keys)
    series: dict[str, list[float]] = {}
    for row in rows:
        if row.slot in index:
            values = series.setdefault(row.key or "(none)", [0.0] * width)
            values[index[row.slot]] += float(row.n or 0)
    total = [round(sum(values), 10) for values in zip(*series.values(), strict=True)] \
        if series else [0.0] * width
    ordered = sorted(series.items(), key=lambda item: (-sum(item[1]), item[0]))
    return {**axis.labels(), "series": [{"name": name, "values": values}
                                        for name, values in ordered], "total": total}


# ------------------------------------------------------------------ analytics


def analytics(conn: Connection, *, first: date, last: date, bot: str | None,
              now: float | None = None, axis: TimeAxis | None = None) -> dict[str, Any]:
    """Per-bot sessions, success rate, turns and failed turns, response time p50/p95;
    costs; tools; errors; cost, sessions and errors over ``axis`` (default: per day)."""
    axis = axis or time_axis(first, last, "day")
    e = event_rollups.c
    in_range = [e.day >= first.isoformat(), e.day <= last.isoformat()]
    if bot is not None:
        in_range.append(e.bot == bot)
    per_bot: dict[str, dict[str, Any]] = {}
    rows = conn.execute(sa.select(e.bot, e.kind, sa.func.sum(e.count).label("n"),
                                  sa.func.sum(e.failures).label("failed"))
                        .where(*in_range).group_by(e.bot, e.kind))
    for row in rows:
        entry = per_bot.setdefault(row.bot, _empty_bot(row.bot))
        counts = entry["_kinds"]
        counts[row.kind] = (int(row.n or 0), int(row.failed or 0))
    histograms = _latency(conn, first, last, bot)
    costs = {row.bot: float(row.usd or 0) for row in conn.execute(
        sa.select(cost_daily.c.bot, sa.func.sum(cost_daily.c.cost_usd).label("usd"))
        .where(cost_daily.c.day >= first.isoformat(), cost_daily.c.day <= last.isoformat(),
               *([cost_daily.c.bot == bot] if bot is not None else []))
        .group_by(cost_daily.c.bot))}
    for name in set(histograms) | set(costs):
        per_bot.setdefault(name, _empty_bot(name))
    overall: dict[int, int] = {}
    for name, entry in per_bot.items():
        kinds = entry.pop("_kinds")
        started = kinds.get("session_start", (0, 0))[0]
        ended, failed = kinds.get("session_end", (0, 0))
        turns, failed_turns = kinds.get("message", (0, 0))
        histogram = histograms.get(name, {})
        for bucket, n in histogram.items():
            overall[bucket] = overall.get(bucket, 0) + n
        entry.update(sessions=started, ended=ended, failed=failed,
                     success_rate=None if not ended else round((ended - failed) / ended, 4),
                     turns=turns, failed_turns=failed_turns,
                     llm_calls=kinds.get("llm_call", (0, 0))[0],
                     tool_calls=kinds.get("tool_call", (0, 0))[0],
                     errors=kinds.get("error", (0, 0))[0],
                     p50_ms=percentile(histogram, 50), p95_ms=percentile(histogram, 95),
                     cost_usd=costs.get(name, 0.0))
    bots = sorted(per_bot.values(), key=lambda b: (-b["sessions"], b["bot"]))
    ended = sum(b["ended"] for b in bots)
    failed = sum(b["failed"] for b in bots)
    day = today(now)
    return {
        "range": {"first_day": first.isoformat(), "last_day": last.isoformat(), "bot": bot},
        "totals": {"sessions": sum(b["sessions"] for b in bots), "ended": ended,
                   "success_rate": None if not ended else round((ended - failed) / ended, 4),
                   "turns": sum(b["turns"] for b in bots),
                   "failed_turns": sum(b["failed_turns"] for b in bots),
                   "errors": sum(b["errors"] for b in bots),
                   "p50_ms": percentile(overall, 50), "p95_ms": percentile(overall, 95),
                   "cost_usd": sum(b["cost_usd"] for b in bots)},
        "bots": bots,
        "cost": {period: cost_totals(conn, *period_bounds(period, day), bot)["cost_usd"]
                 for period in ("day", "week", "month")},
        "granularity": axis.granularity,
        "cost_over_time": cost_over(conn, axis, bot=bot),
        "sessions_over_time": _kind_over(conn, axis, "session_start", bot),
        "errors_over_time": _kind_over(conn, axis, "error", bot),
        "tools": _names(conn, "tool_call", in_range),
        "error_types": _names(conn, "error", in_range),
        "models": _names(conn, "llm_call", in_range),
    }


def _empty_bot(name: str) -> dict[str, Any]:
    return {"bot": name, "_kinds": {}}


def _latency(conn: Connection, first: date, last: date,
             bot: str | None) -> dict[str, dict[int, int]]:
    la = latency_rollups.c
    stmt = (sa.select(la.bot, la.bucket, sa.func.sum(la["count"]).label("n"))
            .where(la.day >= first.isoformat(), la.day <= last.isoformat())
            .group_by(la.bot, la.bucket))
    if bot is not None:
        stmt = stmt.where(la.bot == bot)
    out: dict[str, dict[int, int]] = {}
    for row in conn.execute(stmt):
        out.setdefault(row.bot, {})[int(row.bucket)] = int(row.n)
    return out


def _kind_over(conn: Connection, axis: TimeAxis, kind: str,
               bot: str | None) -> dict[str, Any]:
    e = axis.events.c
    slot = axis.slot(axis.events)
    stmt = (sa.select(slot.label("slot"), e.bot.label("key"), sa.func.sum(e["count"]).label("n"))
            .where(*axis.within(axis.events), e.kind == kind).group_by(slot, e.bot))
    if bot is not None:
        stmt = stmt.where(e.bot == bot)
    return _series(axis, conn.execute(stmt))


def _names(conn: Connection, kind: str, in_range: list[sa.ColumnElement[bool]],
           limit: int = 20) -> list[dict[str, Any]]:
    e = event_rollups.c
    calls = sa.func.sum(e["count"])
    stmt = (sa.select(e.name, calls.label("n"), sa.func.sum(e.failures).label("failed"),
                      sa.func.sum(e.duration_ms).label("ms"))
            .where(*in_range, e.kind == kind).group_by(e.name)
            .order_by(calls.desc(), e.name).limit(limit))
    return [{"name": row.name, "count": int(row.n), "failures": int(row.failed or 0),
             "avg_ms": round(float(row.ms or 0) / int(row.n), 1) if row.n else None}
            for row in conn.execute(stmt)]


# ------------------------------------------------------------------ facets, live, metrics


def facets(conn: Connection) -> dict[str, list[str]]:
    """Known bots, platforms, providers and models (for filter menus), from the rollups."""
    bots = [row[0] for row in conn.execute(
        sa.select(event_rollups.c.bot).distinct().order_by(event_rollups.c.bot)) if row[0]]
    d = cost_daily.c
    found: dict[str, set[str]] = {"platform": set(), "provider": set(), "model": set()}
    for row in conn.execute(sa.select(d.platform, d.provider, d.model).distinct()):
        for name in found:
            if row._mapping[name]:
                found[name].add(row._mapping[name])
    return {"bots": bots, "platforms": sorted(found["platform"] | {"console", "discord",
                                                                  "slack"}),
            "providers": sorted(found["provider"]), "models": sorted(found["model"])}


def open_sessions(conn: Connection) -> dict[str, int]:
    """Open sessions per bot (an index lookup on status)."""
    s = sessions.c
    return {row.bot: int(row.n) for row in conn.execute(
        sa.select(s.bot, sa.func.count().label("n")).where(s.status == "open")
        .group_by(s.bot))}


def last_event_id(conn: Connection) -> int:
    """The newest event's id (0 for an empty store)."""
    return int(conn.execute(sa.select(sa.func.max(events.c.id))).scalar() or 0)


def tick(conn: Connection, now: float | None = None) -> dict[str, Any]:
    """What live pages refresh: open sessions, today's and this month's cost, newest event."""
    day = today(now)
    per_bot = open_sessions(conn)
    month = cost_totals(conn, *period_bounds("month", day))
    return {"open_sessions": sum(per_bot.values()), "open_by_bot": per_bot,
            "cost_today_usd": cost_totals(conn, day, day)["cost_usd"],
            "cost_month_usd": month["cost_usd"], "last_event_id": last_event_id(conn)}


def all_time(conn: Connection) -> dict[str, Any]:
    """Totals per bot since the store began: event counts per kind, tokens and cost."""
    e, d = event_rollups.c, cost_daily.c
    kinds: dict[str, dict[str, tuple[int, int]]] = {}
    for row in conn.execute(sa.select(e.bot, e.kind, sa.func.sum(e["count"]).label("n"),
                                      sa.func.sum(e.failures).label("failed"))
                            .group_by(e.bot, e.kind)):
        kinds.setdefault(row.bot, {})[row.kind] = (int(row.n or 0), int(row.failed or 0))
    costs = {row.bot: _money_row(row._mapping) for row in conn.execute(
        sa.select(d.bot, *_sums(cost_daily)).group_by(d.bot))}
    return {"kinds": kinds, "costs": costs}


def exporter_lag(conn: Connection) -> dict[str, dict[str, float]]:
    """Events each exporter has yet to deliver, from its cursor in the store (for a dashboard
    running apart from the bots, which cannot ask the exporters themselves)."""
    newest = last_event_id(conn)
    x = export_cursors.c
    return {row.exporter: {"lag_events": float(max(0, newest - int(row.last_event_id or 0)))}
            for row in conn.execute(sa.select(x.exporter, x.last_event_id))}
