"""The dashboard's budgets: ``GET /api/budgets``, the budgets page and the active-alerts banner.

The numbers come from a :class:`~opencell.budgets.BudgetLedger` — the running App's own (live
tallies, calls in flight included) under ``opencell run --dashboard``, or a fresh read-only
one over the store per request under ``opencell dashboard`` — through a *budget source*: a
callable returning the ledger, or None when no budgets are configured.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ConfigDict, Field

from opencell.guard import guard

if TYPE_CHECKING:
    from opencell.budgets import BudgetLedger
    from opencell.config import BotConfig, BudgetsConfig
    from opencell.store import Store

log = logging.getLogger("opencell.dashboard")

BudgetSource = Callable[[], "BudgetLedger | None"]
"""Returns the ledger to report (None: no budgets configured)."""

router = APIRouter()

CACHE_SECONDS = 2.0
"""How long ``opencell dashboard`` reuses what it read about budgets."""

def store_budgets(config: BudgetsConfig, store: Store,
                  bots: list[BotConfig] | None = None) -> BudgetSource | None:
    """A source for ``opencell dashboard``: a read-only ledger over the store per request."""
    if not (config.limits or any(bot.budget is not None for bot in bots or [])):
        return None
    import threading
    import time

    from opencell.budgets import BudgetLedger

    lock = threading.Lock()
    cached: list[tuple[float, BudgetLedger]] = []

    def ledger() -> BudgetLedger:
        # One read of the store serves the page and its banner (and a burst of requests).
        with lock:
            if cached and time.monotonic() - cached[0][0] < CACHE_SECONDS:
                return cached[0][1]
            fresh = BudgetLedger(config, bots or [], store=store, sync_interval=0,
                                 watch_spikes=False)
            cached[:] = [(time.monotonic(), fresh)]
            return fresh

    return ledger


def install(app: FastAPI, templates: Jinja2Templates, source: BudgetSource | None) -> None:
    """Add the budgets API, page and banner to the dashboard app."""
    app.state.budgets = source
    app.include_router(router)

    def active_alerts() -> list[dict[str, Any]]:
        ledger = source() if source is not None else None
        if ledger is None:
            return []
        with guard("budget banner", logger=log):
            return [a for a in ledger.alerts(days=31) if a.get("active")]
        return []

    templates.env.globals["budget_banner"] = active_alerts


class BudgetUsage(BaseModel):
    """Spend against one limit for one scope in its current period."""

    model_config = ConfigDict(extra="allow")
    limit: str = Field(description="The limit, e.g. user:*/day/1")
    scope: str = Field(description="global, bot:NAME, user:ID, platform:NAME or "
                                   "bot:NAME/user:ID (user:* = nobody spent yet)")
    period: str = Field(description="day, week or month")
    period_start: str
    resets_at: str
    limit_usd: float
    spent_usd: float
    reserved_usd: float = Field(description="Worst cases of model calls in flight")
    remaining_usd: float
    percent: float
    enforce: bool
    alert_at: list[float]
    unpriced_calls: int


class BudgetAlertOut(BaseModel):
    """A raised alert (threshold, blocked or spike); ``active`` while its period runs."""

    model_config = ConfigDict(extra="allow")
    kind: str
    level: str
    scope: str
    message: str
    ts: str
    active: bool


class BudgetsOut(BaseModel):
    """Budget usage per scope and the alerts of the last ``days`` days."""

    configured: bool
    timezone: str | None
    usage: list[BudgetUsage]
    alerts: list[BudgetAlertOut]


def report(request: Request, days: float = 7.0) -> BudgetsOut:
    source: BudgetSource | None = request.app.state.budgets
    ledger = source() if source is not None else None
    if ledger is None:
        return BudgetsOut(configured=False, timezone=None, usage=[], alerts=[])
    return BudgetsOut.model_validate({
        "configured": True, "timezone": ledger.config.timezone, "usage": ledger.usage(),
        "alerts": ledger.alerts(days=days)})


@router.get("/api/budgets", response_model=BudgetsOut)
def budgets_api(request: Request,
                days: Annotated[float, Query(ge=0, le=400,
                                             description="Alerts of the last DAYS days")] = 7.0,
                ) -> BudgetsOut:
    """Spend against every budget limit in its current period, and recent alerts."""
    return report(request, days)


@router.get("/budgets", include_in_schema=False)
def budgets_page(request: Request,
                 days: Annotated[float, Query(ge=0, le=400)] = 7.0) -> Response:
    from opencell.dashboard.pages import render

    data = report(request, days)
    usage = [row.model_dump() for row in data.usage]
    periods = [(p, [row for row in usage if row["period"] == p])
               for p in ("day", "week", "month")]
    return render(request, "budgets.html", {
        "b": data, "periods": [(p, rows) for p, rows in periods if rows],
        "alerts": [a.model_dump() for a in data.alerts], "days": days,
        "active": [a.model_dump() for a in data.alerts if a.active]})
