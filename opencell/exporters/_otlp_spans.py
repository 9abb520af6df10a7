"""Stored events as OTLP spans: one trace per turn, GenAI and OpenInference attributes agreeing.

A turn is one trace: its root ``invoke_agent {bot}`` (OpenInference ``AGENT``) with the user's
message as ``input.value`` and the reply as ``output.value``, and children ``chat {model}``
(``LLM``, CLIENT) and ``execute_tool {tool}`` (``TOOL``). The spans of a turn are built when
its ``message`` event arrives (the turn is over): the turn's model and tool calls are read
back from the store then, so a backend never shows a half turn or an orphan span. Every span
carries ``session.id``, ``gen_ai.conversation.id`` and ``user.id``, which is how Phoenix and
Langfuse group a session's traces.

Token counts are on the model spans only (the conventions' input count includes cached
tokens), so a trace's totals add up once. A turn's error goes on its root (status ERROR with
an ``exception`` event); a failed model call is its own span's error, not a second span.

Events that belong to no turn (tracked by hand through ``get_agentops()``, custom events,
alerts) keep the session as their trace, with an ``invoke_agent`` root sent when the session
ends.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind

from opencell.exporters import _genai as g
from opencell.exporters._feedback import (
    feedback_attributes,
    feedback_event,
    is_feedback,
    stream_attributes,
)
from opencell.exporters._inputs import ModelInputs
from opencell.exporters._spans import (
    RESOURCE,
    ROOT_LEAD_NS,
    Attributes,
    SpanBuilder,
    as_json,
    belongs_to_tool,
    context,
    event_times,
    exception_event,
    make_span,
    ns,
    root_context,
    root_span_id,
    span_id,
    split_error,
    tool_error_partner,
    turn_trace_id,
)
from opencell.exporters.outbox import Outbox, StoredEvent
from opencell.store import count, money

PROVIDERS = {"claude": "anthropic", "anthropic": "anthropic", "openai": "openai",
             "moonshot": "moonshot_ai"}
"""Our provider names → ``gen_ai.provider.name`` well-known values."""

TURN_KINDS = ("llm_call", "tool_call", "error")

Place = tuple[int, SpanContext]
"""(trace id, parent) of a child span."""


class OTLPSpans(SpanBuilder):
    """Builds the OTLP spans of a batch of stored events (see the module docstring)."""

    content: bool = False
    resource: Resource = RESOURCE

    def __init__(self, *, content: bool = False, resource: Resource = RESOURCE) -> None:
        self.content = content
        self.resource = resource
        self.inputs = ModelInputs()

    def build(self, batch: Sequence[StoredEvent], outbox: Outbox) -> list[ReadableSpan]:
        by_id = {event.id: event for event in batch}
        spans: list[ReadableSpan] = []
        for event in batch:
            turn = event.data.get("turn")
            if event.kind == "message":
                if type(turn) is int:
                    spans += self.turn_spans(event, outbox.turn_events(event), outbox)
            elif type(turn) is int and event.kind in TURN_KINDS:
                continue  # sent with its turn, when the turn's message arrives
            elif event.kind == "session_end":
                spans += self.session_end(event, outbox)
            else:
                span = self.span(event, by_id, outbox)
                if span is not None:
                    spans.append(span)
        return spans

    # ------------------------------------------------------------ a turn

    def turn_spans(self, message: StoredEvent | None, children: Sequence[StoredEvent],
             outbox: Outbox, number: int | None = None) -> list[ReadableSpan]:
        """The spans of one turn: its root and every model and tool call in it."""
        first = message or children[0]
        s = first.session
        number = number if number is not None else int(first.data.get("turn") or 0)
        trace = turn_trace_id(s.id, number)
        root = context(s.id, span_id(s.id, f"turn/{number}"), trace)
        place = (trace, root)
        by_id = {event.id: event for event in children}
        spans: list[ReadableSpan] = []
        failure: StoredEvent | None = None
        calls = [e for e in children if e.kind == "llm_call"]
        for event in children:
            if event.kind == "llm_call":
                spans.append(self.llm_span(event, outbox, place))
            elif event.kind == "tool_call":
                partner = tool_error_partner(event, by_id) if event.success is False else None
                spans.append(self.tool_span(event, partner, place))
            elif event.kind == "error" and not belongs_to_tool(event):
                failure = event
        starts = [sp.start_time or 0 for sp in spans]
        ends = [sp.end_time or 0 for sp in spans]
        if message is not None:
            start, end = event_times(message)
        else:
            start, end = min(starts), max(ends)
        start = min([start, *starts])
        end = max([end, *ends])
        a: Attributes = {"gen_ai.operation.name": "invoke_agent",
                         "gen_ai.agent.name": s.bot or "opencell"}
        if calls:
            provider = str(calls[0].data.get("provider") or "")
            a["gen_ai.provider.name"] = PROVIDERS.get(provider, provider or "_OTHER")
            a["gen_ai.request.model"] = str(calls[0].data.get("model") or "")
        self._common(first, a)
        a |= {"openinference.span.kind": "AGENT", "langfuse.observation.type": "agent",
              "opencell.turn": number, "opencell.bot_type": s.bot_type,
              "opencell.platform": s.platform, "opencell.channel": s.channel,
              "opencell.tags": list(s.tags)}
        if self.content and message is not None:
            _text(a, "input", message.data.get("input"))
            _text(a, "output", message.data.get("output"))
        error = None
        events: tuple[Event, ...] = ()
        if failure is not None:
            kind = str(failure.data.get("type") or failure.name or "Error")
            text = str(failure.data.get("message") or "")
            a["error.type"] = kind
            error = f"{kind}: {text}"
            events = (exception_event(kind, text, str(failure.data.get("stack") or "") or None,
                                      event_times(failure)[0]),)
        elif message is None:
            a["error.type"] = "turn_unfinished"
            error = "the turn was cut off (the process stopped) before it finished"
        elif message.success is False:
            a["error.type"] = "turn_failed"
            error = "the turn failed"
        root_span = make_span(f"invoke_agent {s.bot or 'opencell'}", session_id=s.id,
                              span=root.span_id, parent=None, start=start, end=end,
                              attributes=a, error=error, events=events, trace=trace,
                              resource=self.resource)
        return [root_span, *spans]

    def session_end(self, event: StoredEvent, outbox: Outbox) -> list[ReadableSpan]:
        """A session-wide root when events outside any turn hang under it; the turns a crash
        cut off (``interrupted``) are sent now, as they will never get their message."""
        spans: list[ReadableSpan] = []
        if event.data.get("reason") == "interrupted":
            by_turn: dict[int, list[StoredEvent]] = {}
            for child in outbox.unfinished_turns(event.session.seq, event.id):
                by_turn.setdefault(int(child.data["turn"]), []).append(child)
            for number, children in sorted(by_turn.items()):
                spans += self.turn_spans(None, children, outbox, number)
        if outbox.loose_events(event.session.seq, event.id):
            root = self.root(event, outbox)
            if root is not None:
                spans.append(root)
        return spans

    # ------------------------------------------------------------ children

    def _common(self, event: StoredEvent, attributes: Attributes) -> Attributes:
        s = event.session
        attributes["gen_ai.conversation.id"] = s.id
        attributes["session.id"] = s.id
        if s.user_id:
            attributes["user.id"] = s.user_id
        return attributes

    def llm(self, event: StoredEvent, outbox: Outbox) -> ReadableSpan | None:
        return self.llm_span(event, outbox, None)

    def llm_span(self, event: StoredEvent, outbox: Outbox, place: Place | None) -> ReadableSpan:
        data = event.data
        provider = str(data.get("provider") or "")
        model = str(data.get("model") or "")
        answered = str(data.get("response_model") or "")
        a: Attributes = {"gen_ai.operation.name": "chat",
                         "gen_ai.provider.name": PROVIDERS.get(provider, provider or "_OTHER"),
                         "gen_ai.request.model": model}
        if answered:
            a["gen_ai.response.model"] = answered
        if data.get("response_id"):
            a["gen_ai.response.id"] = str(data["response_id"])
        if data.get("request_id"):
            a["opencell.request_id"] = str(data["request_id"])
        for key in ("max_tokens", "temperature"):
            if isinstance(data.get(key), int | float) and not isinstance(data.get(key), bool):
                a[f"gen_ai.request.{key}"] = data[key]
        host, _, port = str(data.get("server") or "").rpartition(":")
        if host and port.isdigit():
            a["server.address"], a["server.port"] = host, int(port)
        if data.get("stop_reason"):
            a["gen_ai.response.finish_reasons"] = [g.finish_reason(data["stop_reason"])]
        a["openinference.span.kind"] = "LLM"
        a["langfuse.observation.type"] = "generation"
        a["llm.model_name"] = answered or model
        a["llm.provider"] = a["gen_ai.provider.name"]
        a["llm.system"] = a["gen_ai.provider.name"]
        parameters = {k: data[k] for k in ("max_tokens", "temperature") if k in data}
        if parameters:
            a["llm.invocation_parameters"] = as_json(parameters)
        if "input_tokens" in data:
            read = count(data.get("cache_read_tokens"))
            written = count(data.get("cache_write_tokens"))
            prompt = count(data.get("input_tokens")) + read + written
            completion = count(data.get("output_tokens"))
            # The conventions count cached input inside input_tokens; we store it apart.
            a |= {"gen_ai.usage.input_tokens": prompt, "gen_ai.usage.output_tokens": completion,
                  "gen_ai.usage.cache_read.input_tokens": read,
                  "gen_ai.usage.cache_creation.input_tokens": written,
                  "gen_ai.usage.cache_write.input_tokens": written,
                  "llm.token_count.prompt": prompt, "llm.token_count.completion": completion,
                  "llm.token_count.total": prompt + completion,
                  "llm.token_count.prompt_details.cache_read": read,
                  "llm.token_count.prompt_details.cache_write": written}
            cost = money(data.get("cost_usd"))
            if cost is not None:
                a["gen_ai.usage.cost"] = cost
                a["llm.cost.total"] = cost
        self._common(event, a)
        a.update(stream_attributes(event))
        if self.content:
            self._llm_content(event, outbox, a)
        error = None
        events: tuple[Event, ...] = ()
        if event.success is False:
            kind, message = split_error(str(data.get("error") or "Error: the call failed"))
            a["error.type"] = kind
            error = f"{kind}: {message}"
            events = (exception_event(kind, message, None, event_times(event)[1]),)
        return self._child(f"chat {model}".strip(), event, a, kind=SpanKind.CLIENT,
                           error=error, events=events, place=place)

    def _llm_content(self, event: StoredEvent, outbox: Outbox, a: Attributes) -> None:
        data = event.data
        model_input = self.inputs.of(event, outbox)
        if model_input.known:
            if model_input.system:
                a["gen_ai.system_instructions"] = as_json(
                    g.system_instructions(model_input.system))
            a["gen_ai.input.messages"] = as_json(g.genai_messages(model_input.messages))
            if model_input.tools:
                a["gen_ai.tool.definitions"] = as_json(g.tool_definitions(model_input.tools))
            a["input.value"] = g.input_value(model_input)
            a["input.mime_type"] = "application/json"
            a |= g.flat_messages("llm.input_messages", g.chat_messages(model_input))
            a |= g.flat_tools(model_input.tools)
        if event.success is not False and "completion" in data:
            a["gen_ai.output.messages"] = as_json(g.genai_output(data))
            answer = g.chat_message(g.output_message(data))
            if "tool_calls" in answer:
                a["output.value"] = as_json(answer)
                a["output.mime_type"] = "application/json"
            else:
                a["output.value"] = str(data.get("completion") or "")
                a["output.mime_type"] = "text/plain"
            a |= g.flat_messages("llm.output_messages", [answer])

    def tool(self, event: StoredEvent, partner: StoredEvent | None) -> ReadableSpan:
        return self.tool_span(event, partner, None)

    def tool_span(self, event: StoredEvent, partner: StoredEvent | None,
                  place: Place | None) -> ReadableSpan:
        data = event.data
        tool = str(data.get("tool") or event.name or "tool")
        a: Attributes = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool,
                         "gen_ai.tool.type": "function"}
        if data.get("call_id"):
            a["gen_ai.tool.call.id"] = str(data["call_id"])
            a["tool_call.id"] = str(data["call_id"])
        a |= {"openinference.span.kind": "TOOL", "langfuse.observation.type": "tool",
              "tool.name": tool}
        if data.get("server"):  # a tool of an MCP server
            a["gen_ai.tool.type"] = "extension"
            a["opencell.tool.server"] = str(data["server"])
        self._common(event, a)
        if self.content:
            arguments = as_json(data.get("args") or {})
            a["gen_ai.tool.call.arguments"] = arguments
            a["input.value"], a["input.mime_type"] = arguments, "application/json"
            if data.get("result") is not None:
                a["gen_ai.tool.call.result"] = str(data["result"])
                a["output.value"], a["output.mime_type"] = str(data["result"]), "text/plain"
        error = None
        events: tuple[Event, ...] = ()
        if event.success is False:
            kind = str(data.get("error_type") or "ToolError")
            message = str(data.get("error") or "the tool failed")
            a["error.type"] = kind
            error = f"{kind}: {message}"
            stack = str(partner.data.get("stack") or "") if partner is not None else None
            events = (exception_event(kind, message, stack or None, event_times(event)[1]),)
        return self._child(f"execute_tool {tool}", event, a, error=error, events=events,
                           place=place)

    # ------------------------------------------------------------ outside any turn

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
        a |= {"openinference.span.kind": "AGENT", "langfuse.observation.type": "agent",
              "opencell.bot_type": s.bot_type, "opencell.platform": s.platform,
              "opencell.channel": s.channel, "opencell.session.end_reason": reason,
              "opencell.session.status": str(status or ""), "opencell.tags": list(s.tags)}
        error = None
        if status == "failed":
            error = f"session failed (ended: {reason})"
            a["error.type"] = "session_failed"
        return make_span(f"invoke_agent {bot}", session_id=s.id, span=root_span_id(s.id),
                         parent=None, start=start, end=end, attributes=a, error=error,
                         resource=self.resource)

    def error(self, event: StoredEvent) -> ReadableSpan:
        data = event.data
        kind = str(data.get("type") or event.name or "Error")
        message = str(data.get("message") or "")
        a = self._common(event, {"error.type": kind, "openinference.span.kind": "CHAIN"})
        stack = str(data.get("stack") or "") or None
        return self._child(kind, event, a, error=f"{kind}: {message}",
                           events=(exception_event(kind, message, stack,
                                                   event_times(event)[0]),))

    def operation(self, event: StoredEvent) -> ReadableSpan:
        a = self._common(event, {"opencell.event.kind": event.kind,
                                 "openinference.span.kind": "CHAIN"})
        if self.content:
            a["opencell.event.data"] = as_json(event.data)
        if is_feedback(event):  # a user's rating: the GenAI evaluation result
            rating = feedback_attributes(event)
            a.update(rating)
            return self._child("feedback", event, a, events=(feedback_event(event, rating),))
        return self._child(event.name or event.kind, event, a)

    def _child(self, name: str, event: StoredEvent, attributes: Attributes, *,
               kind: SpanKind = SpanKind.INTERNAL, error: str | None = None,
               events: Sequence[Event] = (), place: Place | None = None) -> ReadableSpan:
        start, end = event_times(event)
        session_id = event.session.id
        trace, parent = place if place is not None else (None, root_context(session_id))
        return make_span(name, session_id=session_id, span=span_id(session_id, event.id),
                         parent=parent, start=start, end=end, attributes=attributes,
                         kind=kind, error=error, events=events, trace=trace,
                         resource=self.resource)


def _text(attributes: Attributes, prefix: str, value: object) -> None:
    if value is not None:
        attributes[f"{prefix}.value"] = str(value)
        attributes[f"{prefix}.mime_type"] = "text/plain"
