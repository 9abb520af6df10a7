"""Waiting on evidence, never on elapsed time: one poll helper (async and sync) and a gauge of
calls in flight, so that a test on a busy machine waits longer instead of failing.

Deadlines here are generous on purpose: they are never reached when the code works (the wait
returns as soon as the condition holds), and only keep a broken test from hanging forever.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import IO, TypeVar

T = TypeVar("T")

WAIT = 60.0
"""Seconds before a wait gives up: far above any honest wait, even on a loaded 2-core box."""

POLL = 0.005
"""Seconds between two looks at the condition."""


async def until(predicate: Callable[[], object], what: str, timeout: float = WAIT) -> None:
    """Return as soon as ``predicate()`` is true; fail naming ``what`` after ``timeout`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(POLL)


def poll(condition: Callable[[], object], timeout: float = WAIT) -> bool:
    """True as soon as ``condition()`` is; False after ``timeout`` seconds (for asserts that
    want their own message)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL)
    return True


def until_sync(predicate: Callable[[], object], what: str, timeout: float = WAIT) -> None:
    """``until`` for threads and sync tests (the condition changes on another thread)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(POLL)


def bounded(action: Callable[[], T], what: str, timeout: float = WAIT) -> T:
    """Run ``action`` on a thread and return its result; fail naming ``what`` if it has not
    returned after ``timeout`` s (it is then left running: the test has failed anyway).

    For "this returns although something hangs": proof that it returns at all, without
    timing how fast it does it.
    """
    result: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            result.append(action())
        except BaseException as exc:  # noqa: BLE001 - handed to the caller below
            error.append(exc)

    thread = threading.Thread(target=run, name=f"bounded: {what}", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise AssertionError(f"{what} had not returned after {timeout:g}s")
    if error:
        raise error[0]
    return result[0]


class PipeLines:
    """Reads a subprocess's text pipe on a thread, line by line, so that a test can wait for
    a line. (``select()`` on the pipe misses lines already read into Python's buffer: under
    load two lines arrive together and the second is never "ready".)"""

    def __init__(self, pipe: IO[str]) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe: IO[str]) -> None:
        for line in pipe:
            with self._lock:
                self.lines.append(line)

    def text(self) -> str:
        with self._lock:
            return "".join(self.lines)

    def wait_for(self, match: Callable[[str], bool], what: str, timeout: float = WAIT) -> str:
        """The first line that ``match``es; fails once the pipe ends (the process exited)
        without one, or after ``timeout`` seconds."""
        def found() -> str | None:
            with self._lock:
                return next((line for line in self.lines if match(line)), None)

        until_sync(lambda: found() is not None or not self._thread.is_alive(), what, timeout)
        line = found()
        if line is None:
            raise AssertionError(f"the pipe ended before {what}:\n{self.text()}")
        return line

    def finish(self, timeout: float = WAIT) -> str:
        """Everything read, once the pipe has ended (call after the process exited)."""
        self._thread.join(timeout)
        return self.text()


class InFlight:
    """Counts calls in flight (``now``) and the most ever at once (``most``).

    A fake model that should prove concurrency parks each call in ``together(n)`` until ``n``
    calls are in flight at the same time: concurrent code passes at once, however slow the
    machine, and serial code can never get there (the first call gives up after ``timeout``
    and the ones after it do not wait again, so a broken test fails once, not ``n`` times).
    """

    def __init__(self) -> None:
        self.now = 0
        self.most = 0
        self.gave_up = False

    @asynccontextmanager
    async def call(self) -> AsyncIterator[None]:
        """Count one call for the duration of the ``async with`` block."""
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            yield
        finally:
            self.now -= 1

    async def together(self, count: int, timeout: float = WAIT) -> None:
        """Count this call and hold it until ``count`` calls are in flight at once."""
        async with self.call():
            if self.gave_up:
                return
            try:
                await until(lambda: self.most >= count or self.gave_up,  # `most` only grows
                            f"{count} calls in flight at once (most so far: {self.most})",
                            timeout)
            except AssertionError:
                self.gave_up = True
                raise
