"""A recorded session read back for replay: its user turns, what each cost, and the tool
results the model was fed.

Turns are the session's ``message`` events in order; a turn's model and tool calls are the
events that carry its turn number (or, for records without one, that started after it and
before the next). Tool results come from the model inputs on record (each call's new messages, see
``opencell/observability/model_input.py``): exactly what the model read back, redacted, keyed
by tool name and arguments; records without inputs fall back to the ``tool_call`` events
(whose result may be cut at ``max_result_chars``).
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opencell.errors import StoreError
from opencell.transcript import rebuild


def arguments_key(name: str, arguments: Any) -> tuple[str, str]:
    """How a tool call is matched to a recorded one: its name and canonical arguments."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            pass
    return name, json.dumps(arguments, sort_keys=True, separators=(",", ":"), default=str)


@dataclass(frozen=True, slots=True)
class ToolUse:
    """One tool call of a turn: what was asked, what came back, and where it came from."""

    name: str
    arguments: Any
    result: str | None = None
    is_error: bool = False
    served: str = "recorded"
    """``recorded`` (as it ran), ``replayed`` (from the recording), ``live``, ``denied`` or
    ``unanswered`` (recorded mode, no recorded call with these arguments)."""

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "arguments": self.arguments, "result": self.result,
                "is_error": self.is_error, "served": self.served}


@dataclass(slots=True)
class Tally:
    """Model calls of one turn (or a whole run): tokens, cost, latency."""

    llm_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0
    unpriced_calls: int = 0
    failed_calls: int = 0
    models: list[str] = field(default_factory=list)

    def add_call(self, *, model: str, input_tokens: int = 0, output_tokens: int = 0,
                 cache_read_tokens: int = 0, cache_write_tokens: int = 0,
                 cost_usd: float | None = 0.0, failed: bool = False) -> None:
        self.llm_calls += 1
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        self.cache_read_tokens += cache_read_tokens
        self.cache_write_tokens += cache_write_tokens
        if failed:
            self.failed_calls += 1
        elif cost_usd is None:
            self.unpriced_calls += 1
        else:
            self.cost_usd += cost_usd
        if model and model not in self.models:
            self.models.append(model)

    def add(self, other: Tally) -> None:
        for name in ("llm_calls", "input_tokens", "output_tokens", "cache_read_tokens",
                     "cache_write_tokens", "cost_usd", "unpriced_calls", "failed_calls"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.models.extend(m for m in other.models if m not in self.models)

    def to_dict(self) -> dict[str, Any]:
        return {"llm_calls": self.llm_calls, "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens, "cache_read_tokens": self.cache_read_tokens,
                "cache_write_tokens": self.cache_write_tokens, "cost_usd": self.cost_usd,
                "unpriced_calls": self.unpriced_calls, "failed_calls": self.failed_calls,
                "models": list(self.models)}


@dataclass(slots=True)
class RecordedTurn:
    """One user turn as it really ran."""

    number: int
    text: str
    reply: str | None
    failed: bool
    duration_ms: float | None
    tally: Tally = field(default_factory=Tally)
    tools: list[ToolUse] = field(default_factory=list)


@dataclass(slots=True)
class Recording:
    """A session read back: its row, turns, system prompt and the recorded tool answers."""

    session: dict[str, Any]
    turns: list[RecordedTurn]
    system: str | None
    answers: dict[tuple[str, str], deque[tuple[str, bool]]]
    """(tool, canonical arguments) → the results it gave, in order."""


def read_recording(session: Mapping[str, Any], events: Sequence[Mapping[str, Any]]
                   ) -> Recording:
    """The recording of ``session`` from its timeline (``Store.timeline``)."""
    turns: list[RecordedTurn] = []
    by_number: dict[int, RecordedTurn] = {}
    for event in events:
        if event["kind"] != "message":
            continue
        text = event.get("input")
        if not isinstance(text, str):
            raise StoreError(f"session {session['id']} was recorded without its messages' "
                             "text (observability.capture_content was off): it cannot be "
                             "replayed")
        turn = RecordedTurn(len(turns) + 1, text, event.get("output"),
                            event.get("success") is False, event.get("duration_ms"))
        turns.append(turn)
        if isinstance(event.get("turn"), int):
            by_number[event["turn"]] = turn
    calls = [e for e in events if e["kind"] == "llm_call"]
    answers: dict[tuple[str, str], deque[tuple[str, bool]]] = {}
    from_inputs = _answers_from_inputs(calls, answers)
    for event in events:
        kind = event["kind"]
        if kind not in ("llm_call", "tool_call"):
            continue
        owner = _turn_of(event, turns, by_number, events)
        if kind == "llm_call":
            if owner is not None:
                owner.tally.add_call(
                    model=str(event.get("response_model") or event.get("model") or ""),
                    input_tokens=_int(event.get("input_tokens")),
                    output_tokens=_int(event.get("output_tokens")),
                    cache_read_tokens=_int(event.get("cache_read_tokens")),
                    cache_write_tokens=_int(event.get("cache_write_tokens")),
                    cost_usd=event.get("cost_usd") if isinstance(
                        event.get("cost_usd"), int | float) else None,
                    failed=event.get("success") is False)
            continue
        name, args = str(event.get("tool") or event["name"]), event.get("args")
        is_error = event.get("success") is False
        result = event.get("result") if not is_error else (event.get("error")
                                                           or event.get("result"))
        if owner is not None:
            owner.tools.append(ToolUse(name, args, result, is_error))
        if not from_inputs and isinstance(result, str):
            answers.setdefault(arguments_key(name, args), deque()).append((result, is_error))
    inputs = rebuild(calls)
    system = next((i.system for i in inputs if i.system is not None), None)
    return Recording(dict(session), turns, system, answers)


def _answers_from_inputs(calls: Sequence[Mapping[str, Any]],
                         answers: dict[tuple[str, str], deque[tuple[str, bool]]]) -> bool:
    """Fill ``answers`` from the tool results the model was sent: each call's new messages
    (``input.add``) in order, so a result re-sent with the history counts once and a call id
    a provider reuses across turns still pairs with its own result. True when the records
    held the model inputs (then the ``tool_call`` events are not needed)."""
    asked: dict[str, tuple[str, Any]] = {}
    found = False
    for data in calls:
        delta = data.get("input")
        if not isinstance(delta, Mapping):
            continue
        found = True
        for message in delta.get("add") or ():
            if not isinstance(message, Mapping):
                continue
            for call in message.get("tool_calls") or ():
                if isinstance(call, Mapping) and call.get("id"):
                    asked[str(call["id"])] = (str(call.get("name")), call.get("arguments"))
            call_id = str(message.get("tool_call_id") or "")
            if message.get("role") != "tool" or call_id not in asked:
                continue
            name, args = asked.pop(call_id)
            answers.setdefault(arguments_key(name, args), deque()).append(
                (str(message.get("content") or ""), bool(message.get("is_error"))))
    return found


def _turn_of(event: Mapping[str, Any], turns: list[RecordedTurn],
             by_number: dict[int, RecordedTurn], events: Sequence[Mapping[str, Any]]
             ) -> RecordedTurn | None:
    number = event.get("turn")
    if isinstance(number, int) and number in by_number:
        return by_number[number]
    owner = None
    index = 0
    for other in events:  # the latest turn that started at or before this event
        if other["kind"] == "message":
            if other["ts"] > event["ts"]:
                break
            owner = turns[index] if index < len(turns) else owner
            index += 1
    return owner


def _int(value: object) -> int:
    return value if type(value) is int and value > 0 else 0
