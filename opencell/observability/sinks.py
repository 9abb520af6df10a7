"""The recorder's edges: what it writes to (``RecordSink``), what it reports
(``RecorderStats``), why it drops, and the ``NullRecorder`` that records nothing."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from opencell.records import Kind, Record


class RecordSink(Protocol):
    """Where the writer thread puts batches: the store, or a test double.

    ``write_batch`` must store all of the batch or none of it (it is retried whole, or split
    when the sink also has ``quarantine(record, reason)``; ``is_outage(exc)``, if present,
    tells which failures are the sink's own and are never blamed on a record).
    """

    def write_batch(self, records: Sequence[Record]) -> None: ...


DROP_REASONS = ("queue_full", "closed", "unstored_at_close", "unstorable", "error")
"""Why records are dropped: the queue was full; ``record()`` after ``close``; still unstored
when the writer stopped; rejected by a sink that cannot quarantine; ``record()`` failed."""


SinkFactory = Callable[[], "RecordSink | None"]
"""Opens the sink on the writer thread; raising or returning None is retried with back-off."""


@dataclass(frozen=True, slots=True)
class RecorderStats:
    """A snapshot of the recorder's counters."""

    queued: int
    """Records accepted and not yet stored (queue plus the batch being written; a pending
    ``flush`` adds one)."""
    written: int
    """Records the sink has stored."""
    dropped: int
    """Records refused because ``max_queue`` were waiting, or left unstored at ``close``."""
    failures: int
    """Failed ``write_batch`` (or sink-opening) attempts."""
    last_error: str | None
    """The latest failure, ``Type: message``."""
    batches: int
    """Batches stored."""
    failing: bool
    """Whether the store is failing right now (an outage is in progress)."""
    quarantined: int = 0
    """Records the sink rejected, isolated and handed to its ``quarantine``."""
    dropped_by: Mapping[str, int] = field(default_factory=dict)
    """``dropped`` by reason (see ``DROP_REASONS``); reasons with no drops are left out."""


class NullRecorder:
    """The recorder's surface, storing nothing: for when observability is off."""

    def record(self, record: Record) -> None:
        """Discard ``record``."""

    def emit(self, kind: Kind, session_id: str, name: str, data: Mapping[str, Any],
             duration_ms: float | None = None, success: bool | None = None,
             ts: float | None = None) -> None:
        """Discard the event."""

    def flush(self, timeout: float = 5.0) -> bool:
        """Nothing to wait for: True."""
        return True

    def close(self, timeout: float = 5.0) -> bool:
        """Nothing to stop: True."""
        return True

    @property
    def stats(self) -> RecorderStats:
        """All zeros."""
        return RecorderStats(queued=0, written=0, dropped=0, failures=0, last_error=None,
                             batches=0, failing=False)
