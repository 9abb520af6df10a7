"""Observability: turns what happens in a turn into redacted records for the recorder.

It holds the recorder, the price book and the redactor, and knows each record kind's fields
(see ``records.py``). Every method is cheap and never raises: they run inside ``guard``.

This is the boundary where records are built, so values are made storable here: text is made
valid UTF-8 (a lone surrogate, e.g. from a terminal's bad byte, becomes U+FFFD), message-sized
text is capped at ``max_message_chars`` with a visible marker, and numbers are checked (token
counts, costs and durations finite, non-negative and in range; a bad one is left out and named
in the record's ``invalid`` field). The store still isolates a record it cannot write.
"""

from __future__ import annotations

import logging
import math
import os
import time
import traceback
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from opencell.guard import guard
from opencell.llm.base import LLMRequest, LLMResponse, ToolCall, Usage
from opencell.llm.pricing import PriceBook
from opencell.llm.usage import storable_usage
from opencell.observability.feedback import FeedbackBook
from opencell.observability.fields import (
    bot_secrets,
    invalid_field,
    optional_text,
    streamed_fields,
    truncate,
)
from opencell.observability.model_input import InputDeltas, call_dict
from opencell.observability.recorder import NullRecorder, Recorder
from opencell.observability.redact import Redactor, use_for_logs
from opencell.observability.versions import digest, stamp
from opencell.records import (
    MAX_NUMBER,
    Kind,
    capped,
    new_session_id,
    valid_number,
    valid_text,
    valid_value,
)
from opencell.sessions import EndReason, Session

if TYPE_CHECKING:
    from opencell.config import BotConfig, OpenCellConfig
    from opencell.exporters import Exporters, ExportTuning
    from opencell.store.janitor import Janitor
    from opencell.store.retention import Pruner
    from opencell.store.store import Store
    from opencell.tools import ToolResult

log = logging.getLogger("opencell.observability")

