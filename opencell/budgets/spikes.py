"""Spike detection: a scope's spend in the last hour against its trailing hourly baseline.

Spend is bucketed per minute (for the sliding last hour) and per clock hour (for the
baseline). The baseline is the average spend per hour over the ``baseline_hours`` whole
clock hours before the one the last hour starts in — counting only hours since spend history
began, so a fresh install does not compare its second hour against 23 empty ones — and needs
at least ``min_history_hours`` of them. A spike is a last hour of at least ``factor`` times the
baseline and at least ``floor_usd`` (default 10 cents: small change is not worth an alert).
``check`` reports a spike once, when it starts; the scope must fall back below the bar before
a new one is reported. Adding and checking cost a few dozen dictionary lookups.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Spike:
    """A detected spike: the last hour's spend and the usual spend per hour."""

    last_hour_usd: float
    baseline_usd: float
    hour: int
    """The clock hour (epoch hours) it started in; with the scope, it names the spike."""


class SpikeDetector:
    """Hourly spend history per scope (a bot), with ``check`` for a spike now."""

    def __init__(self, factor: float, *, baseline_hours: int = 24, min_history_hours: int = 3,
                 floor_usd: float = 0.10, since: float | None = None) -> None:
        self.factor = factor
        self.baseline_hours = baseline_hours
        self.min_history_hours = min_history_hours
        self.floor_usd = floor_usd
        self.since = since
        """When spend history begins (epoch seconds); None = at the first spend added."""
        self._minutes: dict[str, dict[int, float]] = {}
        self._hours: dict[str, dict[int, float]] = {}
        self._spiking: set[str] = set()

    def add(self, scope: str, ts: float, usd: float) -> None:
        """Count ``usd`` spent by ``scope`` at ``ts``."""
        if self.since is None or ts < self.since:
            self.since = ts
        minute = int(ts // 60)
        minutes = self._minutes.setdefault(scope, {})
        minutes[minute] = minutes.get(minute, 0.0) + usd
        hours = self._hours.setdefault(scope, {})
        hour = minute // 60
        hours[hour] = hours.get(hour, 0.0) + usd
        if len(minutes) > 120:
            for old in [m for m in minutes if m <= minute - 60]:
                del minutes[old]
        if len(hours) > 2 * self.baseline_hours + 4:
            for old in [h for h in hours if h < hour - self.baseline_hours - 2]:
                del hours[old]

    def check(self, scope: str, now: float) -> Spike | None:
        """The spike ``scope`` entered at ``now``; None when it is not in one, or was in it
        already at the previous check."""
        spike = self._measure(scope, now)
        if spike is None:
            self._spiking.discard(scope)
            return None
        if scope in self._spiking:
            return None
        self._spiking.add(scope)
        return spike

    def _measure(self, scope: str, now: float) -> Spike | None:
        if self.since is None:
            return None
        minute = int(now // 60)
        minutes = self._minutes.get(scope, {})
        last_hour = sum(minutes.get(m, 0.0) for m in range(minute - 59, minute + 1))
        if last_hour < self.floor_usd:
            return None
        first = (minute - 59) // 60
        history_starts = int(self.since // 3600)
        counted = [h for h in range(first - self.baseline_hours, first) if h >= history_starts]
        if len(counted) < self.min_history_hours:
            return None
        hours = self._hours.get(scope, {})
        baseline = sum(hours.get(h, 0.0) for h in counted) / len(counted)
        if baseline <= 0.0 or last_hour < self.factor * baseline:
            return None
        return Spike(last_hour, baseline, minute // 60)
