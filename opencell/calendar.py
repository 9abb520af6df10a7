"""Periods on the calendar: the day, ISO week (from Monday) or month holding a moment.

The one place that knows where a week or a month starts. Budgets (in any time zone), the cost
rollups and every cost report (UTC) all ask here.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from typing import Literal

Period = Literal["day", "week", "month"]
PERIODS: tuple[Period, ...] = ("day", "week", "month")
ADJECTIVE: dict[Period, str] = {"day": "daily", "week": "weekly", "month": "monthly"}

CostDimension = Literal["bot", "user", "platform", "provider", "model"]
"""What a cost breakdown can be grouped by."""
DIMENSIONS: tuple[CostDimension, ...] = ("bot", "user", "platform", "provider", "model")


def first_day(period: Period, day: date) -> date:
    """The date ``period`` starts on, for the period holding ``day``."""
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def next_first_day(period: Period, first: date) -> date:
    """The first day of the period after the one starting on ``first``."""
    if period == "day":
        return first + timedelta(days=1)
    if period == "week":
        return first + timedelta(days=7)
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)


def period_bounds(period: Period, day: date) -> tuple[date, date]:
    """First and last day of the period holding ``day``."""
    first = first_day(period, day)
    return first, next_first_day(period, first) - timedelta(days=1)


def utc_date(ts: float) -> date:
    """The UTC calendar day of ``ts`` (epoch seconds)."""
    return datetime.fromtimestamp(ts, UTC).date()


_days: dict[int, str] = {}


def utc_day(ts: float) -> str:
    """``YYYY-MM-DD`` of ``ts`` in UTC (memoised: the write path asks for every event)."""
    key = int(ts // 86400)
    day = _days.get(key)
    if day is None:
        day = _days[key] = time.strftime("%Y-%m-%d", time.gmtime(key * 86400))
    return day


_hours: dict[int, str] = {}


def hour_key(hour: int) -> str:
    """``YYYY-MM-DDTHH`` (UTC) of the hour ``hour`` hours after the epoch (``ts // 3600``):
    how the hourly rollups name an hour (memoised like ``utc_day``)."""
    key = _hours.get(hour)
    if key is None:
        key = _hours[hour] = f"{utc_day(hour * 3600.0)}T{hour % 24:02d}"
    return key
