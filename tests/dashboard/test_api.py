"""The JSON API over real recorded conversations: filters, sort, keyset pages, detail, analytics,
costs, health, metrics, and 422s for bad parameters."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from opencell.dashboard.app import create_app
from opencell.observability.recorder import RecorderStats
from opencell.store.store import Store
from tests.dashboard.conftest import SONNET, XSS


@pytest.fixture
def store(conversations: dict[str, str], isolated_store: str) -> Iterator[Store]:
    opened = Store.open(isolated_store)
    yield opened
    opened.close()


@pytest.fixture
def client(store: Store) -> Iterator[httpx.Client]:
    stats = RecorderStats(queued=3, written=120, dropped=2, failures=1, last_error=None,
                          batches=4, failing=False)
    app = create_app(store, recorder_stats=lambda: stats,
                     exporter_stats=lambda: {"agentops": {"lag_events": 7, "lag seconds": 1}})
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    with httpx.Client(transport=_SyncASGI(transport), base_url="http://127.0.0.1") as c:
        yield c


class _SyncASGI(httpx.BaseTransport):
    """httpx's ASGI transport is async-only; run each request to completion."""

    def __init__(self, inner: httpx.ASGITransport) -> None:
        self.inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        import asyncio

        async def call() -> httpx.Response:
            response = await self.inner.handle_async_request(request)
            body = await response.aread()
            return httpx.Response(response.status_code, headers=response.headers, content=body)

        return asyncio.run(call())


def get(client: httpx.Client, path: str, **params: Any) -> Any:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def ids_of(page: dict[str, Any]) -> list[str]:
    return [s["id"] for s in page["sessions"]]


def test_the_session_list_shows_each_conversation_with_its_totals(
        client: httpx.Client, conversations: dict[str, str]) -> None:
    page = get(client, "/api/sessions")
    assert set(ids_of(page)) == set(conversations.values())
    agent = next(s for s in page["sessions"] if s["id"] == conversations["agent"])
    assert (agent["bot"], agent["platform"], agent["user_id"], agent["status"]) == (
        "helper", "console", "alice", "success")
    assert (agent["messages"], agent["llm_calls"], agent["tool_calls"], agent["errors"]) == (
        2, 4, 2, 0)
    assert agent["cost_usd"] > 0 and agent["tags"] == ["shop", "production"]
    assert page["next_cursor"] is None


def test_filters_narrow_the_list(client: httpx.Client, conversations: dict[str, str]) -> None:
    assert ids_of(get(client, "/api/sessions", bot="helper")) == [conversations["agent"]]
    assert ids_of(get(client, "/api/sessions", platform="discord")) == [conversations["xss"]]
    assert ids_of(get(client, "/api/sessions", user="carol")) == [conversations["unpriced"]]
    assert ids_of(get(client, "/api/sessions", tag="shop")) == [conversations["agent"]]
    assert set(ids_of(get(client, "/api/sessions", status="failed"))) == {
        conversations["xss"], conversations["failed"]}
    assert ids_of(get(client, "/api/sessions", q=conversations["failed"][:30])) == [
        conversations["failed"]]
    assert ids_of(get(client, "/api/sessions", q="dave")) == [conversations["failed"]]
    today = datetime.now(UTC).date()
    assert len(ids_of(get(client, "/api/sessions", since=str(today), until=str(today)))) == 5
    assert ids_of(get(client, "/api/sessions", until=str(today - timedelta(days=1)))) == []
    assert ids_of(get(client, "/api/sessions", bot="")) != []  # blank means no filter


def test_sort_by_cost_and_keyset_pages_cover_everything_once(
        client: httpx.Client, store: Store, conversations: dict[str, str]) -> None:
    by_cost = get(client, "/api/sessions", sort="cost")["sessions"]
    costs = [s["cost_usd"] for s in by_cost]
    assert costs == sorted(costs, reverse=True) and by_cost[0]["id"] == conversations["agent"]
    statements: list[str] = []
    sa.event.listen(store.engine, "before_cursor_execute",
                    lambda conn, cursor, sql, *rest: statements.append(sql))
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params = {"sort": "duration", "order": "asc", "limit": 2}
        page = get(client, "/api/sessions", **params, **({"cursor": cursor} if cursor else {}))
        seen += ids_of(page)
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(conversations.values())
    listing = [sql for sql in statements if "FROM sessions" in sql and "LIMIT" in sql]
    assert listing and not any("OFFSET" in sql.upper() for sql in listing)


