"""The analytics page's quality section: time to first token per bot and model (streamed
calls), and satisfaction — the share of 👍 among rated turns — per bot and day."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from opencell.store.tables import events, sessions

MAX_CALLS = 20_000
"""The newest streamed calls of the range that the percentiles are computed from."""


def _epoch(day: date, *, end: bool = False) -> float:
    moment = datetime.combine(day + timedelta(days=1) if end else day, time(), tzinfo=UTC)
    return moment.timestamp()


def nearest_rank(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile of ``values`` by nearest rank (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def time_to_first_token(conn: Connection, *, first: date, last: date,
                        bot: str | None) -> list[dict[str, Any]]:
    """Per (bot, model): streamed calls and their time to first token p50/p95 (ms)."""
    e, s = events.c, sessions.c
    stmt = (sa.select(s.bot, e.data).join_from(events, sessions, e.session_seq == s.seq)
            .where(e.kind == "llm_call", e.ts >= _epoch(first), e.ts < _epoch(last, end=True),
                   e.data.like('%"time_to_first_token_ms"%'),
                   *([s.bot == bot] if bot is not None else []))
            .order_by(e.id.desc()).limit(MAX_CALLS))
    samples: dict[tuple[str, str], list[float]] = {}
    for row_bot, raw in conn.execute(stmt):
        try:
            data = json.loads(raw)
        except ValueError:
            continue
        value = data.get("time_to_first_token_ms") if isinstance(data, dict) else None
        if not isinstance(value, int | float):
            continue
        model = str(data.get("response_model") or data.get("model") or "?")
        samples.setdefault((row_bot, model), []).append(float(value))
    return [{"bot": key[0], "model": key[1], "calls": len(values),
             "p50_ms": nearest_rank(values, 50), "p95_ms": nearest_rank(values, 95)}
            for key, values in sorted(samples.items())]


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
