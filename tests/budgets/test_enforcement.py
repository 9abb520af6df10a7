"""Enforcement: calls that would pass an enforced limit are never made; concurrency is safe."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from opencell.budgets import BudgetedLLM, BudgetLedger, estimate_input_tokens
from opencell.config import BotBudget, ToolEntry
from opencell.llm.base import ChatMessage, LLMRequest, ToolCall, ToolSpec, Usage
from opencell.observability.observer import Observability
from opencell.runtime import BotRuntime
from opencell.store.store import Store
from tests.budgets.conftest import (
    CALL_COST,
    SONNET,
    Wall,
    bot,
    budgets,
    message,
    noon_zone,
)
from tests.fakes.function_llm import FunctionLLM, answer
from tests.fakes.llm_server import FakeLLMServer
from tests.fakes.waiting import until

SORRY = "Our budget for today is used up; please come back tomorrow."


def env(fake: FakeLLMServer) -> dict[str, str]:
    return {"ANTHROPIC_API_KEY": "sk-ant-test", "ANTHROPIC_BASE_URL": fake.url}


async def test_the_call_that_would_cross_never_reaches_the_model(
        isolated_store: str, obs: Observability, fake_llm: FakeLLMServer) -> None:
    config = budgets(timezone=noon_zone(), blocked_message=SORRY,
                     limits=[{"scope": "user", "daily_usd": 0.05, "enforce": True}])
    support = bot()
    ledger = BudgetLedger(config, [support], observability=obs, wall=Wall(time.time()))
    runtime = BotRuntime(support, observability=obs, env=env(fake_llm), budgets=ledger)
    replies = [await runtime.dispatch(message(f"q{i}")) for i in range(4)]
    assert [r.failed for r in replies if r] == [False, False, False, True]
    assert replies[3] is not None and replies[3].text == SORRY
    # Three calls cost $0.0495; the fourth would have passed $0.05 and was not made.
    assert [r.last_user_text for r in fake_llm.requests] == ["q0", "q1", "q2"]
    other = await runtime.dispatch(message("hello", user="bob"))  # bob's own budget
    assert other is not None and not other.failed and len(fake_llm.requests) == 4

    await runtime.aclose()
    assert ledger.close(5.0)
    obs.close()
    store = Store.open(isolated_store)
    try:
        alice = next(s for s in store.list_sessions(limit=10)[0] if s["user_id"] == "alice")
        timeline = store.timeline(alice["id"])
    finally:
        store.close()
    blocked = [e for e in timeline if e["kind"] == "custom" and e["name"] == "budget_blocked"]
    assert len(blocked) == 1
    assert blocked[0]["data"]["scope"] == "user:alice"
    assert blocked[0]["data"]["spent_usd"] == pytest.approx(3 * CALL_COST)
    assert blocked[0]["data"]["reason"] == "over_budget"
    # The alerts are recorded by the alert thread, so their place among the events may vary.
    kinds = sorted((e["kind"], e["name"]) for e in timeline if e["kind"] in ("alert", "custom"))
    assert kinds == [("alert", "budget_blocked"), ("alert", "budget_threshold"),
                     ("custom", "budget_blocked")]
    last = [e for e in timeline if e["kind"] == "message"][-1]
    assert last["output"] == SORRY


async def test_a_bots_own_budget_per_user_with_its_own_message(
        obs: Observability, fake_llm: FakeLLMServer) -> None:
    support = bot(budget=BotBudget(daily_usd=0.02, enforce=True, scope="user",
                                   blocked_message="You have used today's quota."))
    ledger = BudgetLedger(budgets(), [support], observability=obs)
    runtime = BotRuntime(support, observability=obs, env=env(fake_llm), budgets=ledger)
    first = await runtime.dispatch(message("one"))
    second = await runtime.dispatch(message("two"))
    third = await runtime.dispatch(message("three", user="bob"))
    assert first is not None and second is not None and third is not None
    assert (first.failed, second.text, third.failed) == (False, "You have used today's quota.",
                                                         False)
    assert [row["scope"] for row in ledger.usage()] == ["bot:support/user:alice",
                                                        "bot:support/user:bob"]
    await runtime.aclose()
    ledger.close()


@pytest.mark.parametrize("policy", ["block", "allow"])
async def test_unpriced_models_are_over_budget_unless_allowed(
        obs: Observability, fake_llm: FakeLLMServer, policy: str) -> None:
    support = bot(llm={"provider": "claude", "model": "claude-imaginary-9"})
    config = budgets(unpriced=policy, limits=[{"scope": "global", "daily_usd": 100,
                                                "enforce": True}])
    ledger = BudgetLedger(config, [support], observability=obs)
    runtime = BotRuntime(support, observability=obs, env=env(fake_llm), budgets=ledger)
    reply = await runtime.dispatch(message("hi"))
    assert reply is not None
    if policy == "block":
        assert reply.failed and reply.text == config.blocked_message
        assert fake_llm.requests == []
    else:
        assert not reply.failed and len(fake_llm.requests) == 1
        assert ledger.usage()[0]["unpriced_calls"] == 1  # counted, never as free spend
    await runtime.aclose()
    ledger.close()


async def test_an_agent_reserves_before_each_model_call_of_its_tool_loop(
        obs: Observability) -> None:
    def play(request: LLMRequest) -> Any:
        if request.messages[-1].role == "user":
            return answer(calls=[ToolCall(id="c1", name="calculator",
                                          arguments={"expression": "6*7"})],
                          usage=Usage(1500, 800), model=SONNET)
        return answer("42", usage=Usage(1500, 800), model=SONNET)

    llm = FunctionLLM(play, provider="claude", model=SONNET)
    agent = bot("agent", type="agent", tools=[ToolEntry(name="calculator")])
    config = budgets(limits=[{"scope": "bot", "daily_usd": 0.03, "enforce": True}])
    ledger = BudgetLedger(config, [agent], observability=obs)
    runtime = BotRuntime(agent, llm=llm, observability=obs, budgets=ledger)
    reply = await runtime.dispatch(message("6*7?", bot_name="agent"))
    # The first call ($0.0165) was made, the tool ran; the second would pass $0.03.
    assert reply is not None and reply.failed and reply.text == config.blocked_message
    assert len(llm.requests) == 1
    await runtime.aclose()
    ledger.close()


async def test_concurrent_turns_overshoot_by_at_most_one_reservation(
        obs: Observability) -> None:
    gate = asyncio.Event()

    async def play(request: LLMRequest) -> Any:
        if len(llm.requests) > 2:  # the two warm-up calls answer at once
            await gate.wait()  # held until every turn has reserved (or been refused)
        return answer("ok", usage=Usage(1500, 800), model=SONNET)

    llm = FunctionLLM(play, provider="claude", model=SONNET)
    support = bot()
    limit = 0.10
    config = budgets(limits=[{"scope": "global", "daily_usd": limit, "enforce": True}])
    ledger = BudgetLedger(config, [support], observability=obs)
    runtime = BotRuntime(support, llm=llm, observability=obs, budgets=ledger)
    for user in ("early1", "early2"):  # $0.033 spent: the limit is nearly used
        await runtime.dispatch(message("warm up", user=user))
    finished = 0

    async def turn(i: int) -> Any:
        nonlocal finished
        try:
            return await runtime.dispatch(message("hi", user=f"u{i}"))
        finally:
            finished += 1

    turns = asyncio.gather(*(turn(i) for i in range(20)))
    # Every turn is either at the model (reserved) or already answered (refused).
    await until(lambda: (len(llm.requests) - 2) + finished == 20, "every turn reserved")
    gate.set()
    replies = await turns
    served = [r for r in replies if r is not None and not r.failed]
    spent = ledger.usage()[0]["spent_usd"]
    wrapped = runtime.llm
    assert isinstance(wrapped, BudgetedLLM)
    reservation = wrapped.worst_case(LLMRequest(system=support.system_prompt,
                                                messages=[ChatMessage("user", "hi")],
                                                max_tokens=1024))
    assert reservation is not None
    assert spent <= limit + reservation
    assert len(served) == len(llm.requests) - 2 == 4
    assert spent == pytest.approx(6 * CALL_COST)
    assert ledger.usage()[0]["reserved_usd"] == 0.0
    await runtime.aclose()
    ledger.close()


def test_the_input_estimate_counts_text_tool_calls_and_schemas() -> None:
    short = LLMRequest(system="s", messages=[ChatMessage("user", "hi")], max_tokens=10)
    long = LLMRequest(system="s" * 3000, messages=[
        ChatMessage("user", "x" * 300),
        ChatMessage("assistant", "", tool_calls=(ToolCall("1", "calc", {"e": "1+1"}),)),
        ChatMessage("tool", "2", tool_call_id="1", tool_name="calc")],
        max_tokens=10, tools=[ToolSpec("calc", "adds", {"type": "object"})])
    assert estimate_input_tokens(short) < 30
    # 3,300 characters of text alone are 1,100 tokens at 3 characters per token.
    assert estimate_input_tokens(long) > 1100