@pytest.mark.parametrize("params, where", [
    ({"status": "bogus"}, "status"), ({"sort": "name"}, "sort"), ({"order": "up"}, "order"),
    ({"limit": "0"}, "limit"), ({"limit": "201"}, "limit"), ({"since": "yesterday"}, "since"),
    ({"cursor": "not-a-cursor"}, "cursor"), ({"since": "2026-02-02", "until": "2026-02-01"},
                                             "since"),
    ({"bot": "x" * 201}, "bot"),
])
def test_bad_list_parameters_are_422_naming_the_parameter(client: httpx.Client,
                                                          params: dict[str, str],
                                                          where: str) -> None:
    response = client.get("/api/sessions", params=params)
    assert response.status_code == 422, response.text
    (problem, *_) = response.json()["detail"]
    assert where in problem["loc"] and problem["msg"]


@pytest.mark.parametrize("path, params", [
    ("/api/costs", {"by": "team"}), ("/api/costs", {"period": "year"}),
    ("/api/costs", {"at": "soon"}), ("/api/analytics", {"since": "2026-13-01"}),
    ("/api/analytics", {"since": "2026-03-02", "until": "2026-03-01"}),
    ("/api/analytics", {"since": "2020-01-01", "until": "2026-01-01"}),
    ("/api/sessions/" + "a" * 65, {}), ("/api/stream", {"after": "-1"}),
])
def test_bad_parameters_elsewhere_are_422(client: httpx.Client, path: str,
                                          params: dict[str, str]) -> None:
    response = client.get(path, params=params)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["msg"]


def test_a_session_comes_with_its_timeline_and_cost_per_model(
        client: httpx.Client, conversations: dict[str, str]) -> None:
    detail = get(client, f"/api/sessions/{conversations['agent']}")
    kinds = [e["kind"] for e in detail["timeline"]]
    assert kinds[0] == "session_start" and kinds[-1] == "session_end"
    tool_call, _ = [e for e in detail["timeline"] if e["kind"] == "tool_call"]
    assert (tool_call["tool"], tool_call["args"], tool_call["success"]) == (
        "lookup_order", {"order_id": 42}, True)
    assert tool_call["result"].startswith("<b>Order 42</b>")
    llm = [e for e in detail["timeline"] if e["kind"] == "llm_call"]
    assert llm[0]["model"] == SONNET and llm[0]["input_tokens"] == 1500
    (model,) = detail["cost_by_model"]
    assert model["calls"] == 4 and model["cost_usd"] == pytest.approx(
        detail["session"]["cost_usd"])
    by_prefix = get(client, f"/api/sessions/{conversations['agent'][:30]}")
    assert by_prefix["session"]["id"] == conversations["agent"]
    xss = get(client, f"/api/sessions/{conversations['xss']}")
    (turn,) = [e for e in xss["timeline"] if e["kind"] == "message"]
    assert turn["input"] == XSS


def test_unknown_and_ambiguous_sessions(client: httpx.Client) -> None:
    assert client.get("/api/sessions/00000000-0000-7000-8000-000000000000").status_code == 404
    assert client.get("/api/sessions/0").status_code == 409


def test_analytics_per_bot_with_latency_percentiles_tools_and_errors(
        client: httpx.Client) -> None:
    data = get(client, "/api/analytics")
    bots = {b["bot"]: b for b in data["bots"]}
    assert bots["helper"]["sessions"] == 1 and bots["helper"]["success_rate"] == 1.0
    assert bots["support"]["sessions"] == 4 and bots["support"]["failed"] == 2
    assert bots["support"]["success_rate"] == 0.5
    assert bots["helper"]["p50_ms"] is not None and bots["helper"]["p95_ms"] >= \
        bots["helper"]["p50_ms"]
    assert [t["name"] for t in data["tools"]] == ["lookup_order"]
    assert [(e["name"], e["count"]) for e in data["error_types"]] == [("RuntimeError", 1)]
    assert sum(sum(s["values"]) for s in data["errors_over_time"]["series"]) == 1
    assert data["cost"]["day"] == pytest.approx(data["totals"]["cost_usd"])
    only = get(client, "/api/analytics", bot="helper")
    assert [b["bot"] for b in only["bots"]] == ["helper"]


