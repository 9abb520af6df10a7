"""The dashboard in a real Chromium (Playwright): pages with real data, filters, sort, replay,
hostile chat text shown as text, and live updates of an open session."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opencell.observability.facade import AgentOpsFacade
from tests.dashboard.conftest import XSS, ServerThread, observability

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Chromium at /usr/bin/chromium: apt-get update -qq && apt-get install -y -qq "
           "chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    opened = context.new_page()
    problems: list[str] = []
    dialogs: list[str] = []
    opened.on("pageerror", lambda error: problems.append(str(error)))
    opened.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)

    def on_dialog(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    opened.on("dialog", on_dialog)
    opened.problems = problems
    opened.dialogs = dialogs
    yield opened
    context.close()
    assert not problems, problems
    assert not dialogs, f"a dialog opened: {dialogs}"


def test_each_page_renders_real_data_and_the_list_filters_sorts_and_opens(
        page: Any, served: ServerThread, conversations: dict[str, str]) -> None:
    page.goto(served.url + "/")
    rows = page.locator("tbody tr[data-session-id]")
    assert rows.count() == 5
    assert page.locator(".sessions-table").get_by_text("helper").count() == 1
    # A filter: the status menu submits itself.
    page.select_option("select[name=status]", "failed")
    page.wait_for_url(re.compile(r"status=failed"))
    assert sorted(rows.evaluate_all("rs => rs.map(r => r.dataset.sessionId)")) == sorted(
        [conversations["xss"], conversations["failed"]])
    page.get_by_role("link", name="Reset").click()
    # Sort by cost: the agent's session (four Claude calls) comes first.
    page.get_by_role("link", name="Cost", exact=True).click()
    page.wait_for_url(re.compile(r"sort=cost"))
    assert rows.first.get_attribute("data-session-id") == conversations["agent"]
    # Open it: its model calls and its tool call are in the replay.
    rows.first.locator("a.session-link").click()
    page.wait_for_url(re.compile(conversations["agent"]))
    llm = page.locator("[data-kind=llm_call]")
    assert llm.count() == 4 and "claude-sonnet-4-20250514" in llm.first.inner_text()
    assert "1,500 in" in llm.first.inner_text()
    tool = page.locator("[data-kind=tool_call]").first
    assert "lookup_order" in tool.inner_text()
    tool.locator("summary").click()
    assert tool.locator(".tool-result").inner_text().startswith("<b>Order 42</b> shipped")
    assert "Where is my order 42?" in page.locator(".tl-user").first.inner_text()
    assert "Your order 42 has shipped." in page.locator(".tl-bot").first.inner_text()
    # Analytics and costs show the same conversations.
    page.goto(served.url + "/analytics")
    assert "lookup_order" in page.locator("text=Most used tools >> xpath=../..").inner_text()
    per_bot = page.locator("table").first.inner_text()
    assert "helper" in per_bot and "support" in per_bot and "50.0%" in per_bot
    assert page.locator(".chart canvas").count() >= 2  # uPlot drew the charts
    page.goto(served.url + "/costs")
    assert "claude/claude-imaginary-9" in page.locator("#unpriced").inner_text()
    assert "alice" in page.locator("#by-user").inner_text()


def test_hostile_chat_text_and_tool_html_are_shown_as_text(
        page: Any, served: ServerThread, conversations: dict[str, str]) -> None:
    for path in (f"/sessions/{conversations['xss']}", f"/sessions/{conversations['agent']}",
                 f"/sessions/{conversations['manual']}", f"/sessions/{conversations['failed']}",
                 "/sessions", "/analytics", "/costs", "/sessions?q=%3Cscript%3Ealert(7)"):
        page.goto(served.url + path)
        page.wait_for_load_state("networkidle")
        for details in page.locator("details").all():
            details.evaluate("d => d.open = true")
        injected = page.evaluate("""() => ({
            images: document.querySelectorAll('img').length,
            scripts: [...document.scripts]
                .filter(s => s.src === '' && s.type !== 'application/json').length,
            bold: document.querySelectorAll('main b, main i').length,
            // the sparklines are the dashboard's own (server-drawn, in their cells)
            svg: document.querySelectorAll('main svg:not(td.spark-cell > svg.spark)').length })""")
        assert injected == {"images": 0, "scripts": 0, "bold": 0, "svg": 0}, (path, injected)
    page.goto(served.url + f"/sessions/{conversations['xss']}")
    assert page.locator(".tl-user .bubble-text").inner_text() == XSS
    assert page.locator(".tl-bot .bubble-text").inner_text() == f"You said: {XSS}"
    page.goto(served.url + f"/sessions/{conversations['manual']}")
    assert "<i>vote</i>" in page.locator("[data-kind=custom]").inner_text()
    assert page.get_by_text("<b>mallory</b>").count() >= 1
    assert page.dialogs == []


def test_an_open_session_updates_live(page: Any, served: ServerThread,
                                      isolated_store: str) -> None:
    obs = observability(isolated_store)
    ops = AgentOpsFacade(obs)
    try:
        sid = ops.start_session(bot_name="live", user_id="erin", platform="api")
        assert ops.flush(5)
        page.goto(served.url + f"/sessions/{sid}")
        assert page.locator("[data-kind=llm_call]").count() == 0
        # A locator, not wait_for_function: the dashboard's CSP has no 'unsafe-eval', and
        # Playwright evaluates a string predicate again with eval on each poll (only the
        # first try runs outside the page's CSP), so on a slow start it failed with
        # "EvalError … violates the following Content Security Policy directive".
        page.locator("#live-indicator.on").wait_for()
        ops.track_cost(sid, provider="claude", model="claude-sonnet-4-20250514",
                       input_tokens=1500, output_tokens=800, duration=0.4)
        ops.track_tool_execution(sid, tool="search", args={"q": "x"}, result="3 hits",
                                 duration=0.1)
        assert ops.flush(5)
        page.locator("[data-kind=tool_call]").wait_for(timeout=10_000)
        assert "claude-sonnet-4-20250514" in page.locator("[data-kind=llm_call]").inner_text()
        assert "$0.0165" in page.locator(".side-col").inner_text()
        ops.end_session(sid, success=True)
        assert ops.flush(5)
        page.locator(".tl-system", has_text="Session ended").wait_for(timeout=10_000)
    finally:
        obs.close()
