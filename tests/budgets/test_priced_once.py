"""An enforced model call is priced once for real: the budget settles with the record's cost."""

from __future__ import annotations

import time
from typing import Any

from opencell.budgets import BudgetLedger
from opencell.llm.base import Usage
from opencell.llm.pricing import Cost, PriceBook
from opencell.observability.observer import Observability
from opencell.runtime import BotRuntime
from opencell.store.store import Store
from tests.budgets.conftest import CALL_COST, CALL_USAGE, Wall, bot, budgets, message, noon_zone
from tests.fakes.llm_server import FakeLLMServer


class CountingPrices(PriceBook):
    """A PriceBook that remembers every usage it priced."""

    def __init__(self) -> None:
        super().__init__()
        self.priced: list[Usage] = []

    def price(self, provider: str, model: str, usage: Usage) -> Cost | None:
        self.priced.append(usage)
        return super().price(provider, model, usage)


async def test_each_call_is_priced_once_and_the_tally_matches_the_record(
        isolated_store: str, obs: Observability, fake_llm: FakeLLMServer) -> None:
    prices = CountingPrices()
    obs.prices = prices
    config = budgets(timezone=noon_zone(), limits=[{"scope": "user", "daily_usd": 5,
                                                    "enforce": True}])
    support = bot()
    ledger = BudgetLedger(config, [support], observability=obs, wall=Wall(time.time()))
    assert ledger.prices is prices
    env: dict[str, Any] = {"ANTHROPIC_API_KEY": "sk-ant-test",
                           "ANTHROPIC_BASE_URL": fake_llm.url}
    runtime = BotRuntime(support, observability=obs, env=env, budgets=ledger)
    for i in range(3):
        reply = await runtime.dispatch(message(f"q{i}"))
        assert reply is not None and not reply.failed
    real = Usage(input_tokens=CALL_USAGE["input_tokens"],
                 output_tokens=CALL_USAGE["output_tokens"])
    # The worst case is priced before each call (the reservation); the real usage only once.
    assert sum(1 for usage in prices.priced if usage == real) == 3
    assert len(prices.priced) == 6
    spent = ledger.usage()
    await runtime.aclose()
    assert ledger.close(5.0)
    obs.close()
    (row,) = [row for row in spent if row["scope_kind"] == "user"]
    assert abs(row["spent_usd"] - 3 * CALL_COST) < 1e-6
    store = Store.open(isolated_store)
    try:
        (session,), _ = store.list_sessions(limit=10)
        assert abs(session["cost_usd"] - 3 * CALL_COST) < 1e-9
    finally:
        store.close()
