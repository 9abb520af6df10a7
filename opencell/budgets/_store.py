"""What budgets read from and write to the observability store: spend, spend history, alerts.

Spend over a window comes from the daily cost rollups for the whole UTC days inside it, and
from the ``llm_call`` events themselves for the partial UTC days at its edges (only when
``budgets.timezone`` is not UTC), so a window is exact in any time zone while a month still
reads about thirty rollup days rather than every call.

Raised alerts live in ``budget_alerts`` (schema step 5), one row per alert key: inserting a
key that exists fails, which is how a restarted process (or a second process sharing the
store) knows an alert was already raised.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import Connection

from opencell.budgets.periods import utc_days
from opencell.store.tables import budget_alerts, cost_rollups, events, sessions

REPLAY = "replay"
"""The platform of replays (``opencell.replay``), which budgets do not count."""

if TYPE_CHECKING:
    from opencell.store import Store


@dataclass(frozen=True, slots=True)
class SpendRow:
    """What one (bot, user, platform) spent in a window."""

    bot: str
    user: str
    platform: str
    cost_usd: float
    unpriced_calls: int


@dataclass(frozen=True, slots=True)
class StoredAlert:
    """One row of ``budget_alerts``."""

    kind: str
    scope: str
    window: str
    limit_id: str
    threshold: float | None
    ts: float
    session_id: str | None
    data: dict[str, Any]


class BudgetStore:
    """Budget queries over a :class:`~opencell.store.store.Store`'s database."""

    def __init__(self, store: Store) -> None:
        self._store = store

    # ------------------------------------------------------------ spend

    def spend(self, start: float, end: float) -> list[SpendRow]:
        """Spend per (bot, user, platform) over ``[start, end)`` (epoch seconds); replays
        (platform ``replay``) are left out: their spend is their own scope (``--max-usd``)."""
        whole, edges = utc_days(start, end)
        totals: dict[tuple[str, str, str], list[float]] = {}
        r = cost_rollups.c
        with self._store.reading() as conn:
            if whole:
                rows = conn.execute(
                    sa.select(r.bot, r.user_id, r.platform, sa.func.sum(r.cost_usd),
                              sa.func.sum(r.unpriced_calls))
                    .where(r.day >= whole[0], r.day <= whole[-1], r.platform != REPLAY)
                    .group_by(r.bot, r.user_id, r.platform))
                for bot, user, platform, cost, unpriced in rows:
                    into = totals.setdefault((bot or "", user or "", platform or ""), [0.0, 0])
                    into[0] += float(cost or 0.0)
                    into[1] += int(unpriced or 0)
            for lo, hi in edges:
                for bot, user, platform, _ts, cost in self._calls(conn, lo, hi):
                    into = totals.setdefault((bot, user, platform), [0.0, 0])
                    if cost is None:
                        into[1] += 1
                    else:
                        into[0] += cost
        return [SpendRow(bot, user, platform, cost, int(unpriced))
                for (bot, user, platform), (cost, unpriced) in totals.items()]

    def first_call_ts(self) -> float | None:
        """When the earliest stored model call happened (None: there is none)."""
        with self._store.reading() as conn:
            first = conn.execute(sa.select(sa.func.min(events.c.ts))
                                 .where(events.c.kind == "llm_call")).scalar()
        return None if first is None else float(first)

    def calls(self, start: float, end: float) -> list[tuple[str, str, str, float, float | None]]:
        """Every model call in ``[start, end)``: (bot, user, platform, ts, cost or None)."""
        with self._store.reading() as conn:
            return self._calls(conn, start, end)

    @staticmethod
    def _calls(conn: Connection, start: float, end: float
               ) -> list[tuple[str, str, str, float, float | None]]:
        e, s = events.c, sessions.c
        stmt = (sa.select(s.bot, s.user_id, s.platform, e.ts, e.data)
                .join_from(events, sessions, e.session_seq == s.seq)
                .where(e.kind == "llm_call", e.ts >= start, e.ts < end,
                       sa.func.coalesce(s.platform, "") != REPLAY))
        out = []
        for bot, user, platform, ts, data in conn.execute(stmt):
            has_usage, cost = _cost(data)
            if has_usage:
                out.append((bot or "", user or "", platform or "", float(ts), cost))
        return out

    # ------------------------------------------------------------ alerts

    def claim(self, alert_key: str, *, kind: str, scope: str, window: str, limit_id: str,
              threshold: float | None, ts: float, session_id: str | None,
              data: dict[str, Any]) -> bool:
        """Store a raised alert; False when its key was stored before (already raised)."""
        try:
            with self._store.writing() as conn:
                conn.execute(budget_alerts.insert().values(
                    alert_key=alert_key[:1000], kind=kind, scope=scope[:400], period_key=window,
                    limit_id=limit_id[:300], threshold=threshold, ts=ts,
                    session_id=session_id, data=json.dumps(data, default=str)))
        except sa.exc.IntegrityError:
            return False
        return True

    def alerts(self, since: float, limit: int = 200) -> list[StoredAlert]:
        """Alerts raised at or after ``since``, newest first."""
        a = budget_alerts.c
        stmt = (sa.select(a.kind, a.scope, a.period_key, a.limit_id, a.threshold, a.ts,
                          a.session_id, a.data)
                .where(a.ts >= since).order_by(a.ts.desc(), a.id.desc()).limit(limit))
        with self._store.reading() as conn:
            rows = conn.execute(stmt).all()
        out = []
        for kind, scope, window, limit_id, threshold, ts, session_id, data in rows:
            try:
                parsed = json.loads(data or "{}")
            except ValueError:
                parsed = {}
            out.append(StoredAlert(kind, scope, window, limit_id,
                                   None if threshold is None else float(threshold), float(ts),
                                   session_id, parsed if isinstance(parsed, dict) else {}))
        return out


def _cost(data: str | None) -> tuple[bool, float | None]:
    """(has usage, cost or None when unpriced). A call that failed before usage came back
    has no ``cost_usd`` at all: it is neither priced nor unpriced."""
    try:
        parsed = json.loads(data or "{}")
    except ValueError:
        return False, None
    if not isinstance(parsed, dict) or "cost_usd" not in parsed:
        return False, None
    cost = parsed["cost_usd"]
    return True, float(cost) if isinstance(cost, int | float) else None
