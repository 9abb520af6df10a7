"""One exporter's delivery thread: drains its outbox in batches, backs off, never blocks a turn.

The loop: authenticate (once, and again after a 401), claim the outbox lease, read the next
batch of stored events above the cursor, build their spans, send them in one request, and
advance the cursor only on a 2xx. A failure keeps the batch and waits with exponential
back-off and jitter; a 401 re-authenticates and resends at once; a batch the backend rejects
outright (400/413/422) is halved until the one bad event is found, which is then skipped and
counted (it would block the outbox forever). The thread reads the store on its own; the bot's
turns never wait for it.

``stop(timeout)`` gives the worker ``timeout`` seconds to deliver what is pending: it works
until it has caught up, the deadline passes, or one attempt fails (the backend is down:
waiting longer would only delay the stop). Whatever is left stays pending for the next start.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from opentelemetry.sdk.trace import ReadableSpan

from opencell.exporters._http import THREAD_PREFIX, Delivery
from opencell.exporters.outbox import Outbox, Position, StoredEvent
from opencell.guard import guard
from opencell.retry import Backoff as Backoff

log = logging.getLogger("opencell.exporters")

LAG_LOG_INTERVAL = 60.0
BACKLOG_REFRESH = 2.0
HELD_BACK_POLL = 0.05
"""How often a stopping worker looks again at events held back by an open transaction."""


class SpanSink(Protocol):
    """What one backend needs to provide to the worker."""

    name: str
    """The outbox key: ``agentops`` or ``otlp``."""
    label: str
    """How logs name it: ``[AgentOps]``, ``[OTLP]``."""
    endpoint: str

    def connect(self, timeout: float) -> Delivery:
        """Authenticate if the backend needs it (ok when it does not)."""

    def build(self, batch: Sequence[StoredEvent], outbox: Outbox) -> list[ReadableSpan]:
        """The spans of a batch of stored events (an event may give none)."""

    def send(self, spans: Sequence[ReadableSpan], timeout: float) -> Delivery:
        """One export request."""

    def delivered(self, batch: Sequence[StoredEvent], spans: Sequence[ReadableSpan]) -> None:
        """Called after a batch was acknowledged (e.g. to log session links)."""

    def close(self) -> None:
        """Release connections."""


DEFAULT_BACKOFF = Backoff()
"""1 s doubling to a minute, with jitter."""


class ExportWorker:
    """Delivers one exporter's outbox from a daemon thread."""

    def __init__(self, sink: SpanSink, outbox: Outbox, *, batch_events: int = 256,
                 poll_interval: float = 0.5, backoff: Callable[[int], float] = DEFAULT_BACKOFF,
                 request_timeout: float = 10.0, lease_retry: float = 5.0,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] | None = None) -> None:
        self.sink = sink
        self.outbox = outbox
        self.max_batch = max(1, batch_events)
        self.poll_interval = poll_interval
        self.backoff = backoff
        self.request_timeout = request_timeout
        self.lease_retry = lease_retry
        self._clock = clock
        self._sleep_hook = sleep
        self._limit = self.max_batch
        self._built: tuple[tuple[Any, ...], list[ReadableSpan]] | None = None
        """The latest batch's spans, by (size, first and last position)."""
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"{THREAD_PREFIX}-{sink.name}")
        self._cursor: Position | None = None
        self._lease_renew_at = 0.0
        self._unsaved = (0, 0)
        self._connected = False
        self._draining = False
        self._deadline = float("inf")
        self._abandoned = False
        self._caught_up = False
        self._held_back = False
        self._state = "starting"
        self._attempt = 0
        self._failures = 0
        self._failing_since: float | None = None
        self._last_error: str | None = None
        self._last_success: float | None = None
        self._delivered_events = 0
        self._delivered_spans = 0
        self._rejected_events = 0
        self._pending = 0
        self._oldest: float | None = None
        self._backlog_at = -BACKLOG_REFRESH
        self._lag_logged = 0.0

    # ------------------------------------------------------------ control

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        """Look at the outbox now instead of at the next poll."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> bool:
        """Deliver what is pending for up to ``timeout`` seconds, then stop the thread.

        True when nothing was left pending. Never raises.
        """
        self.begin_stop(timeout)
        return self.finish_stop(time.monotonic() + max(0.0, timeout) + 0.5)

    def begin_stop(self, timeout: float) -> None:
        """Start the final drain (``timeout`` seconds at most) without waiting for it."""
        self._deadline = self._clock() + max(0.0, timeout)
        self._draining = True
        self._wake.set()

    def finish_stop(self, deadline: float) -> bool:
        """Wait (until ``deadline``, ``time.monotonic()``) for the drain; see :meth:`stop`."""
        if self._thread.is_alive():
            self._thread.join(max(0.0, deadline - time.monotonic()))
        if self._thread.is_alive():
            self._abandoned = True  # stuck in a request: it must not touch the store later
            log.warning("%s stop: a request is still running; what it carries stays "
                        "pending for the next start", self.sink.label)
        with guard(f"exporter.{self.sink.name}.close", logger=log):
            self.sink.close()
        self._state = "stopped"
        if self._held_back:
            log.warning("%s stopped while committed events waited behind a transaction "
                        "still open on the database server; they stay pending for the next "
                        "start", self.sink.label)
        elif self._pending:
            log.info("%s stopped with events pending count=%d action=kept_for_next_start",
                     self.sink.label, self._pending)
        return self._caught_up and not self._pending

    def stats(self) -> dict[str, Any]:
        """Counters and lag right now (for ``/metrics`` and logs)."""
        oldest = self._oldest
        return {
            "exporter": self.sink.name, "endpoint": self.sink.endpoint, "state": self._state,
            "pending_events": self._pending,
            "oldest_pending_age_s": None if oldest is None else max(0.0, time.time() - oldest),
            "delivered_events": self._delivered_events, "delivered_spans": self._delivered_spans,
            "rejected_events": self._rejected_events, "failed_attempts": self._failures,
            "consecutive_failures": self._attempt, "last_error": self._last_error,
            "last_success_at": self._last_success,
            "cursor": None if self._cursor is None else self._cursor[1],
        }

    # ------------------------------------------------------------ the thread

    def _run(self) -> None:
        while not self._abandoned:
            delay: float | None = 0.0
            with guard(f"exporter.{self.sink.name}", logger=log) as step:
                delay = self._step()
            if step.failed:
                delay = self._failed(Delivery(False, None, f"internal error: {step.error}"))
            if delay is None or self._abandoned:
                break
            if self._draining and self._clock() >= self._deadline:
                break
            if delay > 0:
                self._pause(delay)
        with guard(f"exporter.{self.sink.name}.release", logger=log):
            if not self._abandoned:
                self._save()
                self.outbox.release()

    def _pause(self, delay: float) -> None:
        if self._draining:
            delay = min(delay, max(0.0, self._deadline - self._clock()))
        if self._sleep_hook is not None:
            self._sleep_hook(delay)
            return
        self._wake.wait(delay)
        self._wake.clear()

    def _timeout(self) -> float:
        if self._draining:
            return max(0.05, min(self.request_timeout, self._deadline - self._clock()))
        return self.request_timeout

    def _step(self) -> float | None:
        """One round; how long to wait before the next (None: stop now)."""
        if not self._hold_lease():
            return self.lease_retry if not self._draining else None
        cursor = self._cursor
        if cursor is None:
            return self.lease_retry
        self._refresh_backlog()
        if not self._connected:
            outcome = self.sink.connect(self._timeout())
            if not outcome.ok:
                return self._failed(outcome, connecting=True)
            self._connected = True
        batch = self.outbox.window(cursor, self._limit)
        if not batch and self._draining and self.outbox.held_back(cursor):
            # Committed events wait behind a transaction open elsewhere on the server: a
            # stop drains them when it ends, up to the deadline, instead of calling this
            # caught up and leaving them for the next start.
            self._caught_up, self._held_back = False, True
            return HELD_BACK_POLL
        self._held_back = False
        if not batch:
            self._caught_up = True
            self._pending, self._oldest = 0, None
            self._limit = self.max_batch
            self._state = "ok" if self._failing_since is None else self._state
            return None if self._draining else self.poll_interval
        self._caught_up = False
        spans = self._spans_of(batch)
        if spans:
            outcome = self.sink.send(spans, self._timeout())
            if outcome.auth_failed:
                # An expired token: authenticate again and resend the same batch once.
                reauth = self.sink.connect(self._timeout())
                outcome = self.sink.send(spans, self._timeout()) if reauth.ok else reauth
            if not outcome.ok:
                if outcome.rejected:
                    return self._rejected(batch, outcome)
                self._connected = not outcome.auth_failed
                return self._failed(outcome)
        self._advance(batch, len(spans))
        with guard(f"exporter.{self.sink.name}.delivered", logger=log):
            self.sink.delivered(batch, spans)
        self._limit = min(self.max_batch, self._limit * 2)
        return 0.0

    def _spans_of(self, batch: Sequence[StoredEvent]) -> list[ReadableSpan]:
        """The batch's spans, built once: a retry of the same batch (a backend that is down)
        sends the spans already built. Building is the costly part of a round (a model
        call's whole input is rebuilt from the store), and it competed with the bot for the
        interpreter on every attempt."""
        key = (len(batch), batch[0].position, batch[-1].position)
        if self._built is not None and self._built[0] == key:
            return self._built[1]
        spans = self.sink.build(batch, self.outbox)
        self._built = (key, spans)
        return spans

    def _hold_lease(self) -> bool:
        now = self._clock()
        if self._cursor is not None and now < self._lease_renew_at:
            return True
        claimed = self.outbox.claim()
        if claimed is None:
            if self._state != "standby":
                log.info("%s outbox is drained by another process; standing by",
                         self.sink.label)
            self._state, self._cursor = "standby", None
            return False
        if self._cursor is None or claimed > self._cursor:
            self._cursor = claimed
        self._lease_renew_at = now + self.outbox.lease_s / 3
        return True

    def _advance(self, batch: Sequence[StoredEvent], spans: int) -> None:
        if self._abandoned:
            return
        self._cursor = batch[-1].position
        events, sent = self._unsaved
        self._unsaved = (events + len(batch), sent + spans)
        self._delivered_events += len(batch)
        self._delivered_spans += spans
        self._pending = max(0, self._pending - len(batch))
        if not self._pending:
            self._oldest = None
        self._last_success = time.time()
        self._save()
        if self._failing_since is not None:
            log.warning("%s export recovered outage_s=%.1f failed_attempts=%d",
                        self.sink.label, self._clock() - self._failing_since, self._attempt)
        self._failing_since = None
        self._attempt = 0
        self._state = "ok"

    def _save(self) -> None:
        """Persist the cursor; a busy store is retried on the next round, not a resend."""
        if self._cursor is None or self._unsaved == (0, 0):
            return
        events, spans = self._unsaved
        with guard(f"exporter.{self.sink.name}.cursor", logger=log) as saving:
            kept = self.outbox.advance(self._cursor, events_delivered=events,
                                       spans_delivered=spans)
        if saving.failed:
            return
        self._unsaved = (0, 0)
        self._lease_renew_at = self._clock() + self.outbox.lease_s / 3
        if not kept:
            log.warning("%s outbox lease lost to another process; standing by",
                        self.sink.label)
            self._cursor = None

    def _rejected(self, batch: Sequence[StoredEvent], outcome: Delivery) -> float:
        if len(batch) > 1:
            self._limit = max(1, len(batch) // 2)
            return 0.0
        event = batch[0]
        self._rejected_events += 1
        log.error("%s event rejected by the backend and skipped event_id=%d kind=%s "
                  "session=%s status=%s", self.sink.label, event.id, event.kind,
                  event.session.id, outcome.status)
        self._advance(batch, 0)
        return 0.0

    def _failed(self, outcome: Delivery, *, connecting: bool = False) -> float | None:
        self._failures += 1
        self._attempt += 1
        self._last_error = outcome.error
        self._state = "auth_failed" if outcome.auth_failed and not self._connected else "failing"
        if self._failing_since is None:
            self._failing_since = self._clock()
            self._refresh_backlog(force=True)
            if connecting:
                level = logging.ERROR if outcome.auth_failed or outcome.rejected else \
                    logging.WARNING
                log.log(level, "%s Could not initialize: %s pending=%d "
                        "action=keeping_spans_and_retrying", self.sink.label, outcome.error,
                        self._pending)
            else:
                log.warning("%s export failing endpoint=%s error=%s pending=%d "
                            "action=keeping_spans_and_retrying", self.sink.label,
                            self.sink.endpoint, outcome.error, self._pending)
        elif self._clock() - self._lag_logged >= LAG_LOG_INTERVAL:
            self._lag_logged = self._clock()
            stats = self.stats()
            log.warning("%s export still failing error=%s pending=%d oldest_age_s=%.0f "
                        "failed_attempts=%d", self.sink.label, outcome.error,
                        stats["pending_events"], stats["oldest_pending_age_s"] or 0.0,
                        self._attempt)
        if self._draining:
            return None
        delay = self.backoff(self._attempt)
        if outcome.retry_after is not None:
            delay = max(delay, min(outcome.retry_after, 300.0))
        return delay

    def _refresh_backlog(self, force: bool = False) -> None:
        now = self._clock()
        if self._cursor is None or (not force and now - self._backlog_at < BACKLOG_REFRESH):
            return
        self._backlog_at = now
        self._pending, self._oldest = self.outbox.backlog(self._cursor)
