"""The dashboard's budgets: ``GET /api/budgets``, the budgets page, the active-alerts banner."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from opencell.budgets import BudgetLedger
from opencell.config import BudgetsConfig
from opencell.dashboard.app import create_app
from opencell.dashboard.budgets import BudgetSource, store_budgets
from opencell.observability.observer import Observability
from opencell.runtime import BotRuntime
from opencell.store.store import Store
from tests.budgets.conftest import CALL_COST, bot, budgets, message, noon_zone
from tests.fakes.llm_server import FakeLLMServer


async def spend(obs: Observability, config: BudgetsConfig, fake: FakeLLMServer,
                users: list[str]) -> BudgetLedger:
    """One turn per user through a budgeted runtime ($0.0165 each)."""
    support = bot()
    ledger = BudgetLedger(config, [support], observability=obs)
    runtime = BotRuntime(support, observability=obs, budgets=ledger,
                         env={"ANTHROPIC_API_KEY": "sk-ant-test",
                              "ANTHROPIC_BASE_URL": fake.url})
    for user in users:
        await runtime.dispatch(message("<b>hi</b>", user=user))
    await runtime.aclose()
    assert ledger.notifier.flush(5.0)
    return ledger


class Dashboard:
    """The dashboard app over the test's store, with a budget source of the test's choice."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.clients: list[httpx.AsyncClient] = []

    def client(self, source: BudgetSource | None) -> httpx.AsyncClient:
        app = create_app(self.store, budgets=source)
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                   base_url="http://127.0.0.1")
        self.clients.append(client)
        return client


@pytest.fixture
async def dashboard(isolated_store: str) -> AsyncIterator[Dashboard]:
    store = Store.open(isolated_store)
    served = Dashboard(store)
    yield served
    for client in served.clients:
        await client.aclose()
    store.close()


async def test_budgets_api_page_and_banner_from_the_live_ledger(
        obs: Observability, fake_llm: FakeLLMServer,
        dashboard: Dashboard) -> None:
    config = budgets(timezone=noon_zone(), limits=[
        {"scope": "global", "daily_usd": 0.05}, {"scope": "user", "monthly_usd": 1,
                                                 "enforce": True}])
    ledger = await spend(obs, config, fake_llm, ["alice", "alice", "<script>x</script>"])
    client = dashboard.client(lambda: ledger)

    body = (await client.get("/api/budgets")).json()
    assert body["configured"] and body["timezone"] == config.timezone
    rows = {(r["scope"], r["period"]): r for r in body["usage"]}
    assert rows[("global", "day")]["spent_usd"] == round(3 * CALL_COST, 6)
    assert rows[("user:alice", "month")]["enforce"] is True
    assert [(a["kind"], a["threshold"], a["active"]) for a in body["alerts"]] == [
        ("threshold", 0.8, True)]
    assert (await client.get("/api/budgets?days=-1")).status_code == 422
    assert "/api/budgets" in (await client.get("/api/openapi.json")).json()["paths"]

    page = (await client.get("/budgets")).text
    assert 'id="active-alerts"' in page and "Budget at 80%: all bots spent $0.0495" in page
    assert 'data-scope="user:alice"' in page and "99%" in page
    assert "<script>x</script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page
    assert '<a href="/budgets"' in page  # in the navigation

    sessions = (await client.get("/sessions")).text
    assert 'id="budget-banner"' in sessions and "Budget at 80%" in sessions
    ledger.close()


async def test_the_standalone_dashboard_reads_budgets_from_the_store(
        obs: Observability, fake_llm: FakeLLMServer,
        dashboard: Dashboard) -> None:
    config = budgets(timezone=noon_zone(), limits=[{"scope": "bot", "daily_usd": 1}])
    ledger = await spend(obs, config, fake_llm, ["alice", "bob"])
    ledger.close()
    obs.recorder.flush(5.0)
    client = dashboard.client(store_budgets(config, dashboard.store))
    body = (await client.get("/api/budgets")).json()
    assert [(r["scope"], r["spent_usd"], r["percent"]) for r in body["usage"]] == [
        ("bot:support", round(2 * CALL_COST, 6), 3.3)]
    sessions = (await client.get("/sessions")).text
    assert 'id="budget-banner"' not in sessions  # nothing is alerting


async def test_without_budgets_the_page_says_how_to_add_them(
        dashboard: Dashboard) -> None:
    client = dashboard.client(None)
    assert (await client.get("/api/budgets")).json() == {
        "configured": False, "timezone": None, "usage": [], "alerts": []}
    page = (await client.get("/budgets")).text
    assert 'id="no-budgets"' in page
    assert store_budgets(BudgetsConfig(), dashboard.store) is None
