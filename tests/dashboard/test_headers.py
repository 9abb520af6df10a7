"""Dashboard hardening: security headers on every response, redirects that stay on this origin,
pages that really satisfy the CSP in Chromium (charts still drawn), API docs that work offline."""

from __future__ import annotations

import http.client
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest

from opencell.config import BudgetsConfig
from opencell.dashboard.budgets import store_budgets
from opencell.store.store import Store
from tests.dashboard.conftest import ServerThread

TOKEN = "t0ken-for-the-header-tests-0123456789"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
HTML = {"Accept": "text/html,application/xhtml+xml"}


def fetch(server: ServerThread, target: str, headers: dict[str, str] | None = None,
          method: str = "GET") -> http.client.HTTPResponse:
    """One request with exactly this request target (no client-side URL clean-up)."""
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    conn.request(method, target, headers=headers or {})
    response = conn.getresponse()
    if response.getheader("content-type", "").startswith("text/event-stream"):
        conn.close()  # a live stream never ends: its headers are all this needs
    else:
        response.read()
        conn.close()
    return response


def assert_protected(response: http.client.HTTPResponse, what: str) -> None:
    csp = response.getheader("Content-Security-Policy") or ""
    directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
    assert directives.get("frame-ancestors") == ["'none'"], (what, csp)
    assert directives.get("default-src") == ["'none'"], (what, csp)
    for name in ("script-src", "style-src"):
        assert directives.get(name) == ["'self'"], (what, name, csp)
    assert response.getheader("X-Frame-Options") == "DENY", what
    assert response.getheader("X-Content-Type-Options") == "nosniff", what
    assert response.getheader("Referrer-Policy") == "no-referrer", what


@pytest.fixture
def gated(conversations: dict[str, str], isolated_store: str) -> Iterator[ServerThread]:
    with ServerThread(isolated_store, token=TOKEN) as running:
        yield running


def test_every_response_carries_the_security_headers(
        served: ServerThread, conversations: dict[str, str]) -> None:
    agent = conversations["agent"]
    targets = ["/", "/sessions", "/sessions?status=nonsense", f"/sessions/{agent}",
               f"/sessions/{agent}/live", "/sessions/no-such-session", "/analytics", "/costs",
               "/budgets", "/api/sessions", f"/api/sessions/{agent}", "/api/analytics",
               "/api/costs", "/api/budgets", "/api/openapi.json", "/api/docs", "/healthz",
               "/metrics", "/static/app.css", "/static/vendor/uplot/uPlot.iife.min.js",
               "/static/missing.js", "/nowhere", "/api/stream"]
    seen = set()
    for target in targets:
        response = fetch(served, target, HTML if not target.startswith("/api") else None)
        seen.add(response.status)
        assert_protected(response, target)
    refused = fetch(served, "/sessions", {"Host": "evil.example"})  # the loopback gate
    assert refused.status == 403
    assert_protected(refused, "403 from the gate")
    assert_protected(fetch(served, "/api/sessions", method="POST"), "405")
    assert {200, 307, 404, 422} <= seen


def test_the_token_gate_answers_carry_the_headers_too(gated: ServerThread) -> None:
    for target, headers, status in [
            ("/sessions", HTML, 401), ("/api/sessions", None, 401),
            (f"/sessions?token={TOKEN}", HTML, 303),
            ("/api/sessions", {"Authorization": f"Bearer {TOKEN}"}, 200)]:
        response = fetch(gated, target, headers)
        assert response.status == status, target
        assert_protected(response, target)


HOSTILE = ["/%5Cevil.example", "/%5C%5Cevil.example", "/%5C/evil.example", "//evil.example",
           "///evil.example", "/%2F%2Fevil.example", "/%2F%5Cevil.example", "/%09/evil.example",
           "/%0A/evil.example", "/%5C%09evil.example", "/\\evil.example", "/%5Cevil.example/",
           "/sessions/", "//evil.example/sessions/"]


def assert_same_origin(server: ServerThread, location: str, what: str) -> None:
    assert re.fullmatch(r"/(?![/\\])[\x21-\x7e]*", location), (what, location)
    assert "\\" not in location, (what, location)
    resolved = urlsplit(urljoin(server.url + "/sessions", location))
    assert resolved.netloc == urlsplit(server.url).netloc, (what, location)


@pytest.mark.parametrize("path", HOSTILE)
def test_every_redirect_is_a_relative_path_on_this_origin(
        gated: ServerThread, path: str) -> None:
    # The token in the query: the gate drops it from the address and sets the cookie.
    response = fetch(gated, f"{path}?token={TOKEN}&q=1", HTML)
    assert response.status == 303, path
    location = response.getheader("Location") or ""
    assert_same_origin(gated, location, path)
    assert "token" not in location and location.endswith("?q=1"), location
    cookie = (response.getheader("Set-Cookie") or "").split(";")[0]
    # With the cookie, the app itself may redirect (a trailing slash); even with a forged Host.
    for host in (urlsplit(gated.url).netloc, "evil.example"):
        again = fetch(gated, path, {**HTML, "Cookie": cookie, "Host": host})
        if 300 <= again.status < 400:
            assert_same_origin(gated, again.getheader("Location") or "", f"{path} {host}")


def test_the_slash_trimming_redirect_is_relative(gated: ServerThread) -> None:
    response = fetch(gated, "/sessions/", {"Authorization": f"Bearer {TOKEN}",
                                           "Host": "evil.example"})
    assert response.status in (307, 308)
    assert response.getheader("Location") == "/sessions"


