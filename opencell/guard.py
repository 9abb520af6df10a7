"""The one guard for OpenCell's own failures in telemetry: log them, never let them out.

``with guard("what"):`` runs a block; an ``Exception`` raised inside is logged and swallowed
(``BaseException`` such as ``KeyboardInterrupt`` or ``asyncio.CancelledError`` passes through).
The same failure repeating is logged at most once a minute per ``what``, with the number of
repeats that were not logged, so a broken sink cannot flood the log. The stack goes to DEBUG.

    with guard("exporter.agentops", session=sid) as g:
        exporter.export(spans)
    if g.failed:
        ...
"""

from __future__ import annotations

import logging
import threading
import time
from types import TracebackType

log = logging.getLogger("opencell.internal")

REPEAT_INTERVAL = 60.0
"""Seconds during which further failures of the same ``what`` are counted, not logged."""

_lock = threading.Lock()
_last_logged: dict[str, float] = {}
_suppressed: dict[str, int] = {}


class Guard:
    """The context manager :func:`guard` returns; ``failed`` tells whether the block raised."""

    __slots__ = ("what", "fields", "logger", "failed", "error")

    def __init__(self, what: str, logger: logging.Logger | None,
                 fields: dict[str, object]) -> None:
        self.what = what
        self.fields = fields
        self.logger = logger
        self.failed = False
        self.error: Exception | None = None
        """The exception the block raised (when ``failed``)."""

    def __enter__(self) -> Guard:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        if exc is None or not isinstance(exc, Exception):
            return False
        self.failed = True
        self.error = exc
        try:
            _report(self.what, exc, self.logger or log, self.fields)
        except Exception:  # noqa: BLE001 - logging itself must not break the contract
            pass
        return True


def guard(what: str, *, logger: logging.Logger | None = None, **fields: object) -> Guard:
    """Run the block; an exception inside is logged (rate-limited) and swallowed.

    Telemetry must never take a bot down: wrap every recording, hook and sink call in this.
    ``what`` names the operation (``"recorder.write"``); ``fields`` are added to the log line
    as ``key=value``. Never raises.
    """
    return Guard(what, logger, fields)


def _report(what: str, exc: Exception, logger: logging.Logger,
            fields: dict[str, object]) -> None:
    now = time.monotonic()
    with _lock:
        last = _last_logged.get(what)
        if last is not None and now - last < REPEAT_INTERVAL:
            _suppressed[what] = _suppressed.get(what, 0) + 1
            return
        _last_logged[what] = now
        suppressed = _suppressed.pop(what, 0)
    extra = "".join(f" {key}={value}" for key, value in fields.items())
    logger.warning("internal error what=%s error_type=%s error=%s%s repeats_not_logged=%d",
                   what, type(exc).__name__, one_line(exc), extra, suppressed)
    logger.debug("internal error stack what=%s", what, exc_info=exc)


def one_line(exc: BaseException) -> str:
    """An exception's text for a log line: one line, at most 300 characters, printable."""
    text = str(exc).replace("\n", " ").encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= 300 else text[:297] + "..."