class Observability:
    """Records sessions, messages, model and tool calls, errors and custom events."""

    def __init__(self, recorder: Recorder | NullRecorder, *, prices: PriceBook | None = None,
                 redactor: Redactor | None = None, capture_content: bool = True,
                 max_result_chars: int = 4000, store: Store | None = None,
                 default_tags: Iterable[str] = (), max_message_chars: int = 100_000) -> None:
        self.recorder = recorder
        self.default_tags = tuple(default_tags)
        """Added to every session (``AGENTOPS_TAGS`` when set)."""
        self.prices = prices or PriceBook()
        self.redactor = redactor or Redactor()
        self.capture_content = capture_content
        self.max_result_chars = max_result_chars
        self.max_message_chars = max_message_chars
        """Message-sized text (input, output, prompt, completion) kept per record field."""
        self.store = store
        self.exporters: Exporters | None = None
        self.janitor: Janitor | None = None
        """The exporters this instance started and stops (``from_config``)."""
        self.pruner: Pruner | None = None  # retention, started and stopped here
        self._recent: tuple[tuple[str, str], ...] = ()
        self.inputs = InputDeltas()
        """Each session's previous model input: calls are recorded as what is new."""
        self._versions: dict[str, str] = {}  # version texts recorded → their digest
        self.feedback = FeedbackBook(self)
        """Replies → turns and the ratings on them (``opencell/observability/feedback.py``)."""

    @classmethod
    def disabled(cls) -> Observability:
        """Tracks nothing; sessions still work (history, idle timeouts)."""
        return cls(NullRecorder())

    @classmethod
    def from_config(cls, config: OpenCellConfig, bots: Iterable[BotConfig] = (),
                    env: Mapping[str, str] | None = None, *,
                    export_tuning: ExportTuning | None = None) -> Observability:
        """Open the store, close sessions a crashed process left open, start the recorder
        and the enabled exporters (AgentOps, OTLP), which drain the store's outbox on their
        own threads. ``export_tuning`` paces the exporters (tests inject time with it)."""
        from opencell.exporters import start_exporters
        from opencell.store.janitor import Janitor
        from opencell.store.store import Store

        env = os.environ if env is None else env
        store = Store.open(config.store.url)
        with guard("closing interrupted sessions"):
            closed = store.close_orphans()
            if closed:
                log.info("sessions interrupted by an earlier crash closed count=%d", len(closed))
        obs = config.observability
        secrets = [value for bot in bots for value in bot_secrets(bot)]
        observability = cls(
            Recorder(store), prices=PriceBook(config.pricing),
            redactor=Redactor.from_env(env, secrets=secrets, rules=obs.redact),
            capture_content=obs.capture_content, max_result_chars=obs.max_result_chars,
            max_message_chars=obs.max_message_chars, store=store,
            default_tags=[t.strip() for t in env.get("AGENTOPS_TAGS", "").split(",") if t.strip()])
        use_for_logs(observability.redactor)  # log lines now hide the bots' YAML secrets too
        observability.janitor = Janitor(store).start()
        with guard("starting exporters"):
            observability.exporters = start_exporters(config, store, env=env,
                                                      prices=observability.prices,
                                                      tuning=export_tuning)
        with guard("starting the pruner"):
            from opencell.store.retention import start_pruner

            observability.pruner = start_pruner(store, obs.retention)
        return observability

    def close(self, timeout: float = 5.0, *, export_timeout: float = 5.0) -> bool:
        """Flush what is queued (up to ``timeout``) and stop the writer; then give the
        exporters ``export_timeout`` seconds to deliver (what they cannot stays pending in
        the store for the next start) and stop them."""
        if self.janitor is not None:
            self.janitor.stop()
        self.feedback.close(timeout)  # its writes go to the store, and record events
        flushed = self.recorder.close(timeout)
        if self.pruner is not None:
            self.pruner.stop(timeout)  # never raises: it only sets an event and joins
        if self.exporters is not None:
            with guard("stopping exporters"):
                self.exporters.stop(export_timeout)
        if self.store is not None:
            with guard("store close"):
                self.store.close()
        return flushed

    # ------------------------------------------------------------ helpers

    def text(self, value: str | None) -> str | None:
        """Redacted, valid, capped content, or None when content capture is off."""
        if value is None or not self.capture_content:
            return None
        return self.redact(value)

    def redact(self, value: str) -> str:
        """``Redactor.redact``, then made valid and capped at ``max_message_chars``;
        the last few inputs are remembered by identity.

        A turn's texts reach several records as the very same objects (the user's text is the
        model's prompt and the message's input; the model's answer is the reply), so they are
        redacted once per turn, not once per record. The whole text is redacted before it is
        cut: a cut through a token would hide it from the patterns.
        """
        for seen, redacted in self._recent:
            if seen is value:
                return redacted
        redacted = valid_text(capped(self.redactor.redact(value), self.max_message_chars))
        self._recent = ((value, redacted), *self._recent[:3])
        return redacted

    def _value(self, value: Mapping[str, Any] | None) -> Any:
        """User-supplied structured data (metadata, context, arguments): redacted, valid."""
        return valid_value(self.redactor.redact_value(dict(value or {})))

    def _emit(self, kind: Kind, session_id: str, name: str, data: dict[str, Any], *,
              ts: float | None = None, duration_ms: float | None = None,
              success: bool | None = None) -> None:
        if duration_ms is not None and not (type(duration_ms) is float
                                            and 0.0 <= duration_ms <= MAX_NUMBER) \
                and valid_number(duration_ms) is None:
            invalid_field(data, "duration_ms", duration_ms)
            duration_ms = None
        if ts is not None and not (type(ts) is float and math.isfinite(ts)):
            checked = valid_number(ts)
            if checked is None:
                invalid_field(data, "ts", ts)
            ts = checked
        if type(session_id) is not str or not session_id.isascii():
            session_id = valid_text(str(session_id))
        if type(name) is not str or not name.isascii():
            name = valid_text(str(name))
        self.recorder.emit(kind, session_id, name, data, duration_ms=duration_ms,
                           success=success, ts=ts)

    # ------------------------------------------------------------ session lifecycle

    def session_opened(self, session: Session, user_name: str, *, version: str | None = None,
                       replay_of: str | None = None) -> None:
        """``version``: the bot's version text (``versions.definition``); ``replay_of``: the
        session a replay re-runs."""
        key = session.key
        data = {
            "bot": key.bot, "bot_type": session.bot_type, "platform": key.platform,
            "workspace": key.workspace, "channel": key.channel, "thread": key.thread,
            "user_id": key.user, "user_name": user_name, "tags": list(session.tags),
            "key": str(key)}
        stamp(data, version, replay_of, self._versions, self.redact)
        self._emit("session_start", session.id, key.bot, valid_value(data),
                   ts=session.started_at)

    def version_of(self, version: str) -> str:
        """The id (digest of the redacted text) a version text is stored under."""
        return self._versions.get(version) or digest(self.redact(version))

    def session_closed(self, session: Session, reason: EndReason, success: bool,
                       metadata: dict[str, Any]) -> None:
        self.inputs.forget(session.id)
        self._emit("session_end", session.id, reason, {
            "reason": reason, "status": "success" if success else "failed",
            "metadata": self._value(metadata)}, success=success)

    def start_session(self, *, bot: str, bot_type: str, user_id: str, platform: str,
                      tags: Iterable[str] = (), ts: float | None = None) -> str:
        """A session opened by hand (the facade); returns its id."""
        wall = time.time() if ts is None else ts
        session_id = new_session_id(wall)
        self._emit("session_start", session_id, bot, valid_value({
            "bot": bot, "bot_type": bot_type, "platform": platform, "workspace": "",
            "channel": "", "thread": "", "user_id": user_id, "user_name": user_id,
            "tags": [str(tag) for tag in tags], "key": f"{bot}/{platform}/{user_id}"}),
            ts=wall)
        return session_id

    def end_session(self, session_id: str, *, reason: EndReason, success: bool,
                    metadata: Mapping[str, Any] | None = None, ts: float | None = None) -> None:
        self.inputs.forget(session_id)
        self._emit("session_end", session_id, reason, {
            "reason": reason, "status": "success" if success else "failed",
            "metadata": self._value(metadata)}, success=success, ts=ts)

    # ------------------------------------------------------------ events

    def message(self, session: Session, *, text: str, output: str | None, user_id: str,
                started: float, duration_ms: float, success: bool,
                turn: int | None = None, message_id: str = "") -> None:
        data = {"input": self.text(text), "output": self.text(output),
                "user_id": valid_text(user_id), "input_chars": len(text),
                "output_chars": len(output or "")}
        if turn:
            data["turn"] = turn
        if message_id:  # the platform's id of the user's message: what feedback names
            data["message_id"] = valid_text(message_id)
        self._emit("message", session.id, "turn", data, ts=started, duration_ms=duration_ms,
                   success=success)

    def llm_call(self, session_id: str, *, provider: str, model: str, request: LLMRequest | None,
                 response: LLMResponse | None, started: float, duration_ms: float,
                 error: BaseException | None = None, turn: int | None = None,
                 server: str | None = None,
                 stream: Mapping[str, float | None] | None = None) -> float | None:
        """Record one model call; returns its cost (None: failed, or the model is unpriced).

        With content capture on, the record keeps what the model was sent as the change since
        the session's previous call (``model_input.py``) and what it answered, tool calls
        included; readers rebuild the whole input with ``opencell.transcript``. ``stream``: a
        streamed call's timing (``time_to_first_token_ms``, ``streaming_ms``).
        """
        data: dict[str, Any] = {"provider": provider, "model": model}
        if turn:
            data["turn"] = turn
        if server:
            data["server"] = server
        if request is not None:
            data["max_tokens"] = request.max_tokens
            if request.temperature is not None:
                data["temperature"] = request.temperature
        if response is not None:
            data |= self._usage_fields(provider, model, response.model, response.usage, None)
            data |= {"stop_reason": optional_text(response.stop_reason),
                     "request_id": optional_text(response.request_id),
                     "tool_calls": [valid_text(c.name) for c in response.tool_calls]}
            answer_id = response.raw_finish.get("id") if response.raw_finish else None
            if answer_id:
                data["response_id"] = valid_text(str(answer_id))
            if self.capture_content:
                data["completion"] = self.redact(response.text)
                if response.tool_calls:
                    data["completion_calls"] = [call_dict(c, self._value)
                                                for c in response.tool_calls]
        if request is not None and self.capture_content:
            answer = response.text if response is not None and not response.tool_calls else None
            data |= self.inputs.fields(session_id, request, self.redact, self._value, answer)
        if error is not None:
            data["error"] = valid_text(self.redactor.redact(f"{type(error).__name__}: {error}"))
            data["request_id"] = valid_value(getattr(error, "request_id", None))
        if stream is not None:
            data |= streamed_fields(stream)
        self._emit("llm_call", session_id, f"{provider}:{model}", data, ts=started,
                   duration_ms=duration_ms, success=error is None)
        cost = data.get("cost_usd")
        return cost if isinstance(cost, float) else None

    def usage(self, session_id: str, *, provider: str, model: str, usage: Usage,
              cost_usd: float | None, started: float, duration_ms: float) -> None:
        """An LLM call known only by its usage (the facade's ``track_cost``)."""
        data = {"provider": valid_text(provider), "model": valid_text(model),
                **self._usage_fields(provider, model, model, usage, cost_usd)}
        self._emit("llm_call", session_id, f"{provider}:{model}", data, ts=started,
                   duration_ms=duration_ms, success=True)

    def _usage_fields(self, provider: str, model: str, answered: str, usage: Usage,
                      cost_usd: float | None) -> dict[str, Any]:
        usage, invalid = storable_usage(usage)
        if cost_usd is not None and valid_number(cost_usd) is None:
            invalid["cost_usd"] = cost_usd
            cost_usd = None  # priced from the book instead
        source = "caller"
        if cost_usd is None:
            # Billed as the model that answered; never fall back to a neighbour's price.
            cost = self.prices.price(provider, answered or model, usage)
            cost_usd, source = (cost.total_usd, cost.source) if cost else (None, "unpriced")
        fields: dict[str, Any] = {
            "response_model": valid_text(str(answered or "")),
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens, "cache_read_tokens": usage.cache_read_tokens,
            "cache_write_tokens": usage.cache_write_tokens, "cost_usd": cost_usd,
            "price_source": source}
        if usage.estimated:  # the provider's usage was missing or impossible: the worst case
            fields["usage_estimated"] = True
        for field_name, value in invalid.items():
            invalid_field(fields, field_name, value)
        return fields

    def tool_call(self, session_id: str, *, call: ToolCall, result: ToolResult, started: float,
                  duration_ms: float, turn: int | None = None) -> None:
        content = result.content
        data: dict[str, Any] = {
            "tool": valid_text(str(call.name)), "call_id": valid_text(str(call.id)),
            "args": self._value(call.arguments) if self.capture_content else None,
            # Redact the whole text first: a cut through a token would hide it from the patterns.
            "result": truncate(self._tool_text(content), self.max_result_chars),
            "result_chars": len(content), "truncated": len(content) > self.max_result_chars,
            "error": valid_text(self.redactor.redact(str(result.error)))
            if result.error else None,
            "error_type": type(result.error).__name__ if result.error else None,
        }
        if result.server is not None:
            data["server"] = valid_text(result.server)
        if result.parts:
            data["parts"] = [self._value(part) for part in result.parts]
        if turn:
            data["turn"] = turn
        self._emit("tool_call", session_id, call.name, data, ts=started,
                   duration_ms=duration_ms, success=not result.is_error)

    def error(self, session_id: str, exc: BaseException, *,
              context: Mapping[str, Any] | None = None, ts: float | None = None,
              turn: int | None = None) -> None:
        """An error with its stack; for a wrapped error the cause's stack is kept too."""
        stack = "".join(traceback.format_exception(exc))
        self.error_text(session_id, type(exc).__name__, str(exc), stack, context=context, ts=ts,
                        turn=turn)

    def error_text(self, session_id: str, kind: str, message: str, stack: str, *,
                   context: Mapping[str, Any] | None = None, ts: float | None = None,
                   turn: int | None = None) -> None:
        data: dict[str, Any] = {
            "type": valid_text(str(kind)),
            "message": valid_text(capped(self.redactor.redact(str(message)),
                                         self.max_message_chars)),
            "stack": valid_text(capped(self.redactor.redact(str(stack)),
                                       self.max_message_chars)),
            "context": self._value(context)}
        if turn:
            data["turn"] = turn
        self._emit("error", session_id, kind, data, ts=ts, success=False)

    def custom(self, session_id: str, name: str, data: Mapping[str, Any], *,
               ts: float | None = None) -> None:
        self._emit("custom", session_id, name, self._value(data), ts=ts)

    def _tool_text(self, content: str) -> str | None:
        # A tool result is cut at max_result_chars after redaction; only validity is added.
        if not self.capture_content:
            return None
        return valid_text(self.redactor.redact(content))
