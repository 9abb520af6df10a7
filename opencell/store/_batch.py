"""Turns a batch of records into what one store transaction writes (pure Python, no SQL).

One pass over the records yields: new session rows (``session_start``), event rows, one
running-total delta per touched session, session ends, and LLM usage for the cost rollups.
Every value is coerced to the column's type and length here (text made valid UTF-8), so a
malformed record (facade misuse) is rejected alone and cannot poison the batch it travels in;
a rejected record becomes a quarantine row (``losses.quarantine_row``) in the same
transaction.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from opencell.calendar import utc_day
from opencell.records import Record, valid_text
from opencell.store._json import to_json as to_json
from opencell.store.losses import quarantine_row
from opencell.store.search import (
    message_terms,
    message_texts,
    session_terms,
    terms_of,
    words_of,
)
from opencell.store.texts import SHARED_MIN_CHARS, share, version_digest

EventRow = tuple[str, float, str, str, float | None, bool | None, str]
"""(session id, ts, kind, name, duration_ms, success, data as JSON text)."""


@dataclass(slots=True)
class Totals:
    """What one batch adds to one session's running totals."""

    messages: int = 0
    failed_turns: int = 0
    llm_calls: int = 0
    tool_calls: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float = 0.0
    unpriced_calls: int = 0
    last_activity: float | None = None
    last_turn_failed: bool | None = None
    """From the batch's latest ``message`` record; None = no message, keep the stored value."""
    last_message_ts: float = -math.inf


@dataclass(slots=True)
class SessionEnd:
    """A ``session_end`` record: what it sets on the session row."""

    session_id: str
    ts: float
    reason: str
    status: str | None
    metadata: str


@dataclass(slots=True)
class Usage:
    """One priced (or unpriced) LLM call, for the daily and hourly cost rollups."""

    session_id: str
    day: str
    hour: int
    """Hours since the epoch (``ts // 3600``)."""
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float | None
    estimated: bool = False
    """The provider's usage was missing or impossible; these are the call's worst case."""
    ttft_ms: float | None = None
    """A streamed call's time to its first token."""
    answered_by: str = ""
    """The model that answered (``response_model``, else the model asked for)."""


@dataclass(slots=True)
class BatchPlan:
    """Everything one ``write_batch`` transaction writes."""

    starts: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: list[EventRow] = field(default_factory=list)
    totals: dict[str, Totals] = field(default_factory=dict)
    ends: list[SessionEnd] = field(default_factory=list)
    usage: list[Usage] = field(default_factory=list)
    rejected: int = 0
    """Records that could not be read at all (not a Record, no usable ts or session id)."""
    quarantine: list[dict[str, Any]] = field(default_factory=list)
    """The rejected records as quarantine rows (see ``losses.quarantine_row``)."""
    texts: dict[str, str] = field(default_factory=dict)
    """Large texts the events refer to by digest (see ``texts.py``)."""
    terms: dict[str, set[str]] = field(default_factory=dict)
    """Session id → the words to make searchable in it (see ``search.py``)."""
    said: dict[str, list[str]] = field(default_factory=dict)
    """Session id → its messages' texts whose words are read together (``words_of``)."""


def text(value: object, limit: int = 200) -> str | None:
    """A string column value: None stays None, anything else is ``str`` cut to ``limit``."""
    if value is None:
        return None
    out = value if type(value) is str else str(value)
    return valid_text(out if len(out) <= limit else out[:limit])


def count(value: object) -> int:
    """A token count: missing, negative or unreadable counts as 0."""
    if type(value) is int:
        return value if value > 0 else 0
    try:
        number = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError, OverflowError):
        return 0
    return number if number > 0 else 0


