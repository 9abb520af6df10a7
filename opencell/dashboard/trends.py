"""Trends over time for the analytics page: response time p50/p95, tokens, cost and the share
of failed turns, per UTC day, overall and per bot or model.

Read from the rollups only (``latency_rollups``, ``cost_daily``, ``event_rollups``), like the
rest of the page, so a month costs a few small GROUP BYs on any store size. Each chart is
``{"days": [...], "unit": ..., "series": [{"name", "values"}]}`` with ``None`` for a day
without data (the line has a gap there, it does not drop to zero).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from opencell.dashboard.queries import days_between, percentile
from opencell.store.tables import cost_daily, event_rollups, latency_rollups

TOP_SERIES = 6
"""Lines per chart; smaller bots or models are left to their own filter."""


def trends(conn: Connection, first: date, last: date, bot: str | None) -> dict[str, Any]:
    """Every trend chart of the analytics page for days ``first``..``last``."""
    days = days_between(first, last)
    histograms = _histograms(conn, days, bot)  # read once: both latency charts use it
    return {"latency": _latency(histograms, days), "latency_by_bot": _latency_by_bot(
                histograms, days),
            "failed_turns": _failed_turns(conn, days, bot),
            "tokens": _by_model(conn, days, bot, "tokens"),
            "cost": _by_model(conn, days, bot, "cost")}


def _chart(days: list[str], unit: str, series: dict[str, list[float | None]]) -> dict[str, Any]:
    return {"days": days, "unit": unit,
            "series": [{"name": name, "values": values} for name, values in series.items()]}


def _histograms(conn: Connection, days: list[str], bot: str | None
                ) -> dict[tuple[str, str], dict[int, int]]:
    la = latency_rollups.c
    stmt = (sa.select(la.day, la.bot, la.bucket, sa.func.sum(la["count"]).label("n"))
            .where(la.day >= days[0], la.day <= days[-1]).group_by(la.day, la.bot, la.bucket))
    if bot is not None:
        stmt = stmt.where(la.bot == bot)
    out: dict[tuple[str, str], dict[int, int]] = {}
    for row in conn.execute(stmt):
        out.setdefault((row.day, row.bot), {})[int(row.bucket)] = int(row.n)
    return out


Histograms = dict[tuple[str, str], dict[int, int]]


def _latency(histograms: Histograms, days: list[str]) -> dict[str, Any]:
    per_day: dict[str, dict[int, int]] = {}
    for (day, _bot), histogram in histograms.items():
        merged = per_day.setdefault(day, {})
        for bucket, n in histogram.items():
            merged[bucket] = merged.get(bucket, 0) + n
    return _chart(days, "ms", {
        "p50": [percentile(per_day.get(d, {}), 50) for d in days],
        "p95": [percentile(per_day.get(d, {}), 95) for d in days]})


def _latency_by_bot(histograms: Histograms, days: list[str]) -> dict[str, Any]:
    volume: dict[str, int] = {}
    for (_day, name), histogram in histograms.items():
        volume[name] = volume.get(name, 0) + sum(histogram.values())
    top = sorted(volume, key=lambda name: -volume[name])[:TOP_SERIES]
    return _chart(days, "ms", {f"{name} p95": [percentile(histograms.get((d, name), {}), 95)
                                               for d in days] for name in top})


def _failed_turns(conn: Connection, days: list[str], bot: str | None) -> dict[str, Any]:
    """Failed turns as a share of turns, per day: the same count the session list's failed
    status and the replay's "turn failed" come from (``message`` events that failed)."""
    e = event_rollups.c
    stmt = (sa.select(e.day, e.bot, sa.func.sum(e["count"]).label("n"),
                      sa.func.sum(e.failures).label("failed"))
            .where(e.day >= days[0], e.day <= days[-1], e.kind == "message")
            .group_by(e.day, e.bot))
    if bot is not None:
        stmt = stmt.where(e.bot == bot)
    totals: dict[str, list[int]] = {}
    per_bot: dict[str, dict[str, list[int]]] = {}
    for row in conn.execute(stmt):
        n, failed = int(row.n or 0), int(row.failed or 0)
        total = totals.setdefault(row.day, [0, 0])
        total[0] += n
        total[1] += failed
        per_bot.setdefault(row.bot, {})[row.day] = [n, failed]

    def share(pair: list[int] | None) -> float | None:
        return None if not pair or not pair[0] else round(100.0 * pair[1] / pair[0], 2)

    series = {"all bots": [share(totals.get(d)) for d in days]}
    busiest = sorted(per_bot, key=lambda name: -sum(v[0] for v in per_bot[name].values()))
    if len(busiest) > 1:
        for name in busiest[:TOP_SERIES - 1]:
            series[name] = [share(per_bot[name].get(d)) for d in days]
    return _chart(days, "%", series)


def _by_model(conn: Connection, days: list[str], bot: str | None, what: str) -> dict[str, Any]:
    c = cost_daily.c
    value = (c.input_tokens + c.output_tokens) if what == "tokens" else c.cost_usd
    model = sa.func.coalesce(sa.func.nullif(c.model, ""), "(unknown)")
    stmt = (sa.select(c.day, model.label("model"), sa.func.sum(value).label("v"))
            .where(c.day >= days[0], c.day <= days[-1]).group_by(c.day, model))
    if bot is not None:
        stmt = stmt.where(c.bot == bot)
    cells: dict[str, dict[str, float]] = {}
    for row in conn.execute(stmt):
        cells.setdefault(row.model, {})[row.day] = float(row.v or 0)
    top = sorted(cells, key=lambda name: -sum(cells[name].values()))[:TOP_SERIES]
    return _chart(days, "tokens" if what == "tokens" else "$",
                  {name: [cells[name].get(d) for d in days] for name in top})
