"""Span building blocks shared by the exporters: stable ids, times, and ``ReadableSpan``s.

Ids are derived, never random, so a span resent after a failure is the same span:

- trace id = the session id (a UUID) as a 128-bit integer: the session *is* the trace, and
  its hex is what AgentOps shows and links to. A session id that is not a UUID (manual
  tracking misuse) is hashed instead.
- span id = the first 8 bytes of BLAKE2b over ``"<session id>/<event id>"``; the session's
  root span uses ``"<session id>/session"``, so children name their parent before the root
  itself is built (it is built when the session ends).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from opencell.exporters.outbox import Outbox, StoredEvent

Attributes = dict[str, Any]
"""Span attributes in the order they are sent (insertion order)."""

ROOT_LEAD_NS = 1_000
"""The root span starts this long before the session's first event: a backend that takes the
earliest span as the root (AgentOps) must never see a tie."""


def _package_version() -> str:
    try:
        return version("opencell")
    except PackageNotFoundError:
        return "0"


RESOURCE = Resource({"service.name": "opencell", "telemetry.sdk.name": "opencell",
                     "service.version": _package_version()})
SCOPE = InstrumentationScope("opencell", _package_version())


def trace_id(session_id: str) -> int:
    """The trace id of a session: its UUID as a 128-bit integer."""
    try:
        value = uuid.UUID(session_id).int
    except ValueError:
        value = 0
    if value == 0:
        digest = hashlib.blake2b(session_id.encode(), digest_size=16).digest()
        value = int.from_bytes(digest, "big") or 1
    return value


def span_id(session_id: str, event: int | str) -> int:
    """A stable, non-zero 64-bit span id for an event (or ``"session"``) of a session."""
    digest = hashlib.blake2b(f"{session_id}/{event}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") or 1


def root_span_id(session_id: str) -> int:
    return span_id(session_id, "session")


def ns(seconds: float) -> int:
    """Epoch seconds as epoch nanoseconds (one rounding rule for every span)."""
    return round(seconds * 1e9)


def event_times(event: StoredEvent) -> tuple[int, int]:
    """(start, end) of an event in nanoseconds; instant events end when they start."""
    start = ns(event.ts)
    return start, start + max(0, round((event.duration_ms or 0.0) * 1e6))


def turn_trace_id(session_id: str, turn: int) -> int:
    """The trace id of one turn of a session (OTLP backends want a trace per turn)."""
    digest = hashlib.blake2b(f"{session_id}/turn/{turn}".encode(), digest_size=16).digest()
    return int.from_bytes(digest, "big") or 1


def context(session_id: str, span: int, trace: int | None = None) -> SpanContext:
    return SpanContext(trace_id=trace_id(session_id) if trace is None else trace, span_id=span,
                       is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED))


def root_context(session_id: str) -> SpanContext:
    return context(session_id, root_span_id(session_id))


def make_span(name: str, *, session_id: str, span: int, parent: SpanContext | None,
              start: int, end: int, attributes: Attributes, kind: SpanKind = SpanKind.INTERNAL,
              error: str | None = None, events: Sequence[Event] = (),
              trace: int | None = None, resource: Resource = RESOURCE) -> ReadableSpan:
    """A finished span with explicit ids and times; ``error`` sets status ERROR with it.
    ``trace`` is the trace id (default: the session's)."""
    status = Status(StatusCode.ERROR, error) if error else Status(StatusCode.UNSET)
    return ReadableSpan(name=name, context=context(session_id, span, trace), parent=parent,
                        resource=resource, attributes=attributes, events=tuple(events),
                        kind=kind, status=status, start_time=start, end_time=max(start, end),
                        instrumentation_scope=SCOPE)


def exception_event(kind: str, message: str, stack: str | None, at: int) -> Event:
    """The OpenTelemetry ``exception`` span event."""
    attributes: Attributes = {"exception.type": kind, "exception.message": message}
    if stack:
        attributes["exception.stacktrace"] = stack
    return Event("exception", attributes, at)


def split_error(text: str) -> tuple[str, str]:
    """``"Type: message"`` → (Type, message); anything else → ("Error", text)."""
    kind, sep, message = text.partition(": ")
    if sep and kind and " " not in kind:
        return kind, message
    return "Error", text


def as_json(value: object) -> str:
    """Compact JSON for an attribute value (anything unserialisable as its ``str``)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def text(value: object) -> str | None:
    """A content attribute value: strings as they are, anything else as JSON, None stays."""
    if value is None:
        return None
    return value if isinstance(value, str) else as_json(value)




def tool_error_partner(event: StoredEvent, batch: Mapping[int, StoredEvent],
                       extra: Sequence[StoredEvent] = ()) -> StoredEvent | None:
    """The ``error`` event recorded right after a failed tool call (it holds the stack)."""
    call_id = event.data.get("call_id")
    candidates = [batch[i] for i in range(event.id + 1, event.id + 4) if i in batch]
    for other in (*candidates, *extra):
        context_ = other.data.get("context")
        if (other.kind == "error" and other.session.seq == event.session.seq
                and isinstance(context_, dict) and context_.get("call_id") == call_id):
            return other
    return None


def belongs_to_tool(event: StoredEvent) -> bool:
    """An ``error`` recorded for a failed tool call: it goes on the tool's span, not its own."""
    context_ = event.data.get("context")
    return isinstance(context_, dict) and bool(context_.get("call_id"))


class SpanBuilder:
    """Turns a batch of stored events into spans; subclasses shape each kind.

    The dispatch is shared by every exporter: a failed tool call takes the stack of the
    ``error`` recorded right after it (which then gets no span of its own), a session's root
    is built from its ``session_end``, and ``session_start`` produces nothing (the root is
    sent when the session ends).
    """

    def build(self, batch: Sequence[StoredEvent], outbox: Outbox) -> list[ReadableSpan]:
        by_id = {event.id: event for event in batch}
        spans = []
        for event in batch:
            span = self.span(event, by_id, outbox)
            if span is not None:
                spans.append(span)
        return spans

    def span(self, event: StoredEvent, batch: Mapping[int, StoredEvent],
             outbox: Outbox) -> ReadableSpan | None:
        kind = event.kind
        if kind == "llm_call":
            return self.llm(event, outbox)
        if kind == "tool_call":
            partner = None
            if event.success is False:
                partner = tool_error_partner(event, batch) or tool_error_partner(
                    event, {}, outbox.neighbours(event.session.seq, event.id + 1, event.id + 3))
            return self.tool(event, partner)
        if kind == "message":
            return self.turn(event)
        if kind == "error":
            return None if belongs_to_tool(event) else self.error(event)
        if kind in ("custom", "alert"):
            return self.operation(event)
        if kind == "session_end":
            return self.root(event, outbox)
        return None

    def llm(self, event: StoredEvent, outbox: Outbox) -> ReadableSpan | None:
        raise NotImplementedError

    def tool(self, event: StoredEvent, partner: StoredEvent | None) -> ReadableSpan | None:
        raise NotImplementedError

    def turn(self, event: StoredEvent) -> ReadableSpan | None:
        """A turn's span; none by default."""
        return None

    def error(self, event: StoredEvent) -> ReadableSpan | None:
        raise NotImplementedError

    def operation(self, event: StoredEvent) -> ReadableSpan | None:
        raise NotImplementedError

    def root(self, event: StoredEvent, outbox: Outbox) -> ReadableSpan | None:
        raise NotImplementedError
