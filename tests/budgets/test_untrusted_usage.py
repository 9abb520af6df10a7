"""Budgets do not trust what a provider reports: negative or missing usage never lowers a tally.

A real enforced budget, the real SDKs and the loopback fake LLM server answering with negative
usage or none at all: the cap lets through as many calls as their worst cases fit, each call is
stored flagged ``usage_estimated`` at its reserved worst-case cost, and ``opencell costs``, the
session view and the dashboard say so.
"""

from __future__ import annotations

import json
import re
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from opencell.budgets import BudgetLedger
from opencell.budgets.limits import CallScope, Limit
from opencell.budgets.periods import window_of
from opencell.budgets.reservations import Hold, Reservation, Tallies
from opencell.dashboard.app import create_app
from opencell.llm import ChatMessage, LLMRequest
from opencell.llm.base import Usage
from opencell.llm.pricing import PriceBook
from opencell.llm.usage import worst_case_usage
from opencell.observability.observer import Observability
from opencell.runtime import BotRuntime
from opencell.store.store import Store
from tests.budgets.conftest import SONNET, bot, budgets, message, noon_zone, observability
from tests.conftest import clean_env, opencell
from tests.fakes.function_llm import FunctionLLM, answer
from tests.fakes.llm_server import FakeLLMServer, Step

CAP = 0.10
NEGATIVE = {"claude": {"input_tokens": -100_000, "output_tokens": -100_000},
            "openai": {"prompt_tokens": -100_000, "completion_tokens": -100_000}}


def env(provider: str, fake: FakeLLMServer) -> dict[str, str]:
    if provider == "claude":
        return {"ANTHROPIC_API_KEY": "sk-ant-test", "ANTHROPIC_BASE_URL": fake.url}
    name = provider.upper()
    return {f"{name}_API_KEY": "sk-test", f"{name}_BASE_URL": fake.openai_base_url}


def worst_cost(provider: str, model: str, text: str) -> float:
    """What one call of ``text`` reserves: its input estimate and all 1,024 output tokens."""
    request = LLMRequest(system=bot().system_prompt, messages=[ChatMessage("user", text)],
                         max_tokens=1024)
    cost = PriceBook().price(provider, model, worst_case_usage(request))
    assert cost is not None
    return cost.total_usd


def stored_calls(url: str) -> list[dict[str, Any]]:
    store = Store.open(url)
    try:
        sessions = store.list_sessions(limit=100)[0]
        return [e for s in sessions for e in store.timeline(s["id"]) if e["kind"] == "llm_call"]
    finally:
        store.close()


CASES = [
    # provider, model, how the fake answers, calls the $0.10/day cap lets through
    pytest.param("claude", SONNET, "honest", 6, id="claude-honest"),  # $0.0165 a call
    pytest.param("claude", SONNET, "negative", 6, id="claude-negative"),  # ~$0.0155 reserved
    pytest.param("claude", SONNET, "absent", 6, id="claude-no-usage"),
    pytest.param("openai", "gpt-4o", "negative", 9, id="openai-negative"),  # ~$0.0103 reserved
    pytest.param("openai", "gpt-4o", "absent", 9, id="openai-no-usage"),
    pytest.param("moonshot", "moonshot-v1-8k", "null", 48, id="moonshot-null-usage"),
]


@pytest.mark.parametrize(("provider", "model", "how", "passes"), CASES)
async def test_an_enforced_cap_counts_untrusted_calls_at_their_worst_case(
        isolated_store: str, obs: Observability, provider: str, model: str, how: str,
        passes: int) -> None:
    def play(_request: Any) -> Step:
        if how == "honest":
            return Step(text="ok", usage={"input_tokens": 1500, "output_tokens": 800})
        if how == "negative":
            return Step(text="ok", usage=NEGATIVE["claude" if provider == "claude" else "openai"])
        return Step(text="ok", no_usage=how)  # type: ignore[arg-type]

    support = bot(llm={"provider": provider, "model": model, "max_tokens": 1024,
                       "max_retries": 0})
    config = budgets(timezone=noon_zone(),
                     limits=[{"scope": "global", "daily_usd": CAP, "enforce": True}])
    async with FakeLLMServer(model=play) as fake:
        ledger = BudgetLedger(config, [support], observability=obs)
        runtime = BotRuntime(support, observability=obs, env=env(provider, fake),
                             budgets=ledger)
        # One user each: every request is the same size, so every call reserves the same.
        replies = [await runtime.dispatch(message("what now?", user=f"u{i:02d}"))
                   for i in range(60)]
        await runtime.aclose()
        made = len(fake.requests)
    assert made == passes
    assert [bool(r and r.failed) for r in replies] == [False] * passes + [True] * (60 - passes)

    usage = ledger.usage()[0]
    assert ledger.close(5.0)
    obs.close()
    worst = worst_cost(provider, model, "what now?")
    calls = stored_calls(isolated_store)
    assert len(calls) == passes
    if how == "honest":
        assert usage["spent_usd"] == pytest.approx(passes * 0.0165, abs=1e-6)
        assert not any(c.get("usage_estimated") for c in calls)
        return
    # Never below the worst case, never negative, and the record says it is an estimate.
    assert usage["spent_usd"] == pytest.approx(passes * worst, abs=1e-6)
    assert usage["spent_usd"] + worst > CAP
    for call in calls:
        data = call
        assert data["usage_estimated"] is True
        assert data["cost_usd"] == pytest.approx(worst)
        assert data["output_tokens"] == 1024 and data["input_tokens"] > 0
    store = Store.open(isolated_store)
    try:
        [row] = store.costs(by="model")
    finally:
        store.close()
    assert (row["key"], row["calls"], row["estimated_calls"]) == (model, passes, passes)
    assert row["cost_usd"] == pytest.approx(passes * worst, abs=1e-6)


