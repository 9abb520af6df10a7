"""SQLite WAL checkpoints on a thread of their own, off the recorder's writer thread.

Committing into a WAL database is cheap; copying the WAL back into the database file (the
checkpoint) is not, and by default the committing connection does it every 1,000 pages. Run
here instead, in SQLite's C code with the GIL released, it overlaps with the writer's Python
work: about 10% more events per second. The writer's own connections keep a high
``wal_autocheckpoint`` as a safety net, so the WAL stays bounded even if this thread stalls.
The thread sleeps until a write nudges it, so an idle process does not wake up.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

from opencell.guard import guard

log = logging.getLogger("opencell.store")

COALESCE_S = 0.05
"""After a nudge, wait this long so that one checkpoint covers several commits."""

SAFETY_NET_PAGES = 10_000
"""``wal_autocheckpoint`` of the writer's connections (about 40 MB of WAL)."""


class Checkpointer:
    """Runs ``PRAGMA wal_checkpoint(PASSIVE)`` on ``path`` after writes (never blocks them)."""

    def __init__(self, path: Path) -> None:
        self._uri = f"{path.resolve().as_uri()}?mode=rw"  # never creates a deleted file
        self._nudged = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def nudge(self) -> None:
        """Ask for a checkpoint soon (starts the thread on first use)."""
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._stop.clear()
                    self._thread = threading.Thread(target=self._run, daemon=True,
                                                    name="opencell-sqlite-checkpoint")
                    self._thread.start()
        self._nudged.set()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the thread (a later ``nudge`` starts a new one)."""
        with self._lock:
            thread, self._thread = self._thread, None
            self._stop.set()
            self._nudged.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        while True:
            self._nudged.wait()
            if self._stop.wait(COALESCE_S):
                return
            self._nudged.clear()
            with guard("store.checkpoint", logger=log):
                conn = sqlite3.connect(self._uri, uri=True, isolation_level=None)
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                finally:
                    conn.close()
