"""Budget alerts: what one says, its once-only key, and which thresholds have fired already.

Three kinds:

- ``threshold``: a scope's spend in a period reached ``alert_at`` × its limit (80 %, 100 % …);
- ``blocked``: an enforced limit stopped a model call (once per scope and period);
- ``spike``: a bot spent ``spike_factor`` times its usual hourly amount in the last hour.

Each is raised at most once per key — threshold alerts per (scope, period, limit,
threshold), the others per (scope, period) — and a stored alert is never raised again, so a
restart repeats nothing. When one call crosses several thresholds at once only the highest is
raised; the lower ones count as raised.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from opencell.budgets._store import StoredAlert
from opencell.budgets.limits import describe
from opencell.budgets.periods import ADJECTIVE, Period

AlertKind = Literal["threshold", "blocked", "spike"]


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert, ready to deliver."""

    kind: AlertKind
    scope: str
    """A scope label: ``global``, ``bot:support``, ``user:alice`` …"""
    window: str
    """The period it belongs to: ``day:2026-01-31`` …, or ``hour:2026-01-31T14`` (spikes)."""
    message: str
    spent_usd: float
    limit_id: str = ""
    limit_usd: float | None = None
    threshold: float | None = None
    baseline_usd: float | None = None
    """Spikes: the usual spend per hour."""
    enforced: bool = False
    session_id: str | None = None
    """The session whose model call raised it (its timeline gets the ``alert`` record)."""
    context: dict[str, str] = field(default_factory=dict)
    """bot, user_id, platform of that call."""
    ts: float = field(default_factory=time.time)

    @property
    def key(self) -> str:
        """What makes it once-only (the unique key in ``budget_alerts``)."""
        threshold = "" if self.threshold is None else f"{self.threshold:g}"
        return f"{self.kind}|{self.scope}|{self.window}|{self.limit_id}|{threshold}"

    @property
    def level(self) -> Literal["warning", "critical"]:
        if self.kind == "blocked" or (self.threshold is not None and self.threshold >= 1.0):
            return "critical"
        return "warning"

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape: the ``alert`` record, plain-JSON webhooks, the CLI and the API."""
        percent = (None if not self.limit_usd else round(100.0 * self.spent_usd
                                                         / self.limit_usd, 1))
        return {"kind": self.kind, "level": self.level, "scope": self.scope,
                "period": self.window.partition(":")[0],
                "period_start": self.window.partition(":")[2], "message": self.message,
                "spent_usd": round(self.spent_usd, 6), "limit_usd": self.limit_usd,
                "percent": percent, "threshold": self.threshold,
                "baseline_usd": self.baseline_usd, "enforced": self.enforced,
                "limit": self.limit_id or None, "session_id": self.session_id,
                **self.context,
                "ts": datetime.fromtimestamp(self.ts, UTC).isoformat(timespec="seconds")}


def money(value: float) -> str:
    """``$0.0495``, ``$12.50``: cents for amounts from a dollar, four decimals below."""
    return f"${value:,.2f}" if abs(value) >= 1 else f"${value:.4f}"


def threshold_message(scope: str, period: Period, spent: float, limit: float,
                      threshold: float) -> str:
    share = f"{100 * spent / limit:.0f}%"
    what = (f"{describe(scope)} spent {money(spent)} of its {money(limit)} "
            f"{ADJECTIVE[period]} budget")
    if threshold >= 1.0:
        return f"Budget reached: {what} ({share})."
    return f"Budget at {threshold:.0%}: {what} ({share})."


def blocked_message(scope: str, period: Period, spent: float, limit: float | None,
                    reason: str) -> str:
    if reason == "unpriced":
        return (f"Model calls blocked for {describe(scope)}: the model has no known price, "
                "so the enforced budget cannot be checked; add it to config/pricing.yaml.")
    return (f"Model calls blocked: {describe(scope)} has spent {money(spent)} of its "
            f"{money(limit or 0.0)} {ADJECTIVE[period]} budget; the next call would pass it.")


def spike_message(scope: str, last_hour: float, baseline: float) -> str:
    return (f"Spending spike: {describe(scope)} spent {money(last_hour)} in the last hour, "
            f"{last_hour / baseline:.1f}x its usual {money(baseline)}/h.")


class FiredAlerts:
    """Which alerts were raised already: threshold levels per limit instance, other keys."""

    def __init__(self) -> None:
        self._levels: dict[tuple[str, str, str], float] = {}
        self._once: set[tuple[str, str, str, str]] = set()

    def load(self, stored: Iterable[StoredAlert]) -> None:
        """Add the alerts found in the store (a restart must not raise them again)."""
        for alert in stored:
            if alert.kind == "threshold" and alert.threshold is not None:
                self.raise_level(alert.scope, alert.window, alert.limit_id, alert.threshold)
            else:
                self._once.add((alert.kind, alert.scope, alert.window, alert.limit_id))

    def level(self, scope: str, window: str, limit_id: str) -> float:
        """The highest threshold raised for this limit instance (0 = none)."""
        return self._levels.get((scope, window, limit_id), 0.0)

    def raise_level(self, scope: str, window: str, limit_id: str, threshold: float) -> None:
        key = (scope, window, limit_id)
        if threshold > self._levels.get(key, 0.0):
            self._levels[key] = threshold

    def first_time(self, kind: AlertKind, scope: str, window: str, limit_id: str = "") -> bool:
        """True (and remember it) when this blocked or spike alert was not raised before."""
        key = (kind, scope, window, limit_id)
        if key in self._once:
            return False
        self._once.add(key)
        return True

    def keep_only(self, windows: Iterable[str]) -> None:
        """Forget alerts of periods that are over (``windows``: the current ones)."""
        keep = set(windows)
        self._levels = {k: v for k, v in self._levels.items() if k[1] in keep}
        self._once = {k for k in self._once if k[2] in keep}
