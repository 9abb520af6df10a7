"""The janitor: every few seconds, close the sessions of processes that are gone.

That is: the sessions of a process that died (``interrupted``), and the sessions a process
released at a graceful stop once they are idle by the database's clock (``idle_timeout``).

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

from opencell.store.store import Store

log = logging.getLogger("opencell.store")

JANITOR_INTERVAL_S = 5.0
FAILURES_LOGGED = 12


class Janitor:
    """A daemon thread that calls ``store.close_orphans()`` every ``interval`` seconds."""

    def __init__(self, store: Store, interval: float = JANITOR_INTERVAL_S) -> None:
        self.store = store
        self.interval = interval
        self.closed = 0
        """Sessions this janitor closed so far."""
        self._hooks: list[Callable[[], object]] = []
        self._failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="opencell-janitor", daemon=True)

    def add(self, hook: Callable[[], object]) -> None:
        """Also run ``hook`` every round (e.g. give back a dead process's budget holds)."""
        self._hooks.append(hook)

    def start(self) -> Janitor:
        self._thread.start()
        return self

    def run_once(self) -> int:
        """One round now; how many sessions it closed. A failing round (the store is down)
        is retried next round, and logged once it has failed for about a minute."""
        try:
            for hook in list(self._hooks):
                hook()
            closed = self.store.close_orphans()
        except Exception as exc:  # noqa: BLE001 - the next round tries again
            self._failures += 1
            log.debug("janitor round failed error=%r", exc)
            if self._failures == FAILURES_LOGGED:
                log.warning("janitor failing for %d rounds error=%s: %s; sessions of stopped "
                            "processes stay open until it recovers", self._failures,
                            type(exc).__name__, str(exc).splitlines()[0][:200])
            return 0
        self._failures = 0
        if closed:
            self.closed += len(closed)
            log.info("sessions of stopped processes ended count=%d", len(closed))
        return len(closed)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.run_once()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
