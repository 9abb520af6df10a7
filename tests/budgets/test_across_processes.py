"""Budgets across processes (SCALE-OUT.md D3): two ledgers on one store, as two processes
would have, must together stay within an enforced limit; a dead process's reservations are
given back by the janitor. On SQLite each process keeps its own tallies (several processes
on one SQLite file is refused for bots, see test_sqlite_refusal); so this is PostgreSQL."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from opencell.budgets import BudgetLedger
from opencell.budgets.limits import CallScope
from opencell.errors import BudgetExceededError
from opencell.store import tables
from opencell.store.janitor import Janitor
from tests.budgets.conftest import CALL_COST, Wall, bot, budgets, noon_zone, observability

pytestmark = pytest.mark.postgres


def test_two_processes_together_stay_within_an_enforced_limit(postgres_url: str) -> None:
    config = budgets(timezone=noon_zone(), limits=[
        {"scope": "bot", "daily_usd": 1.0, "enforce": True}])
    support = bot()
    processes = [observability(postgres_url) for _ in range(2)]
    ledgers = [BudgetLedger(config, [support], observability=obs, wall=Wall(time.time()))
               for obs in processes]
    call = CallScope("support", "alice", "discord")
    admitted = [0, 0]
    for i in range(200):  # alternate: each process sees only its own spend in memory
        which = i % 2
        try:
            held = ledgers[which].reserve(call, CALL_COST, bot=support)
        except BudgetExceededError:
            continue
        ledgers[which].settle(held, CALL_COST)
        admitted[which] += 1
    spent = sum(admitted) * CALL_COST
    assert spent <= 1.0 + CALL_COST  # not about $2 (each process alone would allow $1)
    assert spent > 1.0 - 2 * CALL_COST  # and the limit is used, not refused early
    assert min(admitted) > 0
    for ledger, obs in zip(ledgers, processes, strict=True):
        ledger.close(2.0)
        obs.close()


def test_reservations_of_a_dead_process_are_given_back(postgres_url: str) -> None:
    config = budgets(timezone=noon_zone(), limits=[
        {"scope": "bot", "daily_usd": 0.05, "enforce": True}])
    support = bot()
    obs = observability(postgres_url)
    ledger = BudgetLedger(config, [support], observability=obs, wall=Wall(time.time()))
    call = CallScope("support", "alice", "discord")
    held = ledger.reserve(call, 0.03, bot=support)
    assert obs.store is not None
    with obs.store.reading() as conn:
        assert conn.execute(sa.select(tables.budget_tallies.c.reserved)).scalar_one() == 0.03
    # As if this reservation belonged to a process that was killed: its owner holds no lock.
    with obs.store.writing() as conn:
        conn.execute(tables.budget_reservations.update().values(owner="gone:1/0123456789ab"))
    assert obs.janitor is not None
    Janitor.run_once(obs.janitor)
    with obs.store.reading() as conn:
        reserved = conn.execute(sa.select(tables.budget_tallies.c.reserved)).scalar_one()
        left = conn.execute(sa.select(sa.func.count()).select_from(
            tables.budget_reservations)).scalar_one()
    assert (reserved, left) == (0.0, 0)
    ledger.release(held)  # the local hold is this process's; the shared one is gone already
    ledger.close(2.0)
    obs.close()