# ------------------------------------------------------------ in a real browser

needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="needs Chromium at /usr/bin/chromium: apt-get install -y -qq chromium")

WATCH_CSP = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__csp.push(e.violatedDirective + " " + (e.blockedURI || "inline") + " " +
                    e.sourceFile + ":" + e.lineNumber);
});
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


class Watched:
    """A browser page that keeps every CSP complaint, error and off-origin request."""

    def __init__(self, browser: Any, origin: str) -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.context.add_init_script(WATCH_CSP)
        self.problems: list[str] = []
        self.foreign: list[str] = []
        self.origin = origin
        self.context.route("**/*", self._route)
        self.page = self.context.new_page()
        self.page.on("console", self._console)
        self.page.on("response", self._response)
        self.page.on("pageerror", lambda error: self.problems.append(f"pageerror {error}"))

    def _route(self, route: Any) -> None:
        url = route.request.url
        if url.startswith(self.origin) or url.startswith("data:"):
            route.continue_()
        else:  # this machine is offline: nothing may be fetched from anywhere else
            self.foreign.append(url)
            route.abort()

    def _console(self, message: Any) -> None:
        # A page's own status (the 404 page) is logged as "Failed to load resource";
        # a sub-resource that fails is caught by _response instead.
        if message.text.startswith("Failed to load resource"):
            return
        if message.type == "error" or "Content Security Policy" in message.text:
            self.problems.append(f"console {message.text}")

    def _response(self, response: Any) -> None:
        if response.request.resource_type != "document" and response.status >= 400:
            self.problems.append(f"{response.status} {response.url}")

    def visit(self, path: str) -> list[str]:
        """Open ``path``; every CSP violation reported on it."""
        self.page.goto(self.origin + path)
        self.page.wait_for_load_state("load")
        # Reported violations are dispatched as tasks: one more round trip lets them land.
        self.page.evaluate("() => new Promise(r => setTimeout(r, 0))")
        found: list[str] = self.page.evaluate("() => window.__csp")
        return found


@pytest.fixture
def budgeted(conversations: dict[str, str], isolated_store: str) -> Iterator[ServerThread]:
    store = Store.open(isolated_store)
    source = store_budgets(BudgetsConfig(limits=[
        {"scope": "global", "daily_usd": 0.001},  # over: a full red bar
        {"scope": "global", "monthly_usd": 10_000}]), store)
    try:
        with ServerThread(isolated_store, budgets=source) as running:
            yield running
    finally:
        store.close()


@needs_chromium
def test_no_page_violates_the_csp_and_charts_and_bars_still_draw(
        browser: Any, budgeted: ServerThread, conversations: dict[str, str]) -> None:
    watched = Watched(browser, budgeted.url)
    pages = ["/sessions", f"/sessions/{conversations['agent']}",
             f"/sessions/{conversations['xss']}", "/analytics", "/costs", "/budgets",
             "/api/docs", "/nowhere"]
    for path in pages:
        assert watched.visit(path) == [], path
        if path in ("/analytics", "/costs"):
            watched.page.wait_for_selector(".chart .uplot canvas")
            assert watched.page.locator(".chart .uplot").count() >= 1, path
            # Bars (no inline style): each bar is as wide as its share says.
            bars = watched.page.evaluate("""() => [...document.querySelectorAll('.share')]
                .map(s => [s.querySelector('.share-bar').getBoundingClientRect().width,
                           s.getBoundingClientRect().width,
                           parseFloat(s.querySelector('span').textContent)])""")
            assert bars, path
            for bar, whole, pct in bars:
                assert bar == pytest.approx(whole * min(pct, 100) / 100, abs=2), (path, bars)
            assert any(0 < bar < whole for bar, whole, _ in bars) or path == "/analytics"
        if path == "/budgets":
            widths = watched.page.evaluate("""() => [...document.querySelectorAll(
                '.share-bar')].map(b => b.getBoundingClientRect().width /
                                       b.parentElement.getBoundingClientRect().width)""")
            assert max(widths) == pytest.approx(1, abs=0.01), widths
            assert min(widths) < 0.5, widths
    watched.context.close()
    assert watched.problems == [] and watched.foreign == []


@needs_chromium
def test_the_gate_refusal_page_satisfies_the_csp(browser: Any, gated: ServerThread) -> None:
    watched = Watched(browser, gated.url)
    assert watched.visit("/sessions") == []
    assert "token" in watched.page.inner_text("body")
    watched.context.close()


@needs_chromium
def test_the_api_docs_show_every_route_offline(browser: Any, served: ServerThread) -> None:
    watched = Watched(browser, served.url)
    assert watched.visit("/api/docs") == []
    page = watched.page
    text = page.inner_text("body")
    schema = page.evaluate("() => fetch('/api/openapi.json').then(r => r.json())")
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            row = page.locator(f"[data-operation='{method.upper()} {path}']")
            assert row.count() == 1, (method, path)
            assert row.is_visible()
            for parameter in operation.get("parameters", []):
                assert parameter["name"] in row.inner_text(), (path, parameter["name"])
    for name in schema["components"]["schemas"]:
        assert page.locator(f"#schema-{name}").count() == 1, name
    assert "Only this bot." in text  # a parameter's description
    watched.context.close()
    assert watched.problems == [] and watched.foreign == []
