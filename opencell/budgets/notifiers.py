"""Delivers budget alerts off the event loop: the store, the log, the session, webhooks, chat.

``AlertNotifier.submit(alert)`` is O(1) and never blocks or raises; one daemon thread does
the rest, in order:

1. *claim* the alert in ``budget_alerts`` — if its key is there already (raised before a
   restart, or by another process sharing the store) it is dropped here;
2. log it (``budget alert kind=… scope=…``, a warning; critical levels as errors);
3. POST it to every webhook: ``{"text": …}`` for Slack incoming webhooks (a ``/services/…``
   path), ``{"content": …}`` for Discord webhooks (an ``/api/webhooks/…`` path), the alert's
   JSON otherwise. Connection errors, timeouts, 429 and 5xx are retried with exponential
   back-off up to ``max_attempts``; other answers are final. A slow or dead receiver delays
   this thread at most ``timeout`` per attempt, never a turn;
4. hand it to each sink (e.g. a chat channel through a running adapter).

(The ``alert`` record in the session is written by the ledger when it raises the alert.)
Webhook URLs carry secrets: logs show only their scheme, host and first path segment.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from opencell.budgets._store import BudgetStore
from opencell.budgets.alerts import Alert
from opencell.guard import guard
from opencell.messages import ConversationKey, Reply
from opencell.retry import Backoff

if TYPE_CHECKING:
    from opencell.adapters.base import Adapter

log = logging.getLogger("opencell.budgets")

AlertSink = Callable[[Alert], None]
"""Called on the notifier's thread with each new alert; exceptions are logged, not raised."""

_DISCORD_PATH = re.compile(r"/api(?:/v\d+)?/webhooks/")
_EMOJI = {"warning": ":warning:", "critical": ":rotating_light:"}


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Webhook retries: waits of ``first`` × 2ⁿ seconds up to ``cap``; ``max_attempts`` in all."""

    first: float = 1.0
    cap: float = 60.0
    max_attempts: int = 6
    timeout: float = 5.0
    """Seconds one POST may take."""

    def delay(self, attempt: int) -> float:
        return Backoff(start=self.first, cap=self.cap, jitter=0.0)(attempt)


def webhook_format(url: str) -> str:
    """``slack``, ``discord`` or ``json``, from the webhook URL's path."""
    path = urlsplit(url).path
    if path.startswith("/services/"):
        return "slack"
    if _DISCORD_PATH.search(path):
        return "discord"
    return "json"


def webhook_payload(url: str, alert: Alert) -> dict[str, Any]:
    """The body to POST to ``url`` for ``alert``."""
    kind = webhook_format(url)
    if kind == "slack":
        return {"text": f"{_EMOJI[alert.level]} {alert.message}"}
    if kind == "discord":
        # allowed_mentions: a user name in the text must never ping anyone.
        return {"content": f"{_EMOJI[alert.level]} {alert.message}"[:2000],
                "allowed_mentions": {"parse": []}}
    return {"source": "opencell", **alert.as_dict()}


