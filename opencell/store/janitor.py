"""The janitor: every few seconds, close the sessions of processes that are gone.

Started with the recorder (``Observability.from_config``). Every process runs one; they need
no election, because closing is idempotent (``_orphans.py``) and a round is one small query
when nothing died. A crashed process's sessions are therefore closed ``interrupted`` within
about ``interval`` seconds by the survivors, with no restart needed; a live process's
sessions are never touched (``cluster.py``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from opencell.guard import guard
from opencell.store.store import Store

log = logging.getLogger("opencell.store")

JANITOR_INTERVAL_S = 5.0


class Janitor:
    """A daemon thread that calls ``store.close_orphans()`` every ``interval`` seconds."""

    def __init__(self, store: Store, interval: float = JANITOR_INTERVAL_S) -> None:
        self.store = store
        self.interval = interval
        self.closed = 0
        """Sessions this janitor closed so far."""
        self._hooks: list[Callable[[], object]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="opencell-janitor", daemon=True)

    def add(self, hook: Callable[[], object]) -> None:
        """Also run ``hook`` every round (e.g. give back a dead process's budget holds)."""
        self._hooks.append(hook)

    def start(self) -> Janitor:
        self._thread.start()
        return self

    def run_once(self) -> int:
        """One round now; how many sessions it closed."""
        for hook in list(self._hooks):
            with guard("janitor hook", logger=log):
                hook()
        with guard("janitor", logger=log):
            closed = self.store.close_orphans()
            if closed:
                self.closed += len(closed)
                log.info("sessions of a stopped process closed count=%d reason=interrupted",
                         len(closed))
            return len(closed)
        return 0

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.run_once()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
