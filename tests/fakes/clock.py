"""A manual clock for tests: an ``opencell.types.Clock`` that moves only when the test says."""

from __future__ import annotations


class ManualClock:
    """Call it for the time (seconds, like ``time.monotonic``); ``advance`` moves it."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds``; returns the new time."""
        if seconds < 0:
            raise ValueError("a clock does not go back")
        self.now += seconds
        return self.now
