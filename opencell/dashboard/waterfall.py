"""The waterfall of a turn: its model and tool calls as bars on one time axis.

A turn starts when the user's message arrives (the ``message`` event's ``ts``) and lasts its
``duration_ms``; the model and tool calls it caused are the events recorded since the
previous message (see ``pages.replay``). Each bar's offset and width are percentages of the
turn's span, so the page draws them with SVG geometry — no inline styles, which the CSP
forbids.

The critical path is what the turn waited on: walking back from the turn's end, the call
that ended last before that point, then the call that ended last before it started, and so
on. Calls running beside it (parallel tool calls) are off the path; the gaps between path
calls are the bot's own time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

SPAN_KINDS = ("llm_call", "tool_call")
MAX_TURNS = 50
"""The last this many turns are drawn (a long session's page stays light)."""
ROUNDING = 0.001
"""Seconds: event times are stored to the millisecond."""
SLACK = 0.002
"""Seconds: times are stored to the millisecond, so back-to-back calls may seem to overlap."""
MIN_WIDTH = 0.4
"""Percent: a call too short to see still gets a sliver."""


@dataclass(frozen=True, slots=True)
class Span:
    """One call on the axis (epoch seconds)."""

    event: dict[str, Any]
    start: float
    end: float


def epoch(iso: Any) -> float | None:
    """``2026-01-31T12:00:00.000Z`` → epoch seconds (None when missing or unreadable)."""
    if not isinstance(iso, str):
        return None
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def waterfalls(timeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One waterfall per turn (the last ``MAX_TURNS``), oldest first; a turn still running
    (calls recorded, its message not yet) comes last with ``running``."""
    turns: list[dict[str, Any]] = []
    pending: list[dict[str, Any]] = []
    for event in timeline:
        kind = event.get("kind")
        if kind == "message":
            turns.append(turn(event, pending))
            pending = []
        elif kind in SPAN_KINDS:
            pending.append(event)
    if pending:
        turns.append(turn(None, pending))
    for number, each in enumerate(turns, start=1):
        each["number"] = number
    return turns[-MAX_TURNS:]


def turn(message: dict[str, Any] | None, calls: list[dict[str, Any]]) -> dict[str, Any]:
    """A turn's bars, axis and critical path."""
    spans: list[Span] = []
    for call in calls:
        start = epoch(call.get("ts"))
        if start is None:
            continue
        if spans and start < spans[-1].end <= start + ROUNDING:
            # Recorded one after the other within the clock's millisecond: the later call
            # began when the earlier ended, not before (parallel calls overlap by more).
            start = spans[-1].end
        duration = max(0.0, float(call.get("duration_ms") or 0.0)) / 1000.0
        spans.append(Span(call, start, start + duration))
    began = epoch(message.get("ts")) if message is not None else None
    if began is None:
        began = min((s.start for s in spans), default=0.0)
    took = float(message.get("duration_ms") or 0.0) / 1000.0 if message is not None else 0.0
    ended = max([began + took, *(s.end for s in spans)])
    total = max(ended - began, 1e-6)
    critical = critical_path(spans, ended)
    bars = []
    for index, span in enumerate(spans):
        event = span.event
        offset = min(100.0, max(0.0, (span.start - began) / total * 100.0))
        width = max(MIN_WIDTH, (span.end - span.start) / total * 100.0)
        bars.append({
            "id": event.get("id"), "kind": event["kind"], "label": label(event),
            "duration_ms": event.get("duration_ms"), "offset": round(offset, 3),
            "width": round(min(width, 100.0 - offset) or MIN_WIDTH, 3),
            "start_ms": round((span.start - began) * 1000.0, 1),
            "critical": index in critical, "failed": event.get("success") is False,
        })
    on_path = sum(spans[i].end - spans[i].start for i in critical) * 1000.0
    return {"message_id": message.get("id") if message is not None else None,
            "running": message is None, "failed": bool(message and message.get("success")
                                                       is False),
            "duration_ms": total * 1000.0, "bars": bars, "ticks": ticks(total * 1000.0),
            "own_ms": max(0.0, total * 1000.0 - on_path),
            "llm_calls": sum(b["kind"] == "llm_call" for b in bars),
            "tool_calls": sum(b["kind"] == "tool_call" for b in bars)}


def critical_path(spans: list[Span], ended: float) -> set[int]:
    """Indexes of the spans on the critical path (see the module docstring)."""
    path: set[int] = set()
    point = ended
    while True:
        best = None
        for index, span in enumerate(spans):
            if index in path or span.end > point + SLACK or span.start > point:
                continue
            key = (span.end, span.end - span.start)
            if best is None or key > best[0]:
                best = (key, index)
        if best is None:
            return path
        path.add(best[1])
        point = spans[best[1]].start


def label(event: dict[str, Any]) -> str:
    if event["kind"] == "llm_call":
        return str(event.get("response_model") or event.get("model") or event.get("name"))
    return str(event.get("tool") or event.get("name"))


def ticks(total_ms: float) -> list[str]:
    """Five axis labels, 0 to the turn's length."""
    return [_ms(total_ms * i / 4) for i in range(5)]


def _ms(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    if value >= 10 or value == 0:
        return f"{value:.0f} ms"
    return f"{value:.1f} ms"
