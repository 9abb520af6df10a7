"""The OTLP exporter: sessions as OpenTelemetry GenAI traces, for any OTLP/HTTP backend.

Langfuse, Phoenix, Jaeger, Grafana Tempo or a Collector read it. Spans follow the GenAI
semantic conventions: ``invoke_agent {bot}`` is a session's root (sent when it ends),
``chat {model}`` one model call (CLIENT), ``execute_tool {tool}`` one tool call; errors tied
to no call become an ``{Type}`` span with an ``exception`` event, custom events a span named
after them. Every span carries ``gen_ai.conversation.id`` and ``session.id`` (the session id)
and ``user.id``. Message and tool content (``gen_ai.input.messages``,
``gen_ai.output.messages``, tool arguments and results, event data) is sent only with
``export_content: true``; it comes from the stored, already redacted records.

``endpoint`` is the OTLP base URL (``OTEL_EXPORTER_OTLP_ENDPOINT``, e.g.
``http://collector:4318``): ``/v1/traces`` is appended unless the URL already ends with it.
``headers`` from the config are sent with every request (and ``OTEL_EXPORTER_OTLP_HEADERS``,
as the OpenTelemetry exporter reads it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import SpanKind

from opencell.exporters._feedback import (
    feedback_attributes,
    feedback_event,
    is_feedback,
    stream_attributes,
)
from opencell.exporters._http import (
    Delivery,
    ExportSession,
    quiet_otlp_logs,
    send_spans,
)
from opencell.exporters._spans import (
    ROOT_LEAD_NS,
    Attributes,
    SpanBuilder,
    as_json,
    event_times,
    exception_event,
    make_span,
    ns,
    root_context,
    root_span_id,
    span_id,
    split_error,
)
from opencell.exporters.outbox import Outbox, StoredEvent
from opencell.store import count, money

if TYPE_CHECKING:
    from opencell.config import OTLPConfig

PROVIDERS = {"claude": "anthropic", "anthropic": "anthropic", "openai": "openai",
             "moonshot": "moonshot_ai"}
"""Our provider names → ``gen_ai.provider.name`` well-known values."""


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL for a base endpoint (``/v1/traces`` appended once)."""
    base = endpoint.strip().rstrip("/")
    return base if base.endswith("/v1/traces") else f"{base}/v1/traces"


