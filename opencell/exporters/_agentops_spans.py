"""Stored events as the spans the AgentOps backend reads (see shared AGENTOPS.md).

One span per event, all children of the session's root span:

=============  ==============================  =========================================
event          span                            notes
=============  ==============================  =========================================
session_end    ``<bot>.session`` (the root)    only the session's first end; starts 1 µs
                                               before its earliest event
message        ``<bot>.agent``                 the turn; input/output as entity in/out
llm_call       ``anthropic.llm`` (CLIENT)      attributes in the order the backend needs
tool_call      ``<tool>.tool``                 no ``gen_ai.*`` keys; a failure carries the
                                               stack of the error recorded with it
error          ``<Type>.operation``            only errors tied to no tool call
custom/alert   ``<name>.operation``            data as ``agentops.entity.input``
session_start  none                            (the root is sent when the session ends)
=============  ==============================  =========================================

Content (prompts, completions, turn input/output, tool arguments and results, error context)
comes from the stored, already redacted records and is left out with ``content=False``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import SpanKind

from opencell.exporters._feedback import (
    feedback_attributes,
    feedback_event,
    is_feedback,
    stream_attributes,
)
from opencell.exporters._inputs import ModelInputs
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
    text,
)
from opencell.exporters.outbox import Outbox, StoredEvent
from opencell.llm.base import Usage
from opencell.llm.pricing import PriceBook
from opencell.store import count, money
from opencell.transcript import ModelInput

SYSTEMS = {"claude": "anthropic", "anthropic": "anthropic", "openai": "openai",
           "moonshot": "moonshot"}
"""Our provider names → ``gen_ai.system`` (the LLM span is named ``<system>.llm``)."""


class AgentOpsSpans(SpanBuilder):
    """Builds AgentOps spans for batches of stored events."""

    def __init__(self, *, tags: Iterable[str] = (), content: bool = True,
                 prices: PriceBook | None = None) -> None:
        self.tags = tuple(tags)
        self.content = content
        self.prices = prices
        self.inputs = ModelInputs()

    # ------------------------------------------------------------ the root

    def session_tags(self, event: StoredEvent) -> list[str]:
        s = event.session
        tags = [*self.tags, *s.tags, f"bot:{s.bot}", f"platform:{s.platform}",
                f"user:{s.user_id}"]
        return list(dict.fromkeys(tag for tag in tags if tag))

    def root(self, event: StoredEvent, outbox: Outbox) -> ReadableSpan | None:
        extent = outbox.extent(event.session.seq)
        if extent.first_end_id is not None and extent.first_end_id != event.id:
            return None  # a repeated end: the root was built from the first one
        s = event.session
        start = min(ns(extent.first_ts or event.ts), ns(s.started_at)) - ROOT_LEAD_NS
        end = max(ns(event.ts), ns(extent.last_end))
        status = event.data.get("status")
        reason = str(event.data.get("reason") or event.name or "")
        end_state = ("Indeterminate" if reason == "interrupted"
                     else "Fail" if status == "failed" else "Success")
        bot = s.bot or "opencell"
        attributes: Attributes = {
            "agentops.span.kind": "session", "operation.name": bot,
            "agentops.tags": self.session_tags(event),
            "trace.metadata.user_id": s.user_id, "trace.metadata.platform": s.platform,
            "trace.metadata.bot_name": bot, "agentops.session.end_state": end_state,
            "trace.metadata.bot_type": s.bot_type, "trace.metadata.end_reason": reason,
            "trace.metadata.session_id": s.id,
        }
        error = f"session failed (ended: {reason})" if status == "failed" else None
        return make_span(f"{bot}.session", session_id=s.id, span=root_span_id(s.id),
                         parent=None, start=start, end=end, attributes=attributes, error=error)

    # ------------------------------------------------------------ children

    def turn(self, event: StoredEvent) -> ReadableSpan:
        s = event.session
        bot = s.bot or "opencell"
        attributes: Attributes = {"agentops.span.kind": "agent", "operation.name": bot}
        if self.content:
            _put(attributes, "agentops.entity.input", text(event.data.get("input")))
            _put(attributes, "agentops.entity.output", text(event.data.get("output")))
        failed = "the turn failed" if event.success is False else None
        return self._child(f"{bot}.agent", event, attributes, error=failed)

    def llm(self, event: StoredEvent, outbox: Outbox) -> ReadableSpan:
        data = event.data
        provider = str(data.get("provider") or "")
        system = SYSTEMS.get(provider, provider or "unknown")
        model = str(data.get("model") or "")
        answered = str(data.get("response_model") or model)
        a: Attributes = {"agentops.span.kind": "llm", "gen_ai.system": system,
                         "gen_ai.request.model": model, "gen_ai.response.model": answered}
        if self.content:
            for i, (role, content) in enumerate(prompts(self.inputs.of(event, outbox))):
                a[f"gen_ai.prompt.{i}.content"] = content
                a[f"gen_ai.prompt.{i}.role"] = role
        if event.success is not False:
            if self.content:
                _put(a, "gen_ai.completion.0.content", text(data.get("completion")))
            a["gen_ai.completion.0.role"] = "assistant"
            _put(a, "gen_ai.completion.0.finish_reason", text(data.get("stop_reason")))
            calls = data.get("completion_calls") if self.content else None
            if isinstance(calls, list):
                for j, call in enumerate(c for c in calls if isinstance(c, dict)):
                    key = f"gen_ai.completion.0.tool_calls.{j}"
                    a[f"{key}.name"] = str(call.get("name") or "")
                    a[f"{key}.arguments"] = as_json(call.get("arguments") or {})
                    a[f"{key}.id"] = str(call.get("id") or "")
            else:
                for j, name in enumerate(data.get("tool_calls") or ()):
                    a[f"gen_ai.completion.0.tool_calls.{j}.name"] = str(name)
        if "input_tokens" in data:
            tokens = [count(data.get(key)) for key in ("input_tokens", "output_tokens",
                                                       "cache_read_tokens",
                                                       "cache_write_tokens")]
            a["gen_ai.usage.prompt_tokens"] = tokens[0]
            a["gen_ai.usage.completion_tokens"] = tokens[1]
            a["gen_ai.usage.total_tokens"] = sum(tokens)
            a["gen_ai.usage.cache_read_input_tokens"] = tokens[2]
            cost = money(data.get("cost_usd"))
            if cost is not None:
                split = self._split(provider, answered, tokens, cost)
                if split is not None:
                    a["gen_ai.usage.prompt_cost"], a["gen_ai.usage.completion_cost"] = split
                a["gen_ai.usage.total_cost"] = cost
            a["gen_ai.usage.cache_creation_input_tokens"] = tokens[3]
        _put(a, "gen_ai.response.id", text(data.get("response_id") or data.get("request_id")))
        a.update(stream_attributes(event))
        error = str(data.get("error") or "the call failed") if event.success is False else None
        events: tuple[Event, ...] = ()
        if error:
            kind, message = split_error(error)
            a["error.type"], a["error.message"] = kind, message
            events = (exception_event(kind, message, None, event_times(event)[1]),)
        return self._child(f"{system}.llm", event, a, kind=SpanKind.CLIENT, error=error,
                           events=events)

    def _split(self, provider: str, model: str, tokens: list[int],
               total: float) -> tuple[float, float] | None:
        """(prompt cost, completion cost) in the stored total's proportions, when known."""
        if self.prices is None or total <= 0:
            return None
        try:
            priced = self.prices.price(provider, model, Usage(*tokens))
        except Exception:  # noqa: BLE001 - a split is a nicety; the total is what counts
            return None
        if priced is None or priced.total_usd <= 0:
            return None
        completion = total * priced.output_usd / priced.total_usd
        return total - completion, completion

    def tool(self, event: StoredEvent, partner: StoredEvent | None) -> ReadableSpan:
        data = event.data
        tool = str(data.get("tool") or event.name or "tool")
        failed = event.success is False
        a: Attributes = {"agentops.span.kind": "tool", "operation.name": tool,
                         "tool.name": tool}
        if data.get("server"):
            a["tool.server"] = str(data["server"])
        if self.content:
            _put(a, "tool.parameters", as_json(data.get("args") or {}))
            _put(a, "tool.result", text(data.get("result")))
        a["tool.status"] = "failed" if failed else "succeeded"
        if self.content:
            _put(a, "agentops.entity.input", as_json(data.get("args") or {}))
            _put(a, "agentops.entity.output", text(data.get("result")))
        error = None
        events: tuple[Event, ...] = ()
        if failed:
            kind = str(data.get("error_type") or (partner.data.get("type") if partner else "")
                       or "ToolError")
            message = str(data.get("error") or "the tool failed")
            error = f"{kind}: {message}"
            a["error.type"], a["error.message"] = kind, message
            stack = text(partner.data.get("stack")) if partner is not None else None
            events = (exception_event(kind, message, stack, event_times(event)[1]),)
        return self._child(f"{tool}.tool", event, a, error=error, events=events)

    def error(self, event: StoredEvent) -> ReadableSpan:
        data = event.data
        kind = str(data.get("type") or event.name or "Error")
        message = str(data.get("message") or "")
        a: Attributes = {"agentops.span.kind": "operation", "operation.name": kind,
                         "error.type": kind, "error.message": message}
        if self.content and data.get("context"):
            a["agentops.entity.input"] = as_json(data.get("context"))
        at = event_times(event)[0]
        return self._child(f"{kind}.operation", event, a, error=f"{kind}: {message}",
                           events=(exception_event(kind, message, text(data.get("stack")),
                                                   at),))

    def operation(self, event: StoredEvent) -> ReadableSpan:
        name = event.name or event.kind
        a: Attributes = {"agentops.span.kind": "operation", "operation.name": name,
                         "agentops.entity.input": as_json(event.data)}
        if is_feedback(event):  # a user's rating: AgentOps shows it as the feedback event
            rating = feedback_attributes(event)
            a.update(rating)
            return self._child(f"{name}.operation", event, a,
                               events=(feedback_event(event, rating),))
        return self._child(f"{name}.operation", event, a)

    @staticmethod
    def _child(name: str, event: StoredEvent, attributes: Attributes, *,
               kind: SpanKind = SpanKind.INTERNAL, error: str | None = None,
               events: Sequence[Event] = ()) -> ReadableSpan:
        start, end = event_times(event)
        session_id = event.session.id
        return make_span(name, session_id=session_id, span=span_id(session_id, event.id),
                         parent=root_context(session_id), start=start, end=end,
                         attributes=attributes, kind=kind, error=error,
                         events=events)


def prompts(model_input: ModelInput) -> list[tuple[str, str]]:
    """(role, content) of every message the model was sent, system prompt first; an
    assistant's tool calls and a tool's answer as JSON when they have no text of their own."""
    out: list[tuple[str, str]] = []
    if model_input.system:
        out.append(("system", model_input.system))
    if model_input.missing:
        out.append(("system", f"[{model_input.missing} earlier messages were not recorded]"))
    for m in model_input.messages:
        role = str(m.get("role") or "user")
        content = str(m.get("content") or "")
        calls = m.get("tool_calls")
        if calls:
            listed = as_json([{"id": c.get("id"), "name": c.get("name"),
                               "arguments": c.get("arguments")}
                              for c in calls if isinstance(c, dict)])
            content = f"{content}\n[tool calls] {listed}" if content else f"[tool calls] {listed}"
        out.append((role, content))
    return out


def _put(attributes: Attributes, key: str, value: str | None) -> None:
    if value is not None:
        attributes[key] = value
