"""The App builds one ledger for its bots; sync picks up other processes; `opencell budgets`."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from opencell.app import App
from opencell.budgets import BudgetedLLM, BudgetLedger
from opencell.config import BotBudget, BotConfig, OpenCellConfig, StoreConfig
from opencell.llm.base import Usage
from opencell.observability.observer import Observability
from opencell.runtime import BotRuntime
from tests.budgets.conftest import CALL_COST, SONNET, bot, message, noon_zone, observability
from tests.conftest import opencell
from tests.fakes.adapter import RecordingAdapter
from tests.fakes.llm_server import FakeLLMServer


def ChannelAdapter(bot: BotConfig) -> RecordingAdapter:  # noqa: N802 - reads as the class
    """The alert channel's platform: Slack, recording what it is sent."""
    return RecordingAdapter(bot, "slack")


async def test_the_app_wraps_every_bot_and_posts_alerts_to_the_alert_channel(
        isolated_store: str, fake_llm: FakeLLMServer) -> None:
    config = OpenCellConfig.model_validate({
        "store": {"url": isolated_store},
        "budgets": {"timezone": noon_zone(), "alert_channel": "support/slack/C0ALERTS",
                    "limits": [{"scope": "global", "daily_usd": 0.02}]}})
    support = bot(budget=BotBudget(daily_usd=5))
    adapters: list[RecordingAdapter] = []

    def factory(b: BotConfig, _platform: str) -> RecordingAdapter:
        adapters.append(ChannelAdapter(b))
        return adapters[-1]

    app = App([support], config, platforms={"support": ["slack"]}, adapter_factory=factory,
              env={"ANTHROPIC_API_KEY": "sk-ant-test", "ANTHROPIC_BASE_URL": fake_llm.url})
    assert app.budgets is not None
    assert [limit.id for limit in app.budgets.limits] == ["global:*/day/0.02",
                                                           "bot:support/day/5"]
    assert isinstance(app.runtimes["support"].llm, BudgetedLLM)
    await app.start()
    reply = await app.dispatch(message("hello", platform="slack"))
    assert reply is not None and not reply.failed
    # The channel post runs on this loop: wait off it.
    assert await asyncio.to_thread(app.budgets.notifier.flush, 5.0)
    await app.stop()
    sent = adapters[0].sent
    assert [(r.key.channel if r.key else None, r.text[:15]) for r in sent] == [
        ("C0ALERTS", "Budget at 80%: ")]


def test_without_budgets_the_app_builds_no_ledger(isolated_store: str) -> None:
    config = OpenCellConfig(store=StoreConfig(url=isolated_store))
    app = App([bot()], config, platforms={"support": ["slack"]},
              adapter_factory=lambda b, _platform: ChannelAdapter(b),
              env={"ANTHROPIC_API_KEY": "sk-ant-test"})
    assert app.budgets is None
    assert not isinstance(app.runtimes["support"].llm.inner,  # type: ignore[attr-defined]
                          BudgetedLLM)
    app.observability.close()


async def test_sync_adds_what_other_processes_spent_without_counting_ours_twice(
        isolated_store: str, obs: Observability, fake_llm: FakeLLMServer) -> None:
    budgets = OpenCellConfig.model_validate({"budgets": {
        "timezone": noon_zone(), "limits": [{"scope": "user", "daily_usd": 1}]}}).budgets
    support = bot()
    ledger = BudgetLedger(budgets, [support], observability=obs)
    runtime = BotRuntime(support, observability=obs, budgets=ledger,
                         env={"ANTHROPIC_API_KEY": "sk-ant-test",
                              "ANTHROPIC_BASE_URL": fake_llm.url})
    await runtime.dispatch(message("ours"))
    other = observability(isolated_store)  # another process sharing the store
    sid = other.start_session(bot="support", bot_type="conversational", user_id="alice",
                              platform="discord")
    other.usage(sid, provider="claude", model=SONNET, usage=Usage(1500, 800), cost_usd=None,
                started=time.time(), duration_ms=1.0)
    other.close()
    assert ledger.usage()[0]["spent_usd"] == round(CALL_COST, 6)
    assert ledger.sync()
    assert ledger.usage()[0]["spent_usd"] == round(2 * CALL_COST, 6)
    await runtime.dispatch(message("ours again"))
    assert ledger.sync()
    assert ledger.usage()[0]["spent_usd"] == round(3 * CALL_COST, 6)
    await runtime.aclose()
    ledger.close()


async def test_opencell_budgets_shows_usage_per_scope_and_alerts(
        tmp_path: Path, isolated_store: str, obs: Observability,
        fake_llm: FakeLLMServer) -> None:
    zone = noon_zone()
    config_file = tmp_path / "opencell.yaml"
    config_file.write_text(
        f"budgets:\n  timezone: {zone}\n  limits:\n"
        "    - {scope: global, daily_usd: 0.05, monthly_usd: 10}\n"
        "    - {scope: user, daily_usd: 0.04, enforce: true}\n")
    bot_file = tmp_path / "support.yaml"
    bot_file.write_text(f"name: support\nllm: {{provider: claude, model: {SONNET}}}\n"
                        "budget: {weekly_usd: 2}\n")
    budgets = OpenCellConfig.model_validate(
        {"budgets": {"timezone": zone, "limits": [{"scope": "global", "daily_usd": 0.05}]}})
    support = bot()
    ledger = BudgetLedger(budgets.budgets, [support], observability=obs)
    runtime = BotRuntime(support, observability=obs, budgets=ledger,
                         env={"ANTHROPIC_API_KEY": "sk-ant-test",
                              "ANTHROPIC_BASE_URL": fake_llm.url})
    for user in ("alice", "alice", "bob"):
        await runtime.dispatch(message("hi", user=user))
    await runtime.aclose()
    assert ledger.close(5.0)
    obs.close()

    result = opencell("budgets", str(bot_file), "--json", "--config", str(config_file))
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    rows = {(r["scope"], r["period"]): r for r in document["usage"]}
    assert set(rows) == {("global", "day"), ("global", "month"), ("user:alice", "day"),
                         ("user:bob", "day"), ("bot:support", "week")}
    assert rows[("global", "day")]["spent_usd"] == round(3 * CALL_COST, 6)
    assert rows[("global", "day")]["percent"] == 99.0
    assert rows[("user:alice", "day")]["enforce"] is True
    assert rows[("user:alice", "day")]["remaining_usd"] == round(0.04 - 2 * CALL_COST, 6)
    alerts = document["alerts"]
    assert [(a["kind"], a["threshold"], a["scope"], a["active"]) for a in alerts] == [
        ("threshold", 0.8, "global", True)]

    result = opencell("budgets", "--config", str(config_file))
    assert result.returncode == 0, result.stderr
    for text in ("global", "user:alice", "$0.0495", "99%", "Budget at 80%: all bots spent"):
        assert text in result.stdout
