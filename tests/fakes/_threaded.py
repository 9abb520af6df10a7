"""Runs a loopback fake on a daemon thread with its own loop, for CLI subprocess tests."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any


class ServesInThread:
    """Mixin for fakes with ``async start()`` and ``async close()``."""

    _thread: threading.Thread | None = None
    _thread_loop: asyncio.AbstractEventLoop | None = None
    start: Callable[[], Awaitable[Any]]
    close: Callable[[], Awaitable[None]]

    def _serve_in_thread(self, name: str) -> None:
        started = threading.Event()
        loop = asyncio.new_event_loop()
        self._thread_loop = loop

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(self.start())
            started.set()
            loop.run_forever()
            loop.run_until_complete(self.close())
            loop.close()

        self._thread = threading.Thread(target=run, name=name, daemon=True)
        self._thread.start()
        if not started.wait(10):
            raise RuntimeError(f"{name} did not start within 10 s")

    def stop_thread(self) -> None:
        """Stop the thread started by ``start_in_thread`` (closing the fake first)."""
        if self._thread is None or self._thread_loop is None:
            return
        self._thread_loop.call_soon_threadsafe(self._thread_loop.stop)
        self._thread.join(10)
        self._thread = None
        self._thread_loop = None
