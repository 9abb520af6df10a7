"""Limits and periods, and spend read back from the store in any time zone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from opencell.budgets import BudgetLedger, CallScope, build_limits
from opencell.budgets._store import BudgetStore
from opencell.budgets.periods import utc_days, window_of
from opencell.config import BotBudget, BudgetsConfig, OpenCellConfig, load_config
from opencell.errors import ConfigError
from opencell.records import Record
from opencell.store.store import Store
from tests.budgets.conftest import bot, budgets

BERLIN = ZoneInfo("Europe/Berlin")


def at(text: str, zone: ZoneInfo | None = None) -> float:
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=zone or UTC).timestamp()


def test_windows_start_at_local_midnight_monday_and_the_first() -> None:
    now = at("2026-03-29T01:30", BERLIN)  # a Sunday; DST starts at 02:00 that night
    day, week, month = (window_of(p, now, BERLIN) for p in ("day", "week", "month"))
    assert (day.key, week.key, month.key) == ("day:2026-03-29", "week:2026-03-23",
                                              "month:2026-03")
    assert day.start == at("2026-03-29T00:00", BERLIN)
    assert day.end - day.start == 23 * 3600  # the short day
    assert week.first_day == date(2026, 3, 23) and month.end == at("2026-04-01T00:00", BERLIN)
    december = window_of("month", at("2026-12-31T23:00"), ZoneInfo("UTC"))
    assert december.end == at("2027-01-01T00:00")


def test_a_window_splits_into_whole_utc_days_and_partial_edges() -> None:
    window = window_of("day", at("2026-01-15T12:00", BERLIN), BERLIN)  # UTC+1 in winter
    whole, edges = utc_days(window.start, window.end)
    assert whole == [] and edges == [(at("2026-01-14T23:00"), at("2026-01-15T00:00")),
                                     (at("2026-01-15T00:00"), at("2026-01-15T23:00"))]
    week = window_of("week", at("2026-01-15T12:00"), ZoneInfo("UTC"))
    assert utc_days(week.start, week.end) == ([f"2026-01-{d}" for d in range(12, 19)], [])


def test_limits_from_the_config_and_from_bots() -> None:
    config = BudgetsConfig.model_validate({"limits": [
        {"scope": "global", "daily_usd": 10, "monthly_usd": 200},
        {"scope": "user", "match": "alice", "weekly_usd": 2, "enforce": True,
         "alert_at": [1.0, 0.5, 0.5]}]})
    limits = build_limits(config, [bot(budget=BotBudget(daily_usd=1, scope="user")),
                                   bot("devops", budget=BotBudget(monthly_usd=30))])
    assert [limit.id for limit in limits] == [
        "global:*/day/10", "global:*/month/200", "user:alice/week/2",
        "bot_user:support/day/1", "bot:devops/month/30"]
    assert limits[2].alert_at == (0.5, 1.0) and limits[2].enforce
    alice = CallScope(bot="support", user="alice", platform="slack")
    bob = CallScope(bot="devops", user="bob", platform="discord")
    assert [limit.label(alice) for limit in limits] == [
        "global", "global", "user:alice", "bot:support/user:alice", None]
    assert [limit.label(bob) for limit in limits] == [
        "global", "global", None, None, "bot:devops"]


def test_a_bad_time_zone_or_alert_channel_is_a_located_config_error(tmp_path: Path) -> None:
    path = tmp_path / "opencell.yaml"
    path.write_text("budgets:\n  timezone: Mars/Olympus\n  alert_channel: support\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    text = str(caught.value)
    assert "opencell.yaml:2: budgets.timezone: 'Mars/Olympus' is not a time zone" in text
    assert "opencell.yaml:3: budgets.alert_channel: 'support' is not bot/platform/channel" in text


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(f"sqlite:///{tmp_path / 's.db'}")
    yield opened
    opened.close()


def _session(sid: str, ts: float, bot: str, user: str, platform: str) -> Record:
    return Record("session_start", sid, ts, bot, {"bot": bot, "user_id": user,
                                                  "platform": platform})


def _call(sid: str, ts: float, cost: float | None) -> Record:
    return Record("llm_call", sid, ts, "claude:x", {"provider": "claude", "model": "x",
                                                    "input_tokens": 1, "cost_usd": cost})


def test_spend_is_exact_in_any_zone_and_seeds_the_ledger(store: Store) -> None:
    store.write_batch([
        _session("s1", at("2026-01-14T10:00"), "support", "alice", "slack"),
        _session("s2", at("2026-01-14T10:00"), "support", "bob", "discord"),
        _call("s1", at("2026-01-14T22:30"), 1.0),   # 23:30 in Berlin: 14 January there
        _call("s1", at("2026-01-14T23:30"), 2.0),   # 00:30 in Berlin: the 15th
        _call("s2", at("2026-01-15T12:00"), 4.0),
        _call("s2", at("2026-01-15T12:00"), None),  # unpriced
        _call("s1", at("2026-01-15T23:30"), 8.0),   # the 16th in Berlin
        Record("llm_call", "s1", at("2026-01-15T13:00"), "claude:x", {"error": "boom"}),
    ])
    spend = BudgetStore(store)
    utc = window_of("day", at("2026-01-15T12:00"), ZoneInfo("UTC"))
    berlin = window_of("day", at("2026-01-15T12:00"), BERLIN)
    by_user = {row.user: (row.cost_usd, row.unpriced_calls)
               for row in spend.spend(utc.start, utc.end)}
    assert by_user == {"alice": (8.0, 0), "bob": (4.0, 1)}
    by_user = {row.user: (row.cost_usd, row.unpriced_calls)
               for row in spend.spend(berlin.start, berlin.end)}
    assert by_user == {"alice": (2.0, 0), "bob": (4.0, 1)}

    config = OpenCellConfig.model_validate({"budgets": {"timezone": "Europe/Berlin", "limits": [
        {"scope": "global", "daily_usd": 10}, {"scope": "user", "daily_usd": 5}]}})
    ledger = BudgetLedger(config.budgets, store=store, wall=lambda: at("2026-01-15T12:00"))
    usage = {(row["scope"], row["limit"]): (row["spent_usd"], row["unpriced_calls"])
             for row in ledger.usage()}
    assert usage == {("global", "global:*/day/10"): (6.0, 1),
                     ("user:bob", "user:*/day/5"): (4.0, 1),
                     ("user:alice", "user:*/day/5"): (2.0, 0)}


def test_usage_lists_each_scope_with_a_placeholder_when_nothing_was_spent() -> None:
    ledger = BudgetLedger(budgets(limits=[{"scope": "platform", "weekly_usd": 3}]),
                          [bot(budget=BotBudget(daily_usd=1, scope="user"))])
    assert [(row["scope"], row["spent_usd"], row["percent"]) for row in ledger.usage()] == [
        ("platform:*", 0.0, 0.0), ("bot:support/user:*", 0.0, 0.0)]
