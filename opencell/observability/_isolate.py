"""Writes a batch so that one record cannot stop it: what the sink refuses is split in halves
until the record it refuses is alone, and that record is handed to the sink's quarantine.

A failure the sink calls an outage (``is_outage``; any ``OSError`` or non-``Exception``) is
never blamed on a record: the writing stops and what is left is kept for a retry. A sink
without ``quarantine`` is written whole, as before. If the quarantine write fails too, the
sink itself is failing: that is an outage as well.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from opencell.records import Record


@dataclass(slots=True)
class WriteOutcome:
    """What :func:`write_isolating` did."""

    stored: int = 0
    """Records written."""
    batches: int = 0
    """Successful ``write_batch`` calls."""
    refused: int = 0
    """Failed ``write_batch`` calls that were blamed on a record (and split)."""
    quarantined: list[tuple[Record, str]] = field(default_factory=list)
    """Records the sink refused and kept apart, with the reason."""
    unstored: list[Record] = field(default_factory=list)
    """Left for a retry because of ``outage`` (in order)."""
    outage: BaseException | None = None
    """Why writing stopped, when it did."""


def write_isolating(sink: object, records: Sequence[Record]) -> WriteOutcome:
    """Write ``records`` through ``sink.write_batch``, isolating and quarantining bad ones."""
    outcome = WriteOutcome()
    write = sink.write_batch  # type: ignore[attr-defined]
    quarantine = getattr(sink, "quarantine", None)
    todo = [records]  # a stack: the next batch to write is last
    while todo:
        batch = todo.pop()
        try:
            write(batch)
        except BaseException as exc:  # noqa: BLE001 - the writer must outlive any sink
            if callable(quarantine) and not is_outage(sink, exc):
                outcome.refused += 1
                if len(batch) > 1:
                    middle = len(batch) // 2
                    todo += (batch[middle:], batch[:middle])
                    continue
                reason = f"{type(exc).__name__}: {exc}"
                try:
                    quarantine(batch[0], reason)
                except BaseException as failure:  # noqa: BLE001 - the sink is failing
                    exc = failure
                else:
                    outcome.quarantined.append((batch[0], reason))
                    continue
            outcome.unstored = [*batch, *(r for rest in reversed(todo) for r in rest)]
            outcome.outage = exc
            return outcome
        outcome.stored += len(batch)
        outcome.batches += 1
    return outcome


def is_outage(sink: object, exc: BaseException) -> bool:
    """Whether a failed write is the sink's own trouble rather than a record's fault."""
    if not isinstance(exc, Exception) or isinstance(exc, OSError):
        return True
    judge = getattr(sink, "is_outage", None)
    if not callable(judge):
        return False
    try:
        return bool(judge(exc))
    except Exception:  # noqa: BLE001 - unknowable counts as an outage: nothing is blamed
        return True
