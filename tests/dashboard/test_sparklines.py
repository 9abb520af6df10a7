# ruff: noqa: F811 - the page fixture comes from test_browser and is a parameter here
"""Sparklines in the tables where trends matter: the last 14 days of each bot's turns and each
model's calls (analytics), each bot's and model's cost (costs); an inline SVG drawn on the
server whose aria-label says its numbers, checked in Chromium against the store."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from opencell.dashboard.sparklines import DAYS, HEIGHT, money_words, sparkline
from opencell.store.store import Store
from opencell.store.tables import cost_daily, event_rollups
from tests.dashboard.conftest import SONNET, ServerThread
from tests.dashboard.test_browser import browser, page  # noqa: F401 - fixtures

NUMBERS = re.compile(r"Each day: (.*)\.$")


def test_a_sparkline_says_its_numbers_and_draws_them() -> None:
    days = [f"2026-05-{d:02d}" for d in range(1, 15)]
    values = [0.0] * 12 + [4.0, 2.0]
    line = sparkline(days, values, what="turns per day", say=lambda v: f"{int(v)}")
    assert line.label == ("Turns per day, 2026-05-01 to 2026-05-14: total 6; highest 4 on "
                          "2026-05-13; latest 2. Each day: " + ", ".join(
                              str(int(v)) for v in values) + ".")
    points = [tuple(map(float, p.split(","))) for p in line.points.split()]
    assert len(points) == 14 and points[0][0] < points[-1][0]
    assert points[0][1] == HEIGHT - 2 and points[12][1] == 2.0  # zero at the bottom, the top
    assert points[13][1] == (HEIGHT - 2 + 2) / 2 and line.dot == points[-1]
    flat = sparkline(days, [0.0] * 14, what="cost per day", say=money_words)
    assert "total $0.00" in flat.label and {p.split(",")[1] for p in flat.points.split()} == {
        str(float(HEIGHT - 2))}


def expected(store_url: str) -> dict[str, list[float]]:
    """From the store: support's turns and Sonnet's cost over the last 14 days."""
    today = datetime.now(UTC).date()
    days = [(today - timedelta(days=n)).isoformat() for n in range(DAYS - 1, -1, -1)]
    store = Store.open(store_url)
    try:
        with store.reading() as conn:
            e, d = event_rollups.c, cost_daily.c
            turns = dict(conn.execute(sa.select(e.day, sa.func.sum(e["count"])).where(
                e.bot == "support", e.kind == "message").group_by(e.day)).all())
            cost = dict(conn.execute(sa.select(d.day, sa.func.sum(d.cost_usd)).where(
                d.model == SONNET).group_by(d.day)).all())
    finally:
        store.close()
    return {"turns": [float(turns.get(day, 0)) for day in days],
            "cost": [float(cost.get(day, 0.0)) for day in days]}


def test_sparklines_on_the_analytics_and_costs_pages(page: Any, served: ServerThread,
                                                    isolated_store: str) -> None:
    want = expected(isolated_store)
    assert want["turns"][-1] == 3 and want["cost"][-1] > 0  # recorded today
    page.goto(served.url + "/analytics")
    page.wait_for_load_state("networkidle")
    spark = page.locator("#per-bot tr[data-bot=support] svg.spark")
    assert spark.get_attribute("role") == "img"
    label = spark.get_attribute("aria-label")
    assert label.startswith("Turns per day, ") and "latest 3." in label
    said = NUMBERS.search(label)
    assert said is not None
    assert [float(n.replace(",", "")) for n in said.group(1).split(", ")] == want["turns"]
    assert [float(v) for v in spark.get_attribute("data-values").split()] == want["turns"]
    assert len(spark.locator("polyline").get_attribute("points").split()) == DAYS
    assert page.locator("tr[data-model] svg.spark").count() >= 2  # per model: calls

    page.goto(served.url + "/costs")
    page.wait_for_load_state("networkidle")
    spark = page.locator(f'#by-model tr[data-key="{SONNET}"] svg.spark')
    label = spark.get_attribute("aria-label")
    assert label.startswith("Cost per day, ")
    assert f"latest {money_words(want['cost'][-1])}." in label
    said = NUMBERS.search(label)
    assert said is not None
    assert said.group(1).split(", ") == [money_words(v) for v in want["cost"]]
    assert page.locator("#by-bot svg.spark").count() == 2
    assert page.locator("#by-user svg.spark").count() == 0  # users: no trend line
