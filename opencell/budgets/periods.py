"""Budget periods: the day, week (from Monday) or month holding a moment, in a time zone.

A :class:`Window` is one concrete period, e.g. the 31 January 2026 in Europe/Berlin: its key
(``day:2026-01-31``) names it in tallies and stored alerts, and its bounds are epoch seconds,
so a window that starts at local midnight maps onto the UTC-day cost rollups exactly (UTC)
or with a partial UTC day at each edge (other zones; see ``_store.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from opencell.calendar import ADJECTIVE, PERIODS, Period, first_day, next_first_day

__all__ = ["ADJECTIVE", "PERIODS", "Period", "Window", "utc_days", "window_of"]


@dataclass(frozen=True, slots=True)
class Window:
    """One concrete period: ``[start, end)`` in epoch seconds."""

    period: Period
    first_day: date
    """The local date the period starts on."""
    start: float
    end: float

    @property
    def key(self) -> str:
        """``day:2026-01-31``, ``week:2026-01-26`` (its Monday) or ``month:2026-01``."""
        text = self.first_day.isoformat()
        return f"{self.period}:{text[:7] if self.period == 'month' else text}"

    def contains(self, ts: float) -> bool:
        return self.start <= ts < self.end


def window_of(period: Period, ts: float, zone: ZoneInfo) -> Window:
    """The window of ``period`` holding ``ts`` (epoch seconds) in ``zone``."""
    local = datetime.fromtimestamp(ts, zone).date()
    first = first_day(period, local)
    following = next_first_day(period, first)
    return Window(period, first, _midnight(first, zone), _midnight(following, zone))


def _midnight(day: date, zone: ZoneInfo) -> float:
    # Local midnight; where a zone skips midnight (DST at 00:00) fromtimestamp/replace still
    # yields the instant the local day begins to within that gap.
    return datetime(day.year, day.month, day.day, tzinfo=zone).timestamp()


def utc_days(start: float, end: float) -> tuple[list[str], list[tuple[float, float]]]:
    """Split ``[start, end)`` into whole UTC days (``YYYY-MM-DD``) and the partial edges.

    The whole days are read from the daily cost rollups; the edges (at most two, none for a
    UTC window) from the events themselves.
    """
    whole: list[str] = []
    edges: list[tuple[float, float]] = []
    day = datetime.fromtimestamp(start, UTC).date()
    while True:
        day_start = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
        if day_start >= end:
            break
        day_end = day_start + 86_400.0
        lo, hi = max(start, day_start), min(end, day_end)
        if lo == day_start and hi == day_end:
            whole.append(day.isoformat())
        elif lo < hi:
            edges.append((lo, hi))
        day += timedelta(days=1)
    return whole, edges