class OTLPExporter(SpanBuilder):
    """A :class:`~opencell.exporters._worker.SpanSink` for any OTLP backend."""

    name = "otlp"
    label = "[OTLP]"

    def __init__(self, config: OTLPConfig, *, request_timeout: float = 10.0) -> None:
        self.endpoint = traces_url(config.endpoint)
        self.content = config.export_content
        quiet_otlp_logs()
        self._session = ExportSession()
        self._exporter = OTLPSpanExporter(endpoint=self.endpoint, session=self._session,
                                          headers=dict(config.headers),
                                          timeout=request_timeout)

    def connect(self, timeout: float) -> Delivery:
        return Delivery(True)

    def send(self, spans: Sequence[ReadableSpan], timeout: float) -> Delivery:
        return send_spans(self._exporter, self._session, spans, timeout)

    def delivered(self, batch: Sequence[StoredEvent], spans: Sequence[ReadableSpan]) -> None:
        """Nothing to do: OTLP backends need no links logged."""

    def close(self) -> None:
        self._exporter.shutdown()  # type: ignore[no-untyped-call]

    # ------------------------------------------------------------ spans

    def _common(self, event: StoredEvent, attributes: Attributes) -> Attributes:
        s = event.session
        attributes["gen_ai.conversation.id"] = s.id
        attributes["session.id"] = s.id
        if s.user_id:
            attributes["user.id"] = s.user_id
        return attributes

    def root(self, event: StoredEvent, outbox: Outbox) -> ReadableSpan | None:
        extent = outbox.extent(event.session.seq)
        if extent.first_end_id is not None and extent.first_end_id != event.id:
            return None
        s = event.session
        bot = s.bot or "opencell"
        start = min(ns(extent.first_ts or event.ts), ns(s.started_at)) - ROOT_LEAD_NS
        end = max(ns(event.ts), ns(extent.last_end))
        status = event.data.get("status")
        reason = str(event.data.get("reason") or event.name or "")
        a: Attributes = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": bot}
        self._common(event, a)
        a |= {"opencell.bot_type": s.bot_type, "opencell.platform": s.platform,
              "opencell.channel": s.channel, "opencell.session.end_reason": reason,
              "opencell.session.status": str(status or ""), "opencell.tags": list(s.tags)}
        error = None
        if status == "failed":
            error = f"session failed (ended: {reason})"
            a["error.type"] = "session_failed"
        return make_span(f"invoke_agent {bot}", session_id=s.id, span=root_span_id(s.id),
                         parent=None, start=start, end=end, attributes=a, error=error)

    def llm(self, event: StoredEvent) -> ReadableSpan:
        data = event.data
        provider = str(data.get("provider") or "")
        model = str(data.get("model") or "")
        a: Attributes = {"gen_ai.operation.name": "chat",
                         "gen_ai.provider.name": PROVIDERS.get(provider, provider or "_OTHER"),
                         "gen_ai.request.model": model}
        if data.get("response_model"):
            a["gen_ai.response.model"] = str(data["response_model"])
        if data.get("request_id"):
            a["gen_ai.response.id"] = str(data["request_id"])
        if data.get("stop_reason"):
            a["gen_ai.response.finish_reasons"] = [str(data["stop_reason"])]
        if "input_tokens" in data:
            read, written = count(data.get("cache_read_tokens")), count(
                data.get("cache_write_tokens"))
            # The conventions count cached input inside input_tokens; we store it apart.
            a["gen_ai.usage.input_tokens"] = count(data.get("input_tokens")) + read + written
            a["gen_ai.usage.output_tokens"] = count(data.get("output_tokens"))
            a["gen_ai.usage.cache_read.input_tokens"] = read
            a["gen_ai.usage.cache_creation.input_tokens"] = written
            cost = money(data.get("cost_usd"))
            if cost is not None:
                a["gen_ai.usage.cost"] = cost
        self._common(event, a)
        if self.content:
            prompt = data.get("prompt_last")
            if isinstance(prompt, dict) and prompt.get("content") is not None:
                a["gen_ai.input.messages"] = as_json([{
                    "role": prompt.get("role") or "user",
                    "parts": [{"type": "text", "content": prompt.get("content")}]}])
            if data.get("completion") is not None:
                a["gen_ai.output.messages"] = as_json([{
                    "role": "assistant",
                    "parts": [{"type": "text", "content": data.get("completion")}],
                    "finish_reason": data.get("stop_reason") or "stop"}])
        a.update(stream_attributes(event))
        error = None
        events: tuple[Event, ...] = ()
        if event.success is False:
            kind, message = split_error(str(data.get("error") or "Error: the call failed"))
            a["error.type"] = kind
            error = f"{kind}: {message}"
            events = (exception_event(kind, message, None, event_times(event)[1]),)
        return self._child(f"chat {model}".strip(), event, a, kind=SpanKind.CLIENT,
                           error=error, events=events)

    def tool(self, event: StoredEvent, partner: StoredEvent | None) -> ReadableSpan:
        data = event.data
        tool = str(data.get("tool") or event.name or "tool")
        a: Attributes = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool,
                         "gen_ai.tool.type": "function"}
        if data.get("call_id"):
            a["gen_ai.tool.call.id"] = str(data["call_id"])
        self._common(event, a)
        if self.content:
            a["gen_ai.tool.call.arguments"] = as_json(data.get("args") or {})
            if data.get("result") is not None:
                a["gen_ai.tool.call.result"] = str(data["result"])
        error = None
        events: tuple[Event, ...] = ()
        if event.success is False:
            kind = str(data.get("error_type") or "ToolError")
            message = str(data.get("error") or "the tool failed")
            a["error.type"] = kind
            error = f"{kind}: {message}"
            stack = str(partner.data.get("stack") or "") if partner is not None else None
            events = (exception_event(kind, message, stack or None, event_times(event)[1]),)
        return self._child(f"execute_tool {tool}", event, a, error=error, events=events)

    def error(self, event: StoredEvent) -> ReadableSpan:
        data = event.data
        kind = str(data.get("type") or event.name or "Error")
        message = str(data.get("message") or "")
        a = self._common(event, {"error.type": kind})
        stack = str(data.get("stack") or "") or None
        return self._child(kind, event, a, error=f"{kind}: {message}",
                           events=(exception_event(kind, message, stack,
                                                   event_times(event)[0]),))

    def operation(self, event: StoredEvent) -> ReadableSpan:
        a = self._common(event, {"opencell.event.kind": event.kind})
        if self.content:
            a["opencell.event.data"] = as_json(event.data)
        if is_feedback(event):  # a user's rating: the GenAI evaluation result
            rating = feedback_attributes(event)
            a.update(rating)
            return self._child("feedback", event, a, events=(feedback_event(event, rating),))
        return self._child(event.name or event.kind, event, a)

    @staticmethod
    def _child(name: str, event: StoredEvent, attributes: Attributes, *,
               kind: SpanKind = SpanKind.INTERNAL, error: str | None = None,
               events: Sequence[Event] = ()) -> ReadableSpan:
        start, end = event_times(event)
        session_id = event.session.id
        return make_span(name, session_id=session_id, span=span_id(session_id, event.id),
                         parent=root_context(session_id), start=start, end=end,
                         attributes=attributes, kind=kind, error=error, events=events)
