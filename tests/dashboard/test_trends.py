# ruff: noqa: F811 - the page fixture comes from test_browser and is a parameter here
"""The analytics page's trends: per-day response time, failed turns, tokens and cost per model,
read from the rollups of real recorded conversations, and drawn by uPlot in Chromium."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from opencell.dashboard.trends import trends
from opencell.store.store import Store
from tests.dashboard.conftest import SONNET, ServerThread
from tests.dashboard.test_browser import browser, page  # noqa: F401 - fixtures


def test_trends_of_recorded_conversations(conversations: dict[str, str],
                                          isolated_store: str) -> None:
    today = datetime.now(UTC).date()
    store = Store.open(isolated_store)
    try:
        with store.reading() as conn:
            found = trends(conn, today - timedelta(days=6), today, None)
    finally:
        store.close()
    assert found["latency"]["days"][-1] == today.isoformat()
    p50, p95 = (s["values"] for s in found["latency"]["series"])
    assert p50[:-1] == [None] * 6 and p95[-1] is not None and p95[-1] >= p50[-1]
    # Five turns (agent 2; support: xss, unpriced, failed), one failed: 20 %; support 1 of 3.
    failed = {s["name"]: s["values"][-1] for s in found["failed_turns"]["series"]}
    assert failed["all bots"] == 20.0 and failed["helper"] == 0.0 and failed["support"] == 33.33
    tokens = {s["name"]: s["values"][-1] for s in found["tokens"]["series"]}
    assert tokens[SONNET] == 1500 + 800 + 2500 + 120 + 1500 + 800 + 2500 + 120 + 300 + 60
    cost = {s["name"]: s["values"][-1] for s in found["cost"]["series"]}
    assert cost[SONNET] > 0.05


def test_the_analytics_page_draws_the_trends(page: Any, served: ServerThread) -> None:
    page.goto(served.url + "/analytics")
    page.wait_for_load_state("networkidle")
    section = page.locator("[aria-label=trends]")
    assert section.locator("[data-trend]").count() == 5
    assert section.locator("[data-trend] canvas").count() == 5  # every chart was drawn
    legend = section.locator("[data-trend=tokens] .u-legend").inner_text()
    assert SONNET in legend
    with httpx.Client(base_url=served.url) as client:
        assert client.get("/analytics?bot=helper").status_code == 200

