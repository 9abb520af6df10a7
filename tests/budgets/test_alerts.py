"""Threshold alerts: once per threshold per period, stored so a restart repeats none."""

from __future__ import annotations

import time

import sqlalchemy as sa

from opencell.budgets import BudgetLedger
from opencell.config import BudgetsConfig
from opencell.runtime import BotRuntime
from opencell.store.store import Store
from opencell.store.tables import budget_alerts
from tests.budgets.conftest import (
    CALL_COST,
    Wall,
    bot,
    budgets,
    days,
    message,
    noon_zone,
    observability,
)
from tests.fakes.llm_server import FakeLLMServer


async def _calls(url: str, fake: FakeLLMServer, config: BudgetsConfig, wall: Wall, n: int,
                 ) -> tuple[list[list[tuple[str, float | None]]], list[dict[str, object]]]:
    """Run ``n`` turns in a fresh process-like setup; the threshold alerts raised after each,
    and the ledger's usage at the end."""
    obs = observability(url)
    support = bot()
    ledger = BudgetLedger(config, [support], observability=obs, wall=wall)
    runtime = BotRuntime(support, observability=obs, budgets=ledger,
                         env={"ANTHROPIC_API_KEY": "sk-ant-test",
                              "ANTHROPIC_BASE_URL": fake.url})
    raised: list[list[tuple[str, float | None]]] = []
    try:
        for i in range(n):
            reply = await runtime.dispatch(message(f"question {i}"))
            assert reply is not None and not reply.failed, reply
            assert ledger.notifier.flush(5.0)
            raised.append([(a.kind, a.threshold) for a in ledger.notifier.recent
                           if a.kind == "threshold"])
        usage = ledger.usage()
    finally:
        await runtime.aclose()
        ledger.close()
        obs.close()
    return raised, usage


async def test_80_and_100_percent_fire_once_survive_a_restart_and_reset_next_day(
        isolated_store: str, fake_llm: FakeLLMServer) -> None:
    config = budgets(timezone=noon_zone(), limits=[{"scope": "global", "daily_usd": 0.05}])
    wall = Wall(time.time())

    raised, _ = await _calls(isolated_store, fake_llm, config, wall, 5)
    eighty, hundred = ("threshold", 0.8), ("threshold", 1.0)
    assert raised == [[], [], [eighty], [eighty, hundred], [eighty, hundred]]

    # A new process over the same store: the day's spend is read back, nothing is repeated.
    raised, usage = await _calls(isolated_store, fake_llm, config, wall, 2)
    assert raised == [[], []]
    assert usage[0]["spent_usd"] == round(7 * CALL_COST, 6)
    assert usage[0]["alerted_at"] == 1.0

    wall.advance(days(1))  # the next day starts fresh
    raised, usage = await _calls(isolated_store, fake_llm, config, wall, 4)
    assert raised == [[], [], [eighty], [eighty, hundred]]
    assert usage[0]["spent_usd"] == round(4 * CALL_COST, 6)
    assert len(fake_llm.requests) == 11

    store = Store.open(isolated_store)
    try:
        with store.engine.connect() as conn:
            rows = conn.execute(sa.select(budget_alerts.c.kind, budget_alerts.c.threshold)
                                .order_by(budget_alerts.c.id)).all()
        assert [tuple(r) for r in rows] == [eighty, hundred, eighty, hundred]
        sessions, _ = store.list_sessions(sort="started_at", descending=False, limit=10)
        assert [e for e in store.timeline(sessions[1]["id"]) if e["kind"] == "alert"] == []
        timeline = store.timeline(sessions[0]["id"])  # the first process's session
        alerts = [e for e in timeline if e["kind"] == "alert"]
        assert [(a["name"], a["threshold"], a["scope"]) for a in alerts] == [
            ("budget_threshold", 0.8, "global"), ("budget_threshold", 1.0, "global")]
        assert "Budget at 80%: all bots spent $0.0495 of its $0.0500 daily" in alerts[0]["message"]
    finally:
        store.close()


async def test_one_call_past_several_thresholds_raises_only_the_highest(
        isolated_store: str, fake_llm: FakeLLMServer) -> None:
    config = budgets(timezone=noon_zone(),
                     limits=[{"scope": "user", "daily_usd": 0.03, "alert_at": [0.5, 0.8, 1.0]}])
    raised, usage = await _calls(isolated_store, fake_llm, config, Wall(time.time()), 2)
    assert raised == [[("threshold", 0.5)], [("threshold", 0.5), ("threshold", 1.0)]]
    assert usage[0]["scope"] == "user:alice" and usage[0]["percent"] == 110.0
