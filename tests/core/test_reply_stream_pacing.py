"""How a streamed reply is paced: updates at most once per interval while the model writes,
and the final update at once unless the platform's short-window limit is close."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from opencell.streaming import FINAL_BURST, ReplyStream


class Surface:
    def __init__(self) -> None:
        self.shown: list[str] = []

    @property
    def message_ids(self) -> Sequence[str]:
        return ["m1"] if self.shown else []

    async def show(self, text: str) -> None:
        self.shown.append(text)


class Clock:
    """A clock that moves only when the stream sleeps (or a test says so)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 6))
        self.now += seconds


async def test_a_fast_answer_is_complete_at_once_not_an_interval_after_its_first_word() -> None:
    surface, clock = Surface(), Clock()
    stream = ReplyStream(surface, interval=1.0, clock=clock, sleep=clock.sleep)
    await stream.push("Hello")  # shown inline, at once
    await stream.push(" there, the whole answer.")
    clock.now += 0.002  # the model finished 2 ms later
    await stream.finish("Hello there, the whole answer.")
    assert surface.shown == ["Hello", "Hello there, the whole answer."]
    assert clock.sleeps == []  # nothing waited out the interval


async def test_the_final_update_waits_when_the_last_updates_filled_the_window() -> None:
    surface, clock = Surface(), Clock()
    stream = ReplyStream(surface, interval=1.0, clock=clock, sleep=clock.sleep)
    stream._recent.extend([100.0, 101.0, 102.0])  # three updates, one a second
    stream._shown, stream._last = "so far", 102.0
    clock.now = 102.25
    await stream.finish("the end")
    assert surface.shown == ["the end"]
    # The oldest of the last FINAL_BURST updates leaves the window at 100 + 3 × 1 s.
    assert clock.sleeps == [100.0 + FINAL_BURST * 1.0 - 102.25]


async def test_a_steady_streams_final_update_keeps_its_pace() -> None:
    surface, clock = Surface(), Clock()
    stream = ReplyStream(surface, interval=1.0, clock=clock, sleep=clock.sleep)
    stream._recent.extend([99.5, 100.6, 101.7])  # the last update ended at 101.7
    stream._shown, stream._last = "so far", 101.7
    clock.now = 101.8
    await stream.finish("the end")
    assert clock.sleeps == [round(101.7 + 1.0 - 101.8, 6)]  # one interval after the latest


async def test_intermediate_updates_keep_one_interval_apart() -> None:
    surface, clock = Surface(), Clock()
    stream = ReplyStream(surface, interval=1.0, clock=clock, sleep=clock.sleep)
    await stream.push("one")
    await stream.push(" two")  # the pump shows it, one interval after "one"
    for _ in range(100):  # event-loop turns, not time: the pump's sleep is the fake clock's
        if len(surface.shown) == 2:
            break
        await asyncio.sleep(0)
    assert surface.shown == ["one", "one two"]
    assert clock.sleeps == [1.0]
    await stream.close()