async def untrusted_then_honest(url: str, fake: FakeLLMServer) -> str:
    """Two calls with no usage and one honest one, no budget at all; the session id."""
    fake.push(Step(text="a", no_usage="absent"),
              Step(text="b", usage={"input_tokens": -5, "output_tokens": 3}),
              Step(text="c", usage={"input_tokens": 1500, "output_tokens": 800}))
    obs = observability(url)
    runtime = BotRuntime(bot(), observability=obs, env=env("claude", fake))
    session_id = await runtime.start_session("alice", "console")
    for text in ("one", "two", "three"):
        await runtime.process_message(text)
    await runtime.end_session()
    await runtime.aclose()
    obs.close()
    return session_id


async def test_costs_and_session_views_show_estimated_calls(isolated_store: str) -> None:
    async with FakeLLMServer() as fake:
        session_id = await untrusted_then_honest(isolated_store, fake)
    run_env = clean_env(OPENCELL_DATABASE_URL=isolated_store)

    result = opencell("costs", "--by", "model", "--json", env=run_env)
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["estimated_calls"] == 2
    assert [(r["key"], r["calls"], r["estimated_calls"]) for r in doc["rows"]] == [
        (SONNET, 3, 2)]
    worst = worst_cost("claude", SONNET, "one")
    assert doc["total_usd"] > 2 * worst  # the unknown calls cost their worst case, not $0

    table = opencell("costs", "--by", "model", env=run_env)  # piped: TSV, the note on stderr
    assert table.returncode == 0, table.stderr
    assert "estimated" in table.stdout.splitlines()[0].split("\t")
    assert re.search(r"2 call\(s\) had missing or impossible usage", table.stderr)

    detail = opencell("session", session_id, "--json", env=run_env)
    assert detail.returncode == 0, detail.stderr
    flags = [e.get("usage_estimated", False) for e in json.loads(detail.stdout)["timeline"]
             if e["kind"] == "llm_call"]
    assert flags == [True, True, False]
    text = opencell("session", session_id, env=run_env | {"COLUMNS": "200"})
    assert text.stdout.count("usage estimated") == 2


async def test_the_dashboard_flags_estimated_calls(isolated_store: str) -> None:
    async with FakeLLMServer() as fake:
        session_id = await untrusted_then_honest(isolated_store, fake)
    store = Store.open(isolated_store)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(store)),
                               base_url="http://127.0.0.1")
    try:
        costs = await client.get("/costs", params={"period": "day"})
        page = await client.get(f"/sessions/{session_id}")
        api = await client.get("/api/costs", params={"by": "model", "period": "day"})
    finally:
        await client.aclose()
        store.close()
    assert costs.status_code == 200 and page.status_code == 200
    banner = costs.text.split('id="estimated"', 1)[1].split("</div>", 1)[0]
    assert "2 model call(s) this day had usage estimated" in banner
    assert f"claude/{SONNET}" in banner
    assert page.text.count("data-usage-estimated") == 2
    assert api.status_code == 200
    assert [(e["model"], e["calls"]) for e in api.json()["estimated"]] == [(SONNET, 2)]


async def test_a_client_that_does_not_check_its_usage_still_cannot_lower_a_tally(
        isolated_store: str, obs: Observability) -> None:
    """A user's own LLMClient (no provider reader in between) answers negative usage."""
    llm = FunctionLLM(lambda _r: answer("ok", usage=Usage(-100_000, -100_000), model=SONNET),
                      provider="claude", model=SONNET)
    support = bot()
    config = budgets(timezone=noon_zone(),
                     limits=[{"scope": "global", "daily_usd": CAP, "enforce": True}])
    ledger = BudgetLedger(config, [support], observability=obs)
    runtime = BotRuntime(support, llm=llm, observability=obs, budgets=ledger)
    for i in range(20):
        await runtime.dispatch(message("what now?", user=f"u{i:02d}"))
    await runtime.aclose()
    worst = worst_cost("claude", SONNET, "what now?")
    assert len(llm.requests) == 6
    assert ledger.usage()[0]["spent_usd"] == pytest.approx(6 * worst, abs=1e-6)
    assert ledger.close(5.0)
    obs.close()
    # What is stored is never negative either, so a later sync cannot lower the tally.
    assert [c["cost_usd"] for c in stored_calls(isolated_store)] == [0.0] * 6


def test_a_negative_or_unreadable_cost_settles_at_the_reservation() -> None:
    tallies = Tallies()
    call = CallScope(bot="support", user="alice", platform="discord")
    limit = Limit(scope="global", match=None, period="day", usd=1.0, alert_at=(),
                  enforce=True)
    hold = Hold(limit, "global", window_of("day", 0.0, ZoneInfo("UTC")))
    for cost in (-3.0, float("nan"), float("inf"), 0.25):
        reservation = tallies.reserve(call, [hold], 0.1, block_unpriced=False, ts=0.0)
        assert isinstance(reservation, Reservation)
        tallies.settle(reservation, cost)
    tally = tallies.get(hold.key)
    assert tally.spent == pytest.approx(0.1 + 0.1 + 0.1 + 0.25)
    assert tally.reserved == 0.0


def test_negative_counts_are_never_priced_below_zero() -> None:
    cost = PriceBook().price("claude", SONNET, Usage(-1_000_000, 1000))
    assert cost is not None and cost.total_usd == pytest.approx(0.015)
