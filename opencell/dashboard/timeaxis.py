"""The time axis of the analytics charts: UTC days, or UTC hours for short ranges, and the
rollup tables that answer each.

``auto`` (the default) draws a range of up to two days per hour and anything longer per
day; ``hour`` may be asked for ranges of up to 7 days (168 points a line). Days come from
the daily rollups (``latency_rollups``, ``event_rollups``, ``cost_daily``), hours from the
hourly ones (``latency_hourly``, ``event_hourly``, ``cost_hourly``); both are kept by the
write path, so a chart costs a few small GROUP BYs whatever the store's size.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

import sqlalchemy as sa

from opencell.store.tables import (
    cost_daily,
    cost_hourly,
    event_hourly,
    event_rollups,
    latency_hourly,
    latency_rollups,
)

Granularity = Literal["day", "hour"]
Asked = Literal["auto", "day", "hour"]

AUTO_HOURLY_DAYS = 2
"""``auto`` draws ranges of up to this many days per hour."""
HOURLY_MAX_DAYS = 7
"""The longest range drawn per hour (168 points a line; a longer one is read per day)."""


class RangeTooLong(ValueError):
    """Hours were asked for over a range longer than ``HOURLY_MAX_DAYS``."""


@dataclass(frozen=True, slots=True)
class TimeAxis:
    """The points of a chart (rollup keys, oldest first) and the tables holding them."""

    granularity: Granularity
    keys: tuple[str, ...]
    """``YYYY-MM-DD`` per day, ``YYYY-MM-DDTHH`` per hour (as the rollups name them)."""
    latency: sa.Table
    events: sa.Table
    costs: sa.Table

    def slot(self, table: sa.Table) -> sa.ColumnElement[str]:
        """``table``'s day or hour column."""
        return table.c[self.granularity]

    def within(self, table: sa.Table) -> list[sa.ColumnElement[bool]]:
        """``table``'s rows on this axis."""
        slot = self.slot(table)
        return [slot >= self.keys[0], slot <= self.keys[-1]]

    def labels(self) -> dict[str, Any]:
        """What a chart's JSON says about its x axis: ``granularity`` and ``days``
        (``YYYY-MM-DD``) or ``hours`` (``YYYY-MM-DDTHH:00Z``, the hour's start)."""
        if self.granularity == "day":
            return {"granularity": "day", "days": list(self.keys)}
        return {"granularity": "hour", "hours": [f"{key}:00Z" for key in self.keys]}


def time_axis(first: date, last: date, asked: Asked = "auto") -> TimeAxis:
    """The axis of ``first``..``last`` (UTC days, inclusive) at the asked granularity.

    Raises ``RangeTooLong`` when hours are asked for over more than ``HOURLY_MAX_DAYS``.
    """
    span = (last - first).days + 1
    days = [(first + timedelta(days=n)).isoformat() for n in range(span)]
    hourly = asked == "hour" or (asked == "auto" and span <= AUTO_HOURLY_DAYS)
    if not hourly:
        return TimeAxis("day", tuple(days), latency_rollups, event_rollups, cost_daily)
    if span > HOURLY_MAX_DAYS:
        raise RangeTooLong(f"per hour, the range may span at most {HOURLY_MAX_DAYS} days "
                           f"(this one spans {span}); pick a shorter range or per day")
    return TimeAxis("hour", tuple(f"{day}T{hour:02d}" for day in days for hour in range(24)),
                    latency_hourly, event_hourly, cost_hourly)
