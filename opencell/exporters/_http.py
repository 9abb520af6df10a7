"""Exactly one HTTP request per export: the session ``OTLPSpanExporter`` sends through.

``OTLPSpanExporter`` retries transient failures itself (sleeping up to its timeout) and counts
3xx as success. The exporters' worker does its own back-off (with jitter, interruptible, and
testable with an injected clock), and must know the status code (401 → re-authenticate, 400
→ the batch is rejected, anything else → retry later). So this session records every
outcome as a :class:`Delivery`, and turns everything but a 2xx into an exception the OTLP
client does not retry: the client then returns at once, and the worker decides.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import requests
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

REJECTED = frozenset({400, 413, 422})
"""The backend will never take this batch as it is: split it, and skip a lone bad event."""

THREAD_PREFIX = "opencell-export"


@dataclass(frozen=True, slots=True)
class Delivery:
    """The outcome of one HTTP request to a backend."""

    ok: bool
    status: int | None = None
    error: str | None = None
    """What went wrong, one line, never a credential."""
    retry_after: float | None = None

    @property
    def auth_failed(self) -> bool:
        return self.status in (401, 403)

    @property
    def rejected(self) -> bool:
        return self.status in REJECTED


class NotDelivered(Exception):
    """Raised inside the session for any non-2xx outcome; not a connection error, so the OTLP
    client gives up at once instead of sleeping through its own retries."""


class ExportSession(requests.Session):
    """A ``requests.Session`` remembering the outcome of its last request."""

    def __init__(self, *, only_headers: Iterable[str] | None = None) -> None:
        """``only_headers``: send no other request headers than these (plus ``bearer``)."""
        super().__init__()
        self.outcome: Delivery | None = None
        self.timeout_cap: float | None = None
        self.bearer: str | None = None
        """The ``Authorization`` header value to send, if any."""
        self._only = None if only_headers is None else frozenset(
            name.lower() for name in only_headers)

    def send(self, request: requests.PreparedRequest,
             **kwargs: Any) -> requests.Response:
        if self._only is not None:
            for name in [n for n in request.headers if n.lower() not in self._only]:
                del request.headers[name]
        if self.bearer is not None:
            request.headers["Authorization"] = self.bearer
        cap = self.timeout_cap
        if cap is not None:
            given = kwargs.get("timeout")
            kwargs["timeout"] = cap if not isinstance(given, int | float) else min(given, cap)
        try:
            response = super().send(request, **kwargs)
        except requests.RequestException as exc:
            self.outcome = Delivery(False, None, describe(exc))
            raise NotDelivered(self.outcome.error) from exc
        status = response.status_code
        if 200 <= status < 300:
            self.outcome = Delivery(True, status)
            return response
        self.outcome = Delivery(False, status, f"HTTP {status} {response.reason or ''}".strip(),
                                _retry_after(response))
        raise NotDelivered(self.outcome.error)


def describe(exc: BaseException) -> str:
    """A short, credential-free description of a request failure."""
    if isinstance(exc, requests.ConnectTimeout | requests.ReadTimeout):
        return "timed out"
    if isinstance(exc, requests.ConnectionError):
        text = str(exc)
        if "Connection refused" in text or "Errno 111" in text:
            return "connection refused"
        if "Name or service not known" in text or "nodename nor servname" in text:
            return "host not found"
        return "connection failed"
    return type(exc).__name__


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def send_spans(exporter: OTLPSpanExporter, session: ExportSession,
               spans: Sequence[ReadableSpan], timeout: float) -> Delivery:
    """Export ``spans`` in one request of at most ``timeout`` seconds."""
    session.outcome = None
    session.timeout_cap = max(0.05, timeout)
    try:
        result = exporter.export(spans)
    except NotDelivered:  # an exporter version that lets session errors through
        result = SpanExportResult.FAILURE
    outcome = session.outcome
    if outcome is None:
        return Delivery(False, None, "the spans could not be encoded or sent")
    if result is SpanExportResult.SUCCESS and outcome.ok:
        return outcome
    return outcome if not outcome.ok else Delivery(False, outcome.status, "export failed")


class _OurThreadsOnly(logging.Filter):
    """Drop the OTLP exporter's own error lines from our worker threads: the worker logs
    outages itself, once, rate-limited. Lines from the host app's exporters pass."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not threading.current_thread().name.startswith(THREAD_PREFIX)


_filter_installed = False


def quiet_otlp_logs() -> None:
    """Install the filter once on the loggers the OTLP/HTTP exporter writes to."""
    global _filter_installed
    if _filter_installed:
        return
    _filter_installed = True
    for name in ("opentelemetry.exporter.otlp.proto.http.trace_exporter",
                 "opentelemetry.exporter.otlp.common.http"):
        logging.getLogger(name).addFilter(_OurThreadsOnly())
