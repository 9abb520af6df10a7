# ruff: noqa: F811 - the page fixture comes from test_browser and is a parameter here
"""The analytics page's trends: per-day response time, failed turns, tokens and cost per model,
read from the rollups of real recorded conversations, and drawn by uPlot in Chromium."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from opencell.dashboard.timeaxis import time_axis
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
            found = trends(conn, time_axis(today - timedelta(days=6), today), None)
    finally:
        store.close()
    assert found["latency"]["granularity"] == "day"
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



def test_a_short_range_is_drawn_per_hour(conversations: dict[str, str],
                                         isolated_store: str) -> None:
    now = datetime.now(UTC)
    today = now.date()
    store = Store.open(isolated_store)
    try:
        with store.reading() as conn:
            hourly = trends(conn, time_axis(today, today), None)
            daily = trends(conn, time_axis(today, today, "day"), None)
            two_days = time_axis(today - timedelta(days=1), today)
    finally:
        store.close()
    assert two_days.granularity == "hour" and len(two_days.keys) == 48
    tokens = hourly["tokens"]
    assert tokens["granularity"] == "hour" and len(tokens["hours"]) == 24
    assert tokens["hours"][0] == f"{today.isoformat()}T00:00Z"
    assert tokens["hours"][-1] == f"{today.isoformat()}T23:00Z"
    # The conversations were recorded a moment ago: their hour holds the day's numbers.
    for key in ("tokens", "cost"):
        per_hour = {s["name"]: s["values"] for s in hourly[key]["series"]}
        per_day = {s["name"]: s["values"][-1] for s in daily[key]["series"]}
        assert per_hour.keys() == per_day.keys()
        for name, values in per_hour.items():
            recorded = [n for n, v in enumerate(values) if v is not None]
            assert recorded and set(recorded) <= {now.hour - 1, now.hour}, (name, recorded)
            assert sum(values[n] for n in recorded) == pytest.approx(per_day[name])
    p95 = hourly["latency"]["series"][1]["values"]
    assert p95[now.hour] is not None or p95[now.hour - 1] is not None


def test_hours_in_the_api_and_a_range_too_long_for_them(served: ServerThread) -> None:
    today = datetime.now(UTC).date()
    with httpx.Client(base_url=served.url) as client:
        one_day = {"since": today.isoformat(), "until": today.isoformat()}
        found = client.get("/api/trends", params=one_day).json()
        assert found["cost"]["granularity"] == "hour" and len(found["cost"]["hours"]) == 24
        assert len(client.get("/api/trends", params={**one_day, "per": "day"}).json()[
            "cost"]["days"]) == 1
        analytics = client.get("/api/analytics", params=one_day).json()
        assert analytics["granularity"] == "hour"
        assert len(analytics["cost_over_time"]["hours"]) == 24
        long = {"since": (today - timedelta(days=10)).isoformat(), "until": today.isoformat(),
                "per": "hour"}
        refused = client.get("/api/trends", params=long)
        assert refused.status_code == 422 and "at most 7 days" in refused.text
        page = client.get("/analytics", params=long)
        assert page.status_code == 422 and "too long to show per hour" in page.text
        assert client.get("/analytics", params={**long, "per": "auto"}).status_code == 200


def test_the_hour_view_in_a_browser_hovers_and_zooms(page: Any, served: ServerThread) -> None:
    today = datetime.now(UTC).date().isoformat()
    page.goto(f"{served.url}/analytics?since={today}&until={today}")
    page.wait_for_load_state("networkidle")
    assert "per hour" in page.locator(".page-head").inner_text()
    charts = page.locator("[data-trend], [data-chart]")
    assert charts.count() == 8
    for n in range(charts.count()):
        shape = charts.nth(n).evaluate(
            "el => { const u = el._trend || el._chart; const xs = u.data[0];"
            " return {n: xs.length, first: xs[0], last: xs[xs.length - 1],"
            " min: u.scales.x.min, max: u.scales.x.max}; }")
        assert shape["n"] == 24, shape  # one point or bar per UTC hour
        # Half an hour of room either side: the first and last are drawn whole.
        assert shape["min"] == shape["first"] - 1800 and shape["max"] == shape["last"] + 1800
    chart = page.locator("[data-trend=tokens]")
    chart.scroll_into_view_if_needed()
    box = chart.locator(".u-over").bounding_box()
    assert box is not None
    hour = datetime.now(UTC).hour
    page.mouse.move(box["x"] + box["width"] * (hour + 0.5) / 24, box["y"] + box["height"] / 2)
    shown = chart.locator(".u-legend .u-series").first.inner_text()
    assert f"{today} {hour:02d}:00" in shown, shown  # hover: the hour under the cursor
    before = chart.evaluate("el => el._trend.scales.x.max - el._trend.scales.x.min")
    page.mouse.move(box["x"] + box["width"] * 0.25, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] / 2, steps=5)
    page.mouse.up()
    after = chart.evaluate("el => el._trend.scales.x.max - el._trend.scales.x.min")
    assert after < before / 2  # dragged across a third of the day: zoomed into it
