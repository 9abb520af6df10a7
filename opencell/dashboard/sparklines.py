"""Sparklines: the last 14 UTC days of a table row's turns, model calls or cost, as a small
inline SVG drawn on the server (analytics: per bot and per model; costs: per bot and model).

Only numbers computed here reach the SVG's geometry; the ``aria-label`` (and the ``title``
shown on hover) says the same numbers in words — range, total, busiest day, latest day and
each day's value — and is escaped by the template like any other text. Read from the daily
rollups, like the tables they sit in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from opencell.store.tables import cost_daily, event_rollups

DAYS = 14
WIDTH, HEIGHT = 72, 22


@dataclass(frozen=True, slots=True)
class Sparkline:
    """One row's line: SVG geometry and what it says."""

    label: str
    points: str
    """``x,y x,y …`` in the SVG's own units."""
    dot: tuple[float, float]
    """The latest day's point."""
    values: tuple[float, ...]
    width: int = WIDTH
    height: int = HEIGHT


def count_words(value: float) -> str:
    return f"{int(value):,}"


def money_words(value: float) -> str:
    return f"${value:,.2f}" if value >= 1 or value == 0 else f"${value:,.4f}"


def sparkline(days: Sequence[str], values: Sequence[float], *, what: str,
              say: Callable[[float], str]) -> Sparkline:
    """The line of ``values`` (one per day of ``days``, oldest first); ``what`` names them
    ("turns per day") and ``say`` writes one value in words."""
    top = max(values) if values else 0.0
    step = (WIDTH - 4) / max(1, len(values) - 1)

    def y(value: float) -> float:
        return round(HEIGHT - 2 - (value / top * (HEIGHT - 4) if top > 0 else 0.0), 1)

    points = [(round(2 + n * step, 1), y(v)) for n, v in enumerate(values)]
    busiest = max(range(len(values)), key=lambda n: (values[n], n)) if values else 0
    label = (f"{what.capitalize()}, {days[0]} to {days[-1]}: total {say(sum(values))}; "
             f"highest {say(top)} on {days[busiest]}; latest {say(values[-1])}. "
             f"Each day: {', '.join(say(v) for v in values)}.") if values else what
    return Sparkline(label, " ".join(f"{x},{yy}" for x, yy in points),
                     points[-1] if points else (0.0, 0.0), tuple(values))


def last_days(last: date) -> list[str]:
    """The ``DAYS`` UTC days ending with ``last``."""
    return [(last - timedelta(days=n)).isoformat() for n in range(DAYS - 1, -1, -1)]


def _lines(days: list[str], rows: Iterable[Any], *, what: str,
           say: Callable[[float], str]) -> dict[str, Sparkline]:
    index = {day: n for n, day in enumerate(days)}
    values: dict[str, list[float]] = {}
    for row in rows:
        values.setdefault(row.key or "", [0.0] * len(days))[index[row.day]] += float(row.n or 0)
    return {key: sparkline(days, line, what=what, say=say) for key, line in values.items()}


def _events(conn: Connection, days: list[str], kind: str, by: str, bot: str | None) -> Any:
    e = event_rollups.c
    stmt = (sa.select(e.day, e[by].label("key"), sa.func.sum(e["count"]).label("n"))
            .where(e.day >= days[0], e.day <= days[-1], e.kind == kind).group_by(e.day, e[by]))
    return conn.execute(stmt if bot is None else stmt.where(e.bot == bot))


def _costs(conn: Connection, days: list[str], by: str) -> Any:
    d = cost_daily.c
    return conn.execute(sa.select(d.day, d[by].label("key"), sa.func.sum(d.cost_usd).label("n"))
                        .where(d.day >= days[0], d.day <= days[-1]).group_by(d.day, d[by]))


def analytics_lines(conn: Connection, last: date,
                    bot: str | None) -> dict[str, dict[str, Sparkline]]:
    """Per bot: turns per day; per model (``provider:model``, as the Models table names
    them): model calls per day; over the 14 days ending ``last``."""
    days = last_days(last)
    return {"bots": _lines(days, _events(conn, days, "message", "bot", bot),
                           what="turns per day", say=count_words),
            "models": _lines(days, _events(conn, days, "llm_call", "name", bot),
                             what="model calls per day", say=count_words)}


def cost_lines(conn: Connection, last: date) -> dict[str, dict[str, Sparkline]]:
    """Cost per day per bot and per model over the 14 days ending ``last``."""
    days = last_days(last)
    return {by: _lines(days, _costs(conn, days, by), what="cost per day", say=money_words)
            for by in ("bot", "model")}
