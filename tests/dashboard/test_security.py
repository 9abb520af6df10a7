"""Who may see the dashboard: loopback by default, a token for any other address (every route,
constant-time), the token never in a log, only loopback Host headers without a token."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from opencell.dashboard import auth
from opencell.dashboard.server import DashboardServer
from opencell.errors import ConfigError
from opencell.store.store import Store
from tests.conftest import REPO, clean_env, opencell
from tests.dashboard.conftest import ServerThread
from tests.fakes.waiting import WAIT, PipeLines

TOKEN = "s3cret-dashboard-token-0123456789"


def test_any_address_beyond_loopback_needs_a_token(isolated_store: str) -> None:
    store = Store.open(isolated_store)
    for host in ("0.0.0.0", "192.168.1.10", "::", "example.com"):
        with pytest.raises(ConfigError, match="OPENCELL_DASHBOARD_TOKEN"):
            DashboardServer(store, host=host)
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.2"):
        DashboardServer(store, host=host)
    DashboardServer(store, host="0.0.0.0", token=TOKEN)
    store.close()


def test_the_cli_refuses_in_one_line_naming_the_variable(isolated_store: str) -> None:
    result = opencell("dashboard", "--host", "0.0.0.0", "--port", "0", timeout=30)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "OPENCELL_DASHBOARD_TOKEN" in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def every_get_route(served: ServerThread) -> list[str]:
    """Every GET route the app has (path parameters filled in), plus a static file."""
    assert served.server is not None and served.server.app is not None
    paths = []
    routes = list(served.server.app.app.routes)
    while routes:
        route = routes.pop()
        included = getattr(route, "original_router", None)  # FastAPI's included routers
        if included is not None:
            routes.extend(included.routes)
            continue
        path = getattr(route, "path", "")
        if path and "GET" in (getattr(route, "methods", None) or {"GET"}):
            paths.append(path.replace("{session_id}", "0"))
    assert {"/api/sessions", "/sessions", "/metrics", "/healthz", "/api/stream"} <= set(paths)
    return [*paths, "/static/app.css", "/static/vendor/uplot/uPlot.iife.min.js"]


def test_with_a_token_every_route_needs_it(conversations: dict[str, str],
                                           isolated_store: str) -> None:
    with ServerThread(isolated_store, token=TOKEN) as served:
        routes = every_get_route(served)
        with httpx.Client(base_url=served.url, timeout=10) as client:
            for path in routes:
                for headers in ({}, {"Authorization": "Bearer wrong"},
                                {"Authorization": f"Bearer {TOKEN}x"},
                                {"Cookie": "opencell_dashboard=forged"}):
                    response = client.get(path, headers=headers)
                    assert response.status_code == 401, (path, headers, response.status_code)
                    assert TOKEN not in response.text
            ok = {"Authorization": f"Bearer {TOKEN}"}
            assert client.get("/api/sessions", headers=ok).status_code == 200
            assert client.get("/metrics", headers=ok).status_code == 200
            assert client.get("/static/app.css", headers=ok).status_code == 200
            with client.stream("GET", "/api/stream", headers=ok) as stream:
                assert stream.status_code == 200
            # A browser opens a page with ?token= once: a cookie, and the token leaves the URL.
            first = client.get("/sessions?bot=helper&token=" + TOKEN,
                               headers={"Accept": "text/html"})
            assert first.status_code == 303
            assert first.headers["location"] == "/sessions?bot=helper"
            cookie = first.headers["set-cookie"]
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
            page = client.get("/sessions?bot=helper")  # the client kept the cookie
            assert page.status_code == 200 and "helper" in page.text
            assert client.get("/api/costs").status_code == 200
            client.cookies.clear()
            assert client.get("/api/costs").status_code == 401


def test_without_a_token_only_loopback_host_names_are_served(served: ServerThread) -> None:
    with httpx.Client(base_url=served.url, timeout=10) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/healthz", headers={"Host": "localhost:8321"}).status_code == 200
        rebound = client.get("/api/sessions", headers={"Host": "attacker.example:8321"})
        assert rebound.status_code == 403


def test_the_token_never_reaches_the_logs(conversations: dict[str, str], tmp_path: Path,
                                          isolated_store: str) -> None:
    env = clean_env(OPENCELL_DASHBOARD_TOKEN=TOKEN, OPENCELL_DATABASE_URL=isolated_store)
    proc = subprocess.Popen(
        [sys.executable, "-m", "opencell", "--log-level", "debug", "dashboard", "--port", "0"],
        stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
    assert proc.stderr is not None and proc.stdout is not None
    err, out = PipeLines(proc.stderr), PipeLines(proc.stdout)
    try:
        line = err.wait_for(lambda text: "dashboard on http://" in text, "the dashboard to start")
        url = line[line.index("http://"):].split()[0].rstrip("/")
        with httpx.Client(base_url=url, timeout=WAIT) as client:
            client.get(f"/sessions?token={TOKEN}", headers={"Accept": "text/html"})
            client.get(f"/api/sessions?token={TOKEN}")
            client.get("/api/sessions", headers={"Authorization": f"Bearer {TOKEN}"})
            client.get(f"/api/sessions?token={TOKEN}wrong")
            client.get("/api/nothing-here", headers={"Authorization": f"Bearer {TOKEN}"})
    finally:
        proc.send_signal(2)
        proc.wait(timeout=WAIT)
    logs = err.finish() + out.finish()
    # The access log is on, with the token masked (by the dashboard's filter or the general
    # log redaction, whichever gets there first).
    assert re.search(r"GET /api/sessions\?token=(\*\*\*|\[REDACTED[^\]]*\]) HTTP/1.1", logs), logs
    assert TOKEN not in logs and TOKEN[:12] not in logs
    assert proc.returncode == 0, logs


def test_templates_escape_everything() -> None:
    from fastapi.templating import Jinja2Templates

    from opencell.dashboard.app import HERE
    from opencell.dashboard.pages import setup_templates

    templates = Jinja2Templates(directory=str(HERE / "templates"))
    setup_templates(templates)
    macros = templates.get_template("_macros.html").module
    html = macros.time_tag("<script>")  # type: ignore[attr-defined]
    assert "<script>" not in str(html) and "&lt;script&gt;" in str(html)
    for template in (HERE / "templates").glob("*.html"):
        assert "|safe" not in template.read_text().replace(" ", ""), template
        assert "autoescape false" not in template.read_text(), template
    assert os.path.exists(HERE / "static" / "vendor" / "uplot" / "LICENSE")


def test_redaction_helpers() -> None:
    assert auth.redact_token("GET /x?a=1&token=abc&b=2") == "GET /x?a=1&token=***&b=2"
    assert auth.is_loopback("[::1]") and not auth.is_loopback("0.0.0.0")