def test_costs_by_every_dimension_and_the_unpriced_model(client: httpx.Client) -> None:
    total = None
    for by in ("bot", "user", "platform", "provider", "model"):
        data = get(client, "/api/costs", by=by, period="day")
        assert data["by"] == by and data["rows"]
        if total is None:
            total = data["total"]["cost_usd"]
        assert data["total"]["cost_usd"] == pytest.approx(total)
    users = {r["key"]: r for r in get(client, "/api/costs", by="user", period="month")["rows"]}
    assert users["alice"]["cost_usd"] > users["bob"]["cost_usd"] > 0
    data = get(client, "/api/costs", by="model", period="week")
    # The failed call (no usage at all) is not unpriced: only the model without a price is.
    assert [(u["provider"], u["model"], u["calls"]) for u in data["unpriced"]] == [
        ("claude", "claude-imaginary-9", 1)]


def test_health_and_prometheus_metrics(client: httpx.Client) -> None:
    assert get(client, "/healthz")["status"] == "ok"
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = response.text
    for line in ('opencell_turns_total{bot="helper"} 2',
                 'opencell_tool_calls_total{bot="helper"} 2',
                 'opencell_errors_total{bot="support"} 1',
                 'opencell_sessions_open{bot="support"} 0',
                 "opencell_recorder_queue_depth 3", "opencell_recorder_dropped_total 2",
                 'opencell_exporter_lag_events{exporter="agentops"} 7',
                 'opencell_unpriced_calls_total{bot="support"} 1'):
        assert line in text, line
    assert "lag seconds" not in text  # an invalid metric name is skipped
    assert 'opencell_tokens_total{bot="helper",type="input"} 8000' in text


def test_the_openapi_schema_documents_every_route(client: httpx.Client) -> None:
    schema = get(client, "/api/openapi.json")
    assert {"/api/sessions", "/api/sessions/{session_id}", "/api/analytics", "/api/costs",
            "/api/stream", "/healthz", "/metrics"} <= set(schema["paths"])
    params = {p["name"] for p in schema["paths"]["/api/sessions"]["get"]["parameters"]}
    assert {"bot", "user", "platform", "status", "tag", "q", "since", "until", "sort",
            "cursor", "limit"} <= params


def test_the_replay_puts_each_turns_calls_between_its_message_and_its_answer(
        client: httpx.Client, conversations: dict[str, str]) -> None:
    from opencell.dashboard.pages import replay

    detail = get(client, f"/api/sessions/{conversations['agent']}")
    order = [item["type"] for item in replay(detail["timeline"])]
    assert order == ["session_start",
                     "user", "llm_call", "tool_call", "llm_call", "bot",
                     "user", "llm_call", "tool_call", "llm_call", "bot",
                     "session_end"]
    failed = get(client, f"/api/sessions/{conversations['failed']}")
    order = [item["type"] for item in replay(failed["timeline"])]
    # The turn's error is recorded before its message (the apology the user received), so
    # an exporter building the turn when the message arrives has it: it shows before the reply.
    assert order == ["session_start", "user", "llm_call", "error", "bot", "session_end"]


def test_without_a_hook_exporter_lag_comes_from_the_cursors_in_the_store(store: Store) -> None:
    from opencell.store.tables import export_cursors

    with store.engine.begin() as conn:
        conn.execute(export_cursors.insert().values(exporter="otlp", last_event_id=3))
        newest = conn.execute(sa.text("SELECT max(id) FROM events")).scalar()
    app = create_app(store)
    transport = _SyncASGI(httpx.ASGITransport(app=app))  # type: ignore[arg-type]
    with httpx.Client(transport=transport, base_url="http://127.0.0.1") as client:
        text = client.get("/metrics").text
    assert f'opencell_exporter_lag_events{{exporter="otlp"}} {float(newest - 3)!r}' in text
    assert "opencell_recorder_queue_depth" not in text  # no recorder in this process


def test_pages_answer_bad_input_with_a_page_not_a_traceback(client: httpx.Client) -> None:
    bad = client.get("/sessions", params={"status": "bogus"})
    assert bad.status_code == 422 and bad.headers["content-type"].startswith("text/html")
    assert "That filter is not valid" in bad.text and "status" in bad.text
    missing = client.get("/sessions/00000000-0000-7000-8000-000000000000")
    assert missing.status_code == 404 and "no session" in missing.text
    assert client.get("/analytics", params={"since": "someday"}).status_code == 422
    assert client.get("/costs", params={"period": "decade"}).status_code == 422
    assert client.get("/", follow_redirects=False).headers["location"] == "/sessions"