def money(value: object) -> float | None:
    """A cost in USD, or None when unpriced or unreadable (a bool is not a cost)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def plan_batch(records: Sequence[Record], owner: str) -> BatchPlan:
    """Read ``records`` once into a :class:`BatchPlan` (``owner`` goes on new session rows)."""
    plan = BatchPlan()
    for record in records:
        try:
            _plan_one(plan, record, owner)
        except Exception as exc:  # noqa: BLE001 - one bad record must not sink the batch
            plan.rejected += 1
            plan.quarantine.append(quarantine_row(record, f"{type(exc).__name__}: {exc}"))
    for session_id, texts in plan.said.items():
        _add_terms(plan, session_id, words_of(texts))
    return plan


def _add_terms(plan: BatchPlan, session_id: str, words: set[str]) -> None:
    if words:
        known = plan.terms.get(session_id)
        if known is None:
            plan.terms[session_id] = words
        else:
            known |= words


def _plan_one(plan: BatchPlan, record: Record, owner: str) -> None:
    # Runs once per stored event: the common case (well-formed values) takes no conversions.
    kind, session_id, ts, name, data, duration_ms, success = record
    if type(session_id) is not str or len(session_id) > 64:
        session_id = str(session_id)[:64]
    if type(ts) is not float:
        ts = float(ts)
    if not session_id or not math.isfinite(ts):
        raise ValueError("record without a session id or a usable timestamp")
    if type(kind) is not str or len(kind) > 32:
        kind = str(kind)[:32]  # type: ignore[assignment]
    if type(name) is not str or len(name) > 300:
        name = text(name, 300) or ""
    if type(data) is not dict and not isinstance(data, Mapping):
        data = {"data": data}
    if duration_ms is not None and type(duration_ms) is not float:
        duration_ms = float(duration_ms)
    if success is not None and type(success) is not bool:
        success = bool(success)
    if kind == "session_end":
        status = data.get("status")
        ending = SessionEnd(session_id, ts, text(data.get("reason") or name, 40) or "explicit",
                            status if status in ("success", "failed") else None,
                            to_json(data.get("metadata") or {}))
        plan.events.append((session_id, ts, kind, name, duration_ms, success,
                            _event_json(data, plan)))
        plan.ends.append(ending)
        return
    # Everything that could still fail on odd values happens before the event is planned.
    start = None
    if kind == "session_start":
        data, version = version_digest(data, plan.texts)  # the bot's definition, stored once
        start = _session_row(session_id, ts, name, data, owner, version)
    plan.events.append((session_id, ts, kind, name, duration_ms, success,
                        _event_json(data, plan)))
    totals = plan.totals.get(session_id)
    if totals is None:
        totals = plan.totals[session_id] = Totals(last_activity=ts)
    elif ts > totals.last_activity:  # type: ignore[operator]
        totals.last_activity = ts
    if kind == "message":
        texts = message_texts(data)
        if texts is None:
            _add_terms(plan, session_id, message_terms(data))
        else:
            said = plan.said.get(session_id)
            if said is None:
                plan.said[session_id] = list(texts)
            else:
                said += texts
        totals.messages += 1
        if success is False:
            totals.failed_turns += 1
        if ts >= totals.last_message_ts:
            totals.last_message_ts = ts
            totals.last_turn_failed = success is False
    elif kind == "llm_call":
        _plan_llm_call(plan, totals, session_id, ts, data)
    elif kind == "tool_call":
        totals.tool_calls += 1
    elif kind == "error":
        totals.errors += 1
    elif start is not None:
        plan.starts[session_id] = start
        _add_terms(plan, session_id, session_terms(session_id) | terms_of(start["user_id"])
                   | terms_of(start["user_name"]))


def _event_json(data: Mapping[str, Any], plan: BatchPlan) -> str:
    """A record's data as stored: large texts by reference (only a large record has any)."""
    encoded = to_json(data)
    if len(encoded) >= SHARED_MIN_CHARS:
        shared = share(data, plan.texts)
        if shared is not data:
            encoded = to_json(shared)
    return encoded


def usage_of(session_id: str, ts: float, data: Mapping[str, Any]) -> Usage:
    """The usage of one ``llm_call`` record, as the cost rollups count it."""
    # A call that failed before any usage came back has no cost_usd: it cost nothing and is
    # not unpriced (the rollups would otherwise list its model as needing a price).
    return Usage(session_id, utc_day(ts), int(ts // 3600), text(data.get("provider")) or "",
                 text(data.get("model")) or "", count(data.get("input_tokens")),
                 count(data.get("output_tokens")), count(data.get("cache_read_tokens")),
                 count(data.get("cache_write_tokens")),
                 money(data.get("cost_usd")) if "cost_usd" in data else 0.0,
                 data.get("usage_estimated") is True, *_first_token(data))


def _first_token(data: Mapping[str, Any]) -> tuple[float | None, str]:
    """A streamed call's time to first token and the model that answered; (None, "") for
    the others (most calls: one dictionary lookup)."""
    ttft = data.get("time_to_first_token_ms")
    if ttft is None or isinstance(ttft, bool) or not isinstance(ttft, int | float) \
            or not math.isfinite(ttft) or ttft < 0:
        return None, ""
    return float(ttft), text(data.get("response_model") or data.get("model")) or "?"


def _plan_llm_call(plan: BatchPlan, totals: Totals, session_id: str, ts: float,
                   data: Mapping[str, Any]) -> None:
    usage = usage_of(session_id, ts, data)
    totals.llm_calls += 1
    totals.input_tokens += usage.input_tokens
    totals.output_tokens += usage.output_tokens
    totals.cache_read_tokens += usage.cache_read_tokens
    totals.cache_write_tokens += usage.cache_write_tokens
    if usage.cost_usd is not None:
        totals.cost_usd += usage.cost_usd
    elif "cost_usd" in data:
        # Unpriced means "usage known, price unknown"; a call that failed before any
        # usage came back carries no cost_usd at all and is not unpriced.
        totals.unpriced_calls += 1
    plan.usage.append(usage)


def _session_row(session_id: str, ts: float, name: str, data: Mapping[str, Any],
                 owner: str, version: str | None = None) -> dict[str, Any]:
    tags = data.get("tags") or []
    if isinstance(tags, str) or not isinstance(tags, Sequence):
        tags = [tags]
    return {
        "id": session_id, "bot": text(data.get("bot") or name) or "",
        "bot_type": text(data.get("bot_type"), 40), "platform": text(data.get("platform"), 40),
        "workspace": text(data.get("workspace")), "channel": text(data.get("channel")),
        "thread": text(data.get("thread")), "user_id": text(data.get("user_id")),
        "user_name": text(data.get("user_name")),
        "conversation_key": text(data.get("key"), 2000), "owner": owner, "status": "open",
        "started_at": ts, "last_activity": ts, "tags": to_json([str(t) for t in tags]),
        "metadata": to_json(data.get("metadata") or {}),
        "bot_version": version, "replay_of": text(data.get("replay_of"), 64),
    }
