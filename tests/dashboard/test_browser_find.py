# ruff: noqa: F811 - the browser/page fixtures come from test_browser and are parameters here
"""The dashboard in a real Chromium, as issue 15 asks: a turn's waterfall, search that finds a
session by a word said or by the short id the list shows, sorting both ways with pages back
and forth, no sideways scrolling on a phone, dark mode, readable filter errors, and a crashed
session shown as interrupted."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from opencell.records import short_session_id
from opencell.store.store import Store
from tests.conftest import REPO, clean_env, opencell
from tests.dashboard.conftest import ServerThread, leave
from tests.dashboard.test_browser import CHROMIUM, browser, page  # noqa: F401 - fixtures
from tests.fakes.waiting import until_sync

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Chromium at /usr/bin/chromium")


def listed(page: Any) -> list[str]:
    return page.locator("tbody tr[data-session-id]").evaluate_all(
        "rows => rows.map(r => r.dataset.sessionId)")


def search(page: Any, text: str) -> None:
    page.fill("input[name=q]", text)
    page.locator("#filters button[type=submit]").click()
    page.wait_for_load_state("domcontentloaded")


def test_the_waterfall_of_an_agent_turn_matches_its_calls(
        page: Any, served: ServerThread, conversations: dict[str, str]) -> None:
    page.goto(f"{served.url}/sessions/{conversations['agent']}")
    waterfalls = page.locator("[aria-label=waterfall]")
    assert waterfalls.count() == 2  # two turns
    first = waterfalls.first
    bars = first.locator("a[data-bar]")
    assert bars.evaluate_all("bs => bs.map(b => b.dataset.bar)") == [
        "llm_call", "tool_call", "llm_call"]
    # The bars are the turn's own calls, in the replay's order, before its answer.
    replay = page.locator(".timeline [data-kind=llm_call], .timeline [data-kind=tool_call]")
    turn_ids = replay.evaluate_all("steps => steps.map(s => s.dataset.eventId)")[:3]
    assert bars.evaluate_all("bs => bs.map(b => b.dataset.goto)") == turn_ids
    assert "lookup_order" in bars.nth(1).inner_text()
    assert "claude-sonnet-4-20250514" in bars.first.inner_text()
    # Sequential agent steps: every call is on the critical path, and each bar was drawn.
    assert bars.evaluate_all("bs => bs.map(b => b.dataset.critical)") == ["true"] * 3
    widths = first.locator(".wf-bar").evaluate_all(
        "bs => bs.map(b => b.getBoundingClientRect().width)")
    assert len(widths) == 4 and all(w > 0 for w in widths)
    starts = bars.locator(".wf-bar").evaluate_all(
        "bs => bs.map(b => b.getBoundingClientRect().left)")
    assert starts == sorted(starts)  # later calls start further right on the shared axis
    # Click-through: the tool's bar opens the tool step in the replay.
    bars.nth(1).click()
    step = page.locator(f".timeline [data-event-id='{turn_ids[1]}'] details")
    assert step.evaluate("d => d.open") is True
    assert page.url.endswith(f"#step-{turn_ids[1]}")


def test_text_search_finds_a_session_by_a_word_said_in_it(
        page: Any, served: ServerThread, conversations: dict[str, str]) -> None:
    page.goto(served.url + "/sessions")
    search(page, "shipped")  # a word of the bot's answer
    assert listed(page) == [conversations["agent"]]
    assert page.locator("[data-total]").get_attribute("data-total") == "1"
    search(page, "wher ord")  # the starts of two words the user said
    assert listed(page) == [conversations["agent"]]
    search(page, "hello")  # carol's message
    assert listed(page) == [conversations["unpriced"]]
    search(page, "dav")  # a user's name, by its start
    assert listed(page) == [conversations["failed"]]
    search(page, "nobody said zebra")
    assert listed(page) == []
    assert "No sessions match" in page.locator(".empty-state").inner_text()
    assert "q=nobody+said+zebra" in page.url  # the search is in the URL, shareable


def test_the_short_id_shown_in_the_list_finds_its_session(
        page: Any, served: ServerThread, conversations: dict[str, str]) -> None:
    page.goto(served.url + "/sessions")
    shown = page.locator(f"tr[data-session-id='{conversations['xss']}'] a.session-link")
    short = shown.inner_text()
    assert short == short_session_id(conversations["xss"])
    search(page, short)
    assert listed(page) == [conversations["xss"]]
    search(page, short.upper())
    assert listed(page) == [conversations["xss"]]


def test_sort_both_ways_and_page_back_and_forth(
        page: Any, served: ServerThread, conversations: dict[str, str]) -> None:
    page.goto(served.url + "/sessions")
    cost = page.locator("th a[data-sort=cost]")
    cost.click()
    page.wait_for_url(re.compile(r"sort=cost.*order=desc|order=desc.*sort=cost"))
    descending = listed(page)
    assert descending[0] == conversations["agent"]  # the most expensive first
    assert "↓" in page.locator("th a[data-sort=cost]").inner_text()
    page.locator("th a[data-sort=cost]").click()  # again: the other way
    page.wait_for_url(re.compile(r"order=asc"))
    ascending = listed(page)
    assert ascending[-1] == conversations["agent"]
    assert "↑" in page.locator("th a[data-sort=cost]").inner_text()
    costs = page.locator("tbody tr[data-session-id] td:last-child").all_inner_texts()
    amounts = [float(re.sub(r"[^0-9.]", "", c.split("\n")[0]) or 0) for c in costs]
    assert amounts == sorted(amounts)
    # Two per page: next, next, then back; the total counts every page.
    page.goto(served.url + "/sessions?sort=cost&order=asc&limit=2")
    assert page.locator("[data-total]").get_attribute("data-total") == "5"
    seen = [listed(page)]
    page.locator("a[rel=next]").click()
    page.wait_for_url(re.compile(r"cursor="))
    seen.append(listed(page))
    page.locator("a[rel=next]").click()
    page.wait_for_load_state("domcontentloaded")
    seen.append(listed(page))
    assert [len(p) for p in seen] == [2, 2, 1]
    assert sum(seen, []) == ascending
    assert page.locator("a[rel=next]").count() == 0
    page.locator("a[rel=prev]").click()
    page.wait_for_url(re.compile(r"before="))
    assert listed(page) == seen[1]
    page.locator("a[rel=prev]").click()
    page.wait_for_load_state("domcontentloaded")
    assert listed(page) == seen[0]
    assert page.locator("a[rel=prev]").count() == 0


def test_no_page_scrolls_sideways_on_a_phone(
        browser: Any, served: ServerThread, conversations: dict[str, str]) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844})
    phone = context.new_page()
    paths = ["/sessions", "/sessions?status=failed", "/analytics", "/costs", "/budgets",
             "/api/docs", "/sessions?since=2026-02-01&until=2026-01-01", "/no-such-page",
             *(f"/sessions/{sid}" for sid in conversations.values())]
    try:
        for path in paths:
            phone.goto(served.url + path)
            phone.wait_for_load_state("networkidle")
            width = phone.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, (path, width)
    finally:
        context.close()


def _background(browser: Any, url: str, scheme: str) -> tuple[int, ...]:
    context = browser.new_context(color_scheme=scheme)
    try:
        shown = context.new_page()
        shown.goto(url)
        colour = shown.evaluate("getComputedStyle(document.body).backgroundColor")
        card = shown.evaluate("getComputedStyle(document.querySelector('.card')).backgroundColor")
        text = shown.evaluate("getComputedStyle(document.body).color")
    finally:
        context.close()
    channels = [tuple(int(v) for v in re.findall(r"\d+", c)[:3]) for c in (colour, card, text)]
    return tuple(sum(c) for c in channels)


def test_dark_mode_follows_the_system_preference(
        browser: Any, served: ServerThread) -> None:
    light_bg, light_card, light_text = _background(browser, served.url + "/sessions", "light")
    dark_bg, dark_card, dark_text = _background(browser, served.url + "/sessions", "dark")
    assert light_bg > 600 and light_card > 600 and light_text < 150
    assert dark_bg < 150 and dark_card < 150 and dark_text > 600


def test_a_bad_date_range_is_answered_in_words(
        browser: Any, served: ServerThread) -> None:
    # Its own page: Chromium logs each 422 answer as a console error, which `page` refuses.
    context = browser.new_context()
    page = context.new_page()
    page.goto(served.url + "/sessions?since=2026-12-09&until=2026-12-01")
    assert page.locator("h1").inner_text() == "That filter is not valid"
    message = page.locator(".empty-state p.muted").inner_text()
    assert message == "since: since must be before until"
    page.goto(served.url + "/sessions?since=yesterday")
    message = page.locator(".empty-state p.muted").inner_text()
    assert message == "since: not a day (YYYY-MM-DD) or a time (YYYY-MM-DDTHH:MM)"
    page.goto(served.url + "/analytics?since=2026-12-09&until=2026-12-01")
    assert "since must not be after until" in page.locator("main").inner_text()
    for text in ("{'", "[{", "'loc'", "Traceback"):
        assert text not in page.content()
    context.close()


def test_a_session_closed_by_a_crash_shows_as_interrupted(
        page: Any, tmp_path: Path, isolated_store: str) -> None:
    bot = tmp_path / "crash.yaml"
    bot.write_text("name: crash\nllm: {provider: offline}\n")
    chat = subprocess.Popen([sys.executable, "-m", "opencell", "chat", str(bot)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=clean_env(), cwd=REPO)
    assert chat.stdin is not None and chat.stdout is not None
    chat.stdin.write("remember me\n")
    chat.stdin.flush()
    assert chat.stdout.readline().startswith("[offline]")
    store = Store.open(isolated_store)
    try:
        until_sync(lambda: any(row["messages"] for row in store.list_sessions()[0]),
                   "the turn in the store")
    finally:
        store.close()
    chat.kill()
    chat.wait(timeout=30)
    assert opencell("sessions").returncode == 0  # opening the store closes what the crash left
    with ServerThread(isolated_store) as served:
        page.goto(served.url + "/sessions")
        badge = page.locator("tbody tr[data-session-id] [data-status]")
        assert badge.inner_text() == "interrupted"
        assert "success" not in badge.get_attribute("class")
        page.locator("a.session-link").click()
        page.wait_for_load_state("domcontentloaded")
        assert "interrupted" in page.locator("main").inner_text()
        leave(page)  # before this server stops (see ``leave``)
