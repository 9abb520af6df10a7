"""Trends over time for the analytics page: response time p50/p95, tokens, cost and the share
of failed turns, per UTC day or per UTC hour (``timeaxis.py``), overall and per bot or model.

Read from the rollups only (daily or hourly), like the rest of the page, so a month costs a
few small GROUP BYs on any store size. Each chart is ``{"granularity", "days" or "hours",
"unit", "series": [{"name", "values"}]}`` with ``None`` for a day or hour without data (the
line has a gap there, it does not drop to zero).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from opencell.dashboard.queries import percentile
from opencell.dashboard.timeaxis import TimeAxis

TOP_SERIES = 6
"""Lines per chart; smaller bots or models are left to their own filter."""

Histograms = dict[tuple[str, str], dict[int, int]]


def trends(conn: Connection, axis: TimeAxis, bot: str | None) -> dict[str, Any]:
    """Every trend chart of the analytics page over ``axis``."""
    histograms = _histograms(conn, axis, bot)  # read once: both latency charts use it
    return {"latency": _latency(axis, histograms), "latency_by_bot": _latency_by_bot(
                axis, histograms),
            "failed_turns": _failed_turns(conn, axis, bot),
            "tokens": _by_model(conn, axis, bot, "tokens"),
            "cost": _by_model(conn, axis, bot, "cost")}


def _chart(axis: TimeAxis, unit: str, series: dict[str, list[float | None]]) -> dict[str, Any]:
    return {**axis.labels(), "unit": unit,
            "series": [{"name": name, "values": values} for name, values in series.items()]}


def _histograms(conn: Connection, axis: TimeAxis, bot: str | None) -> Histograms:
    # (slot, bot, bucket) is the table's key: its rows are the histograms as they are, no
    # GROUP BY needed (an hourly week is some 10,000 rows: this is most of the chart's cost).
    la = axis.latency.c
    stmt = sa.select(axis.slot(axis.latency), la.bot, la.bucket, la["count"]).where(
        *axis.within(axis.latency))
    if bot is not None:
        stmt = stmt.where(la.bot == bot)
    out: Histograms = {}
    for slot, name, bucket, n in conn.execute(stmt):
        out.setdefault((slot, name), {})[int(bucket)] = int(n)
    return out


def _latency(axis: TimeAxis, histograms: Histograms) -> dict[str, Any]:
    per_slot: dict[str, dict[int, int]] = {}
    for (slot, _bot), histogram in histograms.items():
        merged = per_slot.setdefault(slot, {})
        for bucket, n in histogram.items():
            merged[bucket] = merged.get(bucket, 0) + n
    return _chart(axis, "ms", {
        "p50": [percentile(per_slot.get(k, {}), 50) for k in axis.keys],
        "p95": [percentile(per_slot.get(k, {}), 95) for k in axis.keys]})


def _latency_by_bot(axis: TimeAxis, histograms: Histograms) -> dict[str, Any]:
    volume: dict[str, int] = {}
    for (_slot, name), histogram in histograms.items():
        volume[name] = volume.get(name, 0) + sum(histogram.values())
    top = sorted(volume, key=lambda name: -volume[name])[:TOP_SERIES]
    return _chart(axis, "ms", {f"{name} p95": [percentile(histograms.get((k, name), {}), 95)
                                               for k in axis.keys] for name in top})


def _failed_turns(conn: Connection, axis: TimeAxis, bot: str | None) -> dict[str, Any]:
    """Failed turns as a share of turns: the same count the session list's failed turns,
    its failed status and the replay's "turn failed" come from (``message`` events that
    failed) — not error events, which a turn that was retried and answered can have."""
    e = axis.events.c
    slot = axis.slot(axis.events)
    stmt = (sa.select(slot.label("slot"), e.bot, sa.func.sum(e["count"]).label("n"),
                      sa.func.sum(e.failures).label("failed"))
            .where(*axis.within(axis.events), e.kind == "message")
            .group_by(slot, e.bot))
    if bot is not None:
        stmt = stmt.where(e.bot == bot)
    totals: dict[str, list[int]] = {}
    per_bot: dict[str, dict[str, list[int]]] = {}
    for row in conn.execute(stmt):
        n, failed = int(row.n or 0), int(row.failed or 0)
        total = totals.setdefault(row.slot, [0, 0])
        total[0] += n
        total[1] += failed
        per_bot.setdefault(row.bot, {})[row.slot] = [n, failed]

    def share(pair: list[int] | None) -> float | None:
        return None if not pair or not pair[0] else round(100.0 * pair[1] / pair[0], 2)

    series = {"all bots": [share(totals.get(k)) for k in axis.keys]}
    busiest = sorted(per_bot, key=lambda name: -sum(v[0] for v in per_bot[name].values()))
    if len(busiest) > 1:
        for name in busiest[:TOP_SERIES - 1]:
            series[name] = [share(per_bot[name].get(k)) for k in axis.keys]
    return _chart(axis, "%", series)


def _by_model(conn: Connection, axis: TimeAxis, bot: str | None, what: str) -> dict[str, Any]:
    c = axis.costs.c
    slot = axis.slot(axis.costs)
    value = (c.input_tokens + c.output_tokens) if what == "tokens" else c.cost_usd
    model = sa.func.coalesce(sa.func.nullif(c.model, ""), "(unknown)")
    stmt = (sa.select(slot.label("slot"), model.label("model"), sa.func.sum(value).label("v"))
            .where(*axis.within(axis.costs)).group_by(slot, model))
    if bot is not None:
        stmt = stmt.where(c.bot == bot)
    cells: dict[str, dict[str, float]] = {}
    for row in conn.execute(stmt):
        cells.setdefault(row.model, {})[row.slot] = float(row.v or 0)
    top = sorted(cells, key=lambda name: -sum(cells[name].values()))[:TOP_SERIES]
    return _chart(axis, "tokens" if what == "tokens" else "$",
                  {name: [cells[name].get(k) for k in axis.keys] for name in top})