def safe_url(url: str) -> str:
    """A webhook URL without its secret parts, for logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""  # never user:password@
    if parts.port:
        host += f":{parts.port}"
    first = parts.path.strip("/").split("/", 1)[0]
    return f"{parts.scheme}://{host}/{first}/…" if first else f"{parts.scheme}://{host}/"


@dataclass(slots=True)
class _Delivery:
    alert: Alert
    url: str
    attempt: int = 0


class AlertNotifier:
    """One background thread that stores, logs and delivers alerts."""

    def __init__(self, *, webhooks: Sequence[str] = (), store: BudgetStore | None = None,
                 sinks: Sequence[AlertSink] = (),
                 retry: RetryPolicy | None = None,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.webhooks = list(webhooks)
        self.retry = retry or RetryPolicy()
        self.recent: deque[Alert] = deque(maxlen=200)
        """Alerts delivered by this process, newest last."""
        self.delivered = 0
        self.failed = 0
        self.retries = 0
        self._store = store
        self._sinks = list(sinks)
        self._transport = transport
        self._incoming: deque[Alert] = deque()
        self._pending: list[tuple[float, int, _Delivery]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._busy = False
        self._stopping = False
        self._thread: threading.Thread | None = None

    def add_sink(self, sink: AlertSink) -> None:
        with self._cond:
            self._sinks.append(sink)

    def submit(self, alert: Alert) -> None:
        """Queue ``alert`` for delivery. O(1); never blocks, never raises."""
        with guard("budget alert submit"):
            self._incoming.append(alert)
            self.start()
            with self._cond:
                self._cond.notify()

    def start(self) -> None:
        if self._thread is None and not self._stopping:
            self._thread = threading.Thread(target=self._run, name="opencell-budget-alerts",
                                            daemon=True)
            self._thread.start()

    def flush(self, timeout: float = 5.0, *, retries: bool = False) -> bool:
        """Wait until every submitted alert was handled (with ``retries``: until no delivery
        is waiting for a retry either). False when ``timeout`` passed first."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._incoming or self._busy or (retries and self._pending):
                left = deadline - time.monotonic()
                if left <= 0 or self._thread is None:
                    return not (self._incoming or self._busy)
                self._cond.wait(min(left, 0.05))
        return True

    def close(self, timeout: float = 5.0) -> bool:
        """Deliver what is queued (retries included) for up to ``timeout``, then stop."""
        done = self.flush(timeout, retries=True)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(max(0.1, timeout))
        if self._pending:
            log.warning("budget alerts undelivered count=%d reason=shutdown", len(self._pending))
        return done

    # ------------------------------------------------------------ the thread

    def _run(self) -> None:
        with httpx.Client(timeout=self.retry.timeout, transport=self._transport) as client:
            while True:
                with self._cond:
                    while not self._stopping and not self._incoming and not self._due():
                        wait = (self._pending[0][0] - time.monotonic()) if self._pending else None
                        self._cond.wait(wait)
                    if self._stopping:
                        return
                    self._busy = True
                try:
                    while self._incoming:
                        alert = self._incoming.popleft()
                        with guard("budget alert delivery", logger=log):
                            self._handle(alert, client)
                    while self._due():
                        with self._cond:
                            _, _, delivery = heapq.heappop(self._pending)
                        with guard("budget alert delivery", logger=log):
                            self._post(client, delivery)
                finally:
                    with self._cond:
                        self._busy = False
                        self._cond.notify_all()

    def _due(self) -> bool:
        return bool(self._pending) and self._pending[0][0] <= time.monotonic()

    def _handle(self, alert: Alert, client: httpx.Client) -> None:
        if not self._claim(alert):
            log.debug("budget alert already raised key=%s", alert.key)
            return
        self.recent.append(alert)
        level = logging.ERROR if alert.level == "critical" else logging.WARNING
        log.log(level, "budget alert kind=%s level=%s scope=%s period=%s spent_usd=%.6f "
                "limit_usd=%s message=%r", alert.kind, alert.level, alert.scope, alert.window,
                alert.spent_usd, alert.limit_usd, alert.message)
        for url in self.webhooks:
            with guard("budget alert webhook"):  # one bad URL must not stop the others
                self._post(client, _Delivery(alert, url))
        for sink in list(self._sinks):
            with guard("budget alert sink"):
                sink(alert)

    def _claim(self, alert: Alert) -> bool:
        """Store the alert; False if it was raised before. A store that keeps failing must
        not swallow the alert: it is delivered anyway (a restart may then repeat it)."""
        if self._store is None:
            return True
        last: Exception | None = None
        for attempt in range(3):
            try:
                return self._store.claim(
                    alert.key, kind=alert.kind, scope=alert.scope, window=alert.window,
                    limit_id=alert.limit_id, threshold=alert.threshold, ts=alert.ts,
                    session_id=alert.session_id, data=alert.as_dict())
            except Exception as exc:  # noqa: BLE001 - locked, down …: retry, then deliver
                last = exc
                time.sleep(0.05 * (attempt + 1))
        log.warning("budget alert not stored key=%s error=%s: %s action=delivering_anyway",
                    alert.key, type(last).__name__, last)
        return True

    def _post(self, client: httpx.Client, delivery: _Delivery) -> None:
        delivery.attempt += 1
        url = delivery.url
        retryable = True
        try:
            response = client.post(url, json=webhook_payload(url, delivery.alert))
            status = response.status_code
            if 200 <= status < 300:
                self.delivered += 1
                log.debug("budget alert delivered webhook=%s attempt=%d", safe_url(url),
                          delivery.attempt)
                return
            retryable = status == 429 or status >= 500
            problem = f"status={status}"
        except httpx.HTTPError as exc:
            problem = f"error={type(exc).__name__}"
        if retryable and delivery.attempt < self.retry.max_attempts:
            self.retries += 1
            due = time.monotonic() + self.retry.delay(delivery.attempt)
            with self._cond:
                heapq.heappush(self._pending, (due, next(self._seq), delivery))
            log.info("budget alert webhook failed webhook=%s %s attempt=%d action=retry",
                     safe_url(url), problem, delivery.attempt)
            return
        self.failed += 1
        log.warning("budget alert webhook failed webhook=%s %s attempt=%d action=gave_up",
                    safe_url(url), problem, delivery.attempt)


def channel_sink(spec: str, adapters: Sequence[Adapter]) -> AlertSink | None:
    """A sink posting alerts to ``bot/platform/channel`` through that running adapter.

    Call it on the event loop: sends are scheduled there from the notifier's thread, which
    waits up to 10 s for each. None (and a warning) when no such adapter is running.
    """
    bot, platform, channel = spec.split("/")
    adapter = next((a for a in adapters if a.bot.name == bot and a.platform == platform), None)
    if adapter is None:
        log.warning("budget alert channel unavailable channel=%s reason=no_running_adapter "
                    "fix='name a bot and platform this process runs'", spec)
        return None
    loop = asyncio.get_running_loop()
    key = ConversationKey(bot=bot, platform=platform, channel=channel)
    target = adapter

    def post(alert: Alert) -> None:
        reply = Reply(text=f"{alert.message}", key=key)
        asyncio.run_coroutine_threadsafe(target.send(reply), loop).result(timeout=10.0)

    return post
