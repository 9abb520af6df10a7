"""Benchmark: 100,000 open conversations — memory per session, cost of a touch, cost of a sweep.

Run: python -m benchmarks.sessions [--quick]

Baselines in the same run: a touch is compared with cancelling and re-arming an asyncio
``call_later`` timer (the obvious design it replaces); a sweep that expires 1,000 sessions is
compared with one that expires 10,000 and with one that expires none, to show its cost follows
the expired sessions, not the open ones.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._report import Figure, median, run_main  # noqa: E402
from opencell.messages import ConversationKey  # noqa: E402
from opencell.sessions import SessionTracker  # noqa: E402

TARGET_BYTES = 1.5 * 1024
TARGET_TOUCH_US = 0.5


class ManualClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def _key(i: int) -> ConversationKey:
    # Realistic Discord-sized ids: a guild, a channel and a user snowflake per conversation.
    return ConversationKey(bot="support", platform="discord", workspace="112233445566778899",
                           channel=f"98765432101234{i:05d}", user=f"11223344556677{i:05d}")


def memory_per_session(count: int) -> float:
    gc.collect()
    tracker = SessionTracker(history_turns=20, idle_timeout=600, bot_type="conversational",
                             clock=ManualClock())
    before = _rss()
    for i in range(count):
        tracker.open(_key(i))
    gc.collect()
    per = (_rss() - before) / count
    tracker.close_all()
    return per


def touch_costs(count: int, rounds: int) -> tuple[float, float, float]:
    """µs per touch, per acquire+release pair, and per call_later cancel+re-arm."""
    clock = ManualClock()
    tracker = SessionTracker(history_turns=20, idle_timeout=600, bot_type="conversational",
                             clock=clock)
    sessions = [tracker.open(_key(i)) for i in range(count)]
    keys = [s.key for s in sessions]
    touches, pairs = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        for session in sessions:
            tracker.touch(session)
        touches.append((time.perf_counter() - start) / count * 1e6)
        start = time.perf_counter()
        for key in keys:
            tracker.release(tracker.acquire(key), failed=False)
        pairs.append((time.perf_counter() - start) / count * 1e6)

    async def rearm() -> float:
        loop = asyncio.get_running_loop()
        handles = [loop.call_later(600, lambda: None) for _ in range(count)]
        start = time.perf_counter()
        for i in range(count):
            handles[i].cancel()
            handles[i] = loop.call_later(600, lambda: None)
        elapsed = (time.perf_counter() - start) / count * 1e6
        for handle in handles:
            handle.cancel()
        return elapsed

    timers = [asyncio.run(rearm()) for _ in range(max(1, rounds // 2))]
    return median(touches), median(pairs), median(timers)


def sweep_cost(open_count: int, expired: int) -> float:
    """ms for one sweep that expires ``expired`` of ``open_count`` sessions."""
    clock = ManualClock()
    tracker = SessionTracker(history_turns=20, idle_timeout=600, bot_type="conversational",
                             clock=clock)
    for i in range(expired):
        tracker.open(_key(i))
    clock.now += 300
    for i in range(expired, open_count):
        tracker.open(_key(i))
    clock.now += 301  # the first batch is 601 s idle, the rest 301 s
    start = time.perf_counter()
    gone = tracker.sweep()
    elapsed = (time.perf_counter() - start) * 1000
    if len(gone) != expired:
        raise RuntimeError(f"sweep expired {len(gone)} sessions, expected {expired}")
    return elapsed


def run(quick: bool) -> list[Figure]:
    count = 100_000
    per_session = memory_per_session(count)
    touch, pair, timer = touch_costs(count, 3 if quick else 7)
    sweep_1k = median([sweep_cost(count, 1_000) for _ in range(3)])
    sweep_10k = median([sweep_cost(count, 10_000) for _ in range(3)])
    sweep_0 = median([sweep_cost(count, 0) for _ in range(3)])
    return [
        Figure("sessions", "RSS per open session", per_session, "bytes",
               f"<= {TARGET_BYTES:,.0f}", per_session <= TARGET_BYTES, "",
               f"{count:,} open conversations"),
        Figure("sessions", "touch (idle reset)", touch, "µs", f"<= {TARGET_TOUCH_US}",
               touch <= TARGET_TOUCH_US, f"call_later cancel+re-arm {timer:.2f} µs",
               f"acquire+release per turn {pair:.2f} µs"),
        Figure("sessions", "sweep expiring 1,000 of 100,000", sweep_1k, "ms",
               "proportional to expired", sweep_10k / max(sweep_1k, 1e-9) > 5
               and sweep_0 < sweep_1k,
               f"10,000 expired {sweep_10k:.2f} ms; none expired {sweep_0:.3f} ms", ""),
    ]


def main(argv: Sequence[str] | None = None) -> list[Figure]:
    return run_main(argv, __doc__ or "", run, "idle sessions at scale")


if __name__ == "__main__":
    main()
