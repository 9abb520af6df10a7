"""Span attributes for streamed calls and user feedback, shared by the OTLP and AgentOps
exporters (kept apart from their span shapes so those can change independently).

Streamed calls: ``gen_ai.response.time_to_first_chunk`` (seconds; the current GenAI semantic
conventions' name for time to first token on a client span) and Langfuse's
``langfuse.observation.completion_start_time`` (the moment the first token arrived, which
Langfuse shows as the generation's time to first token).

Feedback (a ``feedback`` custom event): the GenAI conventions' evaluation result —
``gen_ai.evaluation.name`` = ``user_feedback``, ``gen_ai.evaluation.score.value`` (+1, -1,
0 retracted) and ``.label`` (good / bad / retracted) — on the span and as its
``gen_ai.evaluation.result`` span event, plus ``opencell.feedback.*`` naming the turn.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from opentelemetry.sdk.trace import Event

from opencell.exporters._spans import Attributes, event_times
from opencell.exporters.outbox import StoredEvent

EVALUATION_EVENT = "gen_ai.evaluation.result"


def stream_attributes(event: StoredEvent) -> Attributes:
    """The streaming attributes of an ``llm_call`` (none for a call that did not stream)."""
    data = event.data
    ttft = data.get("time_to_first_token_ms")
    if not data.get("streamed") or not isinstance(ttft, int | float):
        return {}
    first = datetime.fromtimestamp(event.ts + ttft / 1000, UTC)
    out: Attributes = {
        "gen_ai.response.time_to_first_chunk": round(ttft / 1000, 6),
        "langfuse.observation.completion_start_time": first.isoformat().replace(
            "+00:00", "Z")}
    streaming = data.get("streaming_ms")
    if isinstance(streaming, int | float):
        out["opencell.stream.duration_ms"] = float(streaming)
    return out


def is_feedback(event: StoredEvent) -> bool:
    return event.kind == "custom" and event.name == "feedback"


def feedback_attributes(event: StoredEvent) -> Attributes:
    """The evaluation attributes of a ``feedback`` event."""
    data: dict[str, Any] = event.data if isinstance(event.data, dict) else {}
    value = data.get("value")
    score = data.get("score")
    out: Attributes = {
        "gen_ai.evaluation.name": "user_feedback",
        "gen_ai.evaluation.score.value": float(score) if isinstance(score, int | float)
        else 0.0,
        "gen_ai.evaluation.score.label": str(value) if value else "retracted",
        "opencell.feedback.turn": str(data.get("turn") or ""),
        "opencell.feedback.source": str(data.get("source") or ""),
        "opencell.feedback.retracted": bool(data.get("retracted")),
    }
    if data.get("user_id"):
        out["opencell.feedback.user_id"] = str(data["user_id"])
    if data.get("comment"):
        out["gen_ai.evaluation.explanation"] = str(data["comment"])
    return out


def feedback_event(event: StoredEvent, attributes: Attributes) -> Event:
    """The ``gen_ai.evaluation.result`` span event carrying ``attributes``."""
    return Event(EVALUATION_EVENT, attributes=dict(attributes),
                 timestamp=event_times(event)[0])
