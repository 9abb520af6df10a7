"""The analytics page's quality section: time to first token per bot and model (streamed
calls), and satisfaction — the share of 👍 among rated turns — per bot and day."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from opencell.dashboard.queries import percentile
from opencell.store.tables import ttft_rollups


def _epoch(day: date, *, end: bool = False) -> float:
    moment = datetime.combine(day + timedelta(days=1) if end else day, time(), tzinfo=UTC)
    return moment.timestamp()


def time_to_first_token(conn: Connection, *, first: date, last: date,
                        bot: str | None) -> list[dict[str, Any]]:
    """Per (bot, model answering): streamed calls and their time to first token p50/p95 (ms,
    within 5 %), from the ``ttft_rollups`` histogram of the UTC days ``first``..``last``."""
    t = ttft_rollups.c
    stmt = (sa.select(t.bot, t.model, t.bucket, sa.func.sum(t["count"]).label("n"))
            .where(t.day >= first.isoformat(), t.day <= last.isoformat(),
                   *([t.bot == bot] if bot is not None else []))
            .group_by(t.bot, t.model, t.bucket))
    histograms: dict[tuple[str, str], dict[int, int]] = {}
    for row in conn.execute(stmt):
        histograms.setdefault((row.bot, row.model), {})[int(row.bucket)] = int(row.n)
    return [{"bot": key[0], "model": key[1], "calls": sum(histogram.values()),
             "p50_ms": percentile(histogram, 50), "p95_ms": percentile(histogram, 95)}
            for key, histogram in sorted(histograms.items())]


def satisfaction_summary(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per bot over the whole range: 👍 and 👎 turns and the share of 👍."""
    totals: dict[str, list[int]] = {}
    for row in rows:
        counts = totals.setdefault(row["bot"], [0, 0])
        counts[0] += row["good"]
        counts[1] += row["bad"]
    return [{"bot": name, "good": good, "bad": bad,
             "satisfaction": round(good / (good + bad), 4) if good + bad else None}
            for name, (good, bad) in sorted(totals.items())]


def range_start(first: date) -> float:
    """The range's first moment, epoch seconds (UTC)."""
    return _epoch(first)
