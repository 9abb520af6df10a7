"""The export's encoding, made cheap per event: most of an export's time is spent here.

An event is spliced from its stored JSON without decoding it (its fields, then the stored
data's keys; a custom event's data under ``data``): exactly what ``reads.event_dict`` gives,
encoded. An event that needs more — a shared text to put back, a data key that clashes
with an event field, or anything the redactor would change in the text — goes through
``event_dicts`` and value-level redaction instead. Timestamps are written from tables
(a day's date, the minute, the second, the millisecond), not through ``datetime``.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy import Connection

from opencell.store.reads import EVENT_COLUMNS, SESSION_COLUMNS, event_dicts
from opencell.store.scrub import TEXT_REF


class Redactor(Protocol):
    """What the export needs of ``observability.redact.Redactor``."""

    json_safe: bool

    def redact(self, text: str) -> str: ...

    def redact_value(self, value: Any) -> Any: ...


_string = json.encoder.encode_basestring
"""A JSON string as ``json.dumps(..., ensure_ascii=False)`` writes it."""
_encode: Any = json.encoder.c_make_encoder(  # type: ignore[attr-defined]
    None, str, _string, None, ":", ",", False, False, True) \
    if json.encoder.c_make_encoder is not None else None  # type: ignore[attr-defined]
"""``json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)``'s C encoder,
built once (``dumps`` builds one per call)."""


def dumps(value: Any) -> str:
    if _encode is not None:
        return "".join(_encode(value, 0))
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


# ---------------------------------------------------------------- times

_SECONDS = tuple(f"{s:02d}" for s in range(60))
_MILLIS = tuple(f".{n:03d}Z" for n in range(1000))
_minutes: dict[int, str] = {}
"""Minute (epoch // 60) → ``YYYY-MM-DDTHH:MM:``; emptied when it reaches ``MINUTES``."""
MINUTES = 20_000


def iso(ts: float) -> str:
    """``reads.iso`` without a datetime per call: the same rounding (to the microsecond,
    half to even, as ``datetime.fromtimestamp``), then milliseconds cut, as ``isoformat``."""
    frac, whole = math.modf(ts)
    micros = round(frac * 1e6)
    if micros >= 1_000_000:
        whole, micros = whole + 1, micros - 1_000_000
    elif micros < 0:
        whole, micros = whole - 1, micros + 1_000_000
    minute, second = divmod(int(whole), 60)
    prefix = _minutes.get(minute)
    if prefix is None:
        if len(_minutes) >= MINUTES:
            _minutes.clear()
        prefix = _minutes[minute] = time.strftime("%Y-%m-%dT%H:%M:", time.gmtime(minute * 60))
    return prefix + _SECONDS[second] + _MILLIS[micros // 1000]


# ---------------------------------------------------------------- sessions

_SESSION_FIELDS = tuple(column.name for column in SESSION_COLUMNS)


def session(row: Sequence[Any]) -> dict[str, Any]:
    """``reads.session_dict`` of a ``(seq, *SESSION_COLUMNS)`` row."""
    out = dict(zip(_SESSION_FIELDS, row[1:], strict=True))
    for key in ("started_at", "ended_at", "last_activity"):
        if out[key] is not None:
            out[key] = iso(out[key])
    tags = out["tags"]
    tags = [] if not tags or tags == "[]" else _loads(tags, [])
    out["tags"] = tags if isinstance(tags, list) else []
    metadata = out["metadata"]
    out["metadata"] = {} if not metadata or metadata == "{}" else _loads(metadata, {})
    out["last_turn_failed"] = bool(out["last_turn_failed"])
    return out


def _loads(text: str, default: Any) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return default


# ---------------------------------------------------------------- events

_FIELDS = tuple(column.name for column in EVENT_COLUMNS)
_EVENT_FIELDS = frozenset(_FIELDS) - {"data"}
_DECODE = re.compile(r'"(?:(?:id|ts|kind|name|duration_ms|success)":|\$text")')
"""What makes stored JSON need decoding: a data key that would collide with an event field
(``event_dict`` moves it), or a reference to a shared text (``{"$text": digest}``). One scan
finds either; a nested key matching too only costs the decoding."""
_CREDENTIAL_HINT = re.compile(r'(?i)(?:key|token|secret|passw|passphrase|authorization|cookie)'
                              r'":"')
"""A key the redactor treats as a credential wherever its value is (value-level rule)."""
def event_texts(conn: Connection, rows: Sequence[Sequence[Any]],
                redactor: Redactor | None) -> list[str]:
    """Each ``(session_seq, *EVENT_COLUMNS)`` row as its timeline event's JSON."""
    out: list[str] = []
    append, needs_decoding, heads, to_text = out.append, _DECODE.search, _HEADS, float.__repr__
    for row in rows:
        _seq, event_id, ts, kind, name, duration, success, data = row
        if data and data[0] == "{" and data[-1] == "}" and (
                needs_decoding(data) is None or _spliceable(kind, data)):
            head = heads.get((kind, name))
            if head is None:
                head = _head(kind, name)
            if duration is None:
                ms = "null"
            else:
                ms = to_text(duration if duration.__class__ is float else float(duration))
            text = (f'{{"id":{event_id},"ts":"{iso(ts)}",{head}"duration_ms":{ms},'
                    f'"success":{"null" if success is None else "true" if success else "false"}'
                    + (',"data":' + data + "}" if kind == "custom"
                       else "," + data[1:] if len(data) > 2 else "}"))
            if redactor is None or _unchanged(text, redactor):
                append(text)
                continue
        append(_decoded(conn, row, redactor))
    return out


_HEADS: dict[tuple[str, str], str] = {}
"""(kind, name) → ``"kind":…,"name":…,`` as JSON: a store has few distinct ones (kinds,
models, tools); bounded."""


def _head(kind: str, name: str) -> str:
    head = f'"kind":{_string(kind)},"name":{_string(name)},'
    if len(_HEADS) < 10_000:
        _HEADS[(kind, name)] = head
    return head


def _spliceable(kind: str, data: str) -> bool:
    """Whether an event that :data:`_DECODE` matched can be spliced after all: it refers to
    no shared text, and the key it matched is nested (a tool's ``name`` in a model call's
    ``tools_offered``), not a top-level key of the data — or the event is a custom one,
    whose data stays whole. Decoding to look costs less than re-encoding the event."""
    if TEXT_REF in data:
        return False
    if kind == "custom":
        return True
    try:
        parsed = json.loads(data)
    except ValueError:
        return False
    return isinstance(parsed, dict) and _EVENT_FIELDS.isdisjoint(parsed)


def _unchanged(text: str, redactor: Redactor) -> bool:
    """Whether redacting ``text`` as text changes nothing, and text-level redaction is exact
    for it (no key the redactor judges by its name)."""
    if not redactor.json_safe or _CREDENTIAL_HINT.search(text) is not None:
        return False
    redacted = redactor.redact(text)
    return redacted is text or redacted == text


def _decoded(conn: Connection, row: Sequence[Any], redactor: Redactor | None) -> str:
    """One event through ``event_dicts`` (shared texts put back, clashing keys moved) and
    value-level redaction, encoded."""
    [event] = event_dicts(conn, [dict(zip(_FIELDS, row[1:], strict=True))])
    return dumps(redactor.redact_value(event) if redactor is not None else event)
