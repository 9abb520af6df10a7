"""Spike alerts: the last hour's spend against the trailing hourly baseline."""

from __future__ import annotations

from opencell.budgets import BudgetLedger, CallScope
from opencell.budgets.spikes import SpikeDetector
from tests.budgets.conftest import CALL_COST, Wall, bot, budgets

T0 = 1_780_000_200.0  # 20:30 UTC: half past an hour
HOUR = 3600.0


def spend(ledger: BudgetLedger, wall: Wall, bot_name: str, usd: float) -> None:
    call = CallScope(bot=bot_name, user="alice", platform="slack")
    reservation = ledger.reserve(call, usd, bot=bot(bot_name))
    ledger.settle(reservation, usd, session_id=None)


def spikes(ledger: BudgetLedger) -> list[tuple[str, str]]:
    assert ledger.notifier.flush(5.0)
    return [(a.scope, a.message) for a in ledger.notifier.recent if a.kind == "spike"]


def test_ten_times_the_hourly_baseline_raises_one_spike_alert() -> None:
    wall = Wall(T0)
    ledger = BudgetLedger(budgets(alerts={"spike_factor": 3}), wall=wall)
    for _ in range(24):  # a steady day: one call an hour, for two bots
        spend(ledger, wall, "support", CALL_COST)
        spend(ledger, wall, "devops", CALL_COST)
        wall.advance(HOUR)
    assert spikes(ledger) == []

    wall.advance(10 * 60)  # the last steady call is out of the last hour
    for _ in range(10):  # ten hours' worth within half an hour, across a clock hour
        spend(ledger, wall, "support", CALL_COST)
        spend(ledger, wall, "devops", CALL_COST / 10)
        wall.advance(3 * 60)
    found = spikes(ledger)
    assert len(found) == 1
    scope, text = found[0]
    assert scope == "bot:support"
    # Raised once the last hour passes 3x the baseline and 10 cents: at the seventh call.
    assert "spent $0.1155 in the last hour, 7.0x its usual $0.0165/h" in text
    ledger.close()


def test_no_spike_without_enough_history_or_below_the_floor() -> None:
    detector = SpikeDetector(3.0, floor_usd=0.10)
    detector.add("bot:x", T0, 0.05)
    detector.add("bot:x", T0 + HOUR, 0.02)
    assert detector.check("bot:x", T0 + HOUR) is None  # one hour of history is not a baseline
    for hour in range(2, 6):
        detector.add("bot:x", T0 + hour * HOUR, 0.01)
    detector.add("bot:x", T0 + 6 * HOUR, 0.09)
    assert detector.check("bot:x", T0 + 6 * HOUR) is None  # 4.5x, but under 10 cents
    detector.add("bot:x", T0 + 6 * HOUR + 60, 0.5)
    spike = detector.check("bot:x", T0 + 6 * HOUR + 60)
    assert spike is not None and spike.last_hour_usd == 0.59
    detector.add("bot:x", T0 + 6 * HOUR + 120, 0.5)
    assert detector.check("bot:x", T0 + 6 * HOUR + 120) is None  # the same spike goes on
