"""The records OpenCell keeps about a session: one small immutable shape for every kind.

A record is what ``Recorder.record()`` queues and the writer thread stores. Its ``data`` holds
the kind's own fields (JSON-serialisable, already redacted):

- ``session_start``: bot, bot_type, platform, workspace, channel, thread, user_id, user_name,
  tags (list), key (the conversation key as text); ``bot_definition`` (the bot's version
  text, the first session of a version) or ``bot_version`` (its digest, later sessions);
  ``replay_of`` (a replay's source session)
- ``message``: input (text or None), output (text or None), input_chars, output_chars,
  user_id, turn (its number in the session), message_id (the platform's id of the user's
  message, when it has one: the turn that feedback names); ``duration_ms`` = processing time;
  ``success``
- ``llm_call``: provider, model (requested), response_model, input_tokens, output_tokens,
  cache_read_tokens, cache_write_tokens, cost_usd (None = unpriced), price_source,
  stop_reason, request_id, response_id (the completion's id), max_tokens, temperature,
  server (``host:port``), tool_calls (names), turn, error (on failure); streamed calls also
  streamed (true), time_to_first_token_ms and streaming_ms (first piece to last; None when
  nothing arrived); with content capture also completion, completion_calls (id, name,
  arguments) and what the model was sent, as the change since the session's previous call:
  input (``from``, ``keep``, ``add``, ``n``, ``call``), system and tools_offered when they
  changed (``opencell/transcript.py`` rebuilds it); ``duration_ms``; ``success``
- ``tool_call``: tool, call_id, args, result (truncated), result_chars, error, turn;
  ``duration_ms``; ``success``
- ``error``: type, message, stack, context (dict), turn (when the error belongs to one)
- ``custom``: the event's data (``name`` is the event's name). ``feedback`` (see
  ``observability/feedback.py``): turn, value (good | bad | None when retracted), score
  (+1 | -1 | 0), source (the reaction, ``command`` or ``api``), user_id, retracted, bot,
  comment, message_id (the rated reply)
- ``alert``: scope, level, message, … (budgets)
- ``session_end``: reason (idle_timeout | explicit | end_command | shutdown | interrupted),
  status (success | failed), metadata (dict)
"""

from __future__ import annotations

import math
import os
import threading
import time
import uuid
from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

Kind = Literal[
    "session_start", "message", "llm_call", "tool_call", "error", "custom", "alert",
    "session_end",
]
KINDS: tuple[Kind, ...] = (
    "session_start", "message", "llm_call", "tool_call", "error", "custom", "alert",
    "session_end",
)


class Record(NamedTuple):
    """One event of one session. A NamedTuple: cheap to build on the hot path."""

    kind: Kind
    session_id: str
    ts: float
    """Wall-clock seconds since the epoch when it happened (start of the call for timed ones)."""
    name: str
    data: Mapping[str, Any]
    duration_ms: float | None = None
    success: bool | None = None


MAX_COUNT = 2**40
"""The largest token count a record accepts (about 10¹²): sums of many stay far from 2⁶³."""
MAX_NUMBER = 1e12
"""The largest cost (USD) or duration (ms) a record accepts."""
TRUNCATION_MARKER = "… [truncated by OpenCell: {kept:,} of {total:,} characters kept]"


def valid_text(value: str) -> str:
    """``value`` as text UTF-8 can hold: lone surrogates become U+FFFD (valid pairs are joined).

    A pure-ASCII string (the common case) is returned as is after one ``isascii`` check;
    only other strings are encoded to find out.
    """
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value


def valid_value(value: Any, depth: int = 0) -> Any:
    """``value`` with every string in it (keys too) made valid by :func:`valid_text`, and
    every float finite (NaN and infinities become None). Containers are copied only when
    something in them changed; anything else is left for the store's JSON fallback, and
    nesting deeper than 64 levels (a cycle, say) is cut off."""
    kind = type(value)
    if kind is str:
        return valid_text(value)
    if kind is float:
        return value if math.isfinite(value) else None
    if depth > 64 and (kind is dict or kind is list or kind is tuple):
        return "…"
    if kind is dict:
        out = {valid_text(k) if type(k) is str else k: valid_value(v, depth + 1)
               for k, v in value.items()}
        return value if _same_items(out, value) else out
    if kind is list or kind is tuple:
        items = [valid_value(v, depth + 1) for v in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


def _same_items(new: dict[Any, Any], old: dict[Any, Any]) -> bool:
    return all(k in old and old[k] is v for k, v in new.items())


def valid_count(value: object) -> int | None:
    """A token count: an int (or integral float) in 0 … ``MAX_COUNT``, else None."""
    if type(value) is int:
        return value if 0 <= value <= MAX_COUNT else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value) or value != int(value):
        return None
    number = int(value)
    return number if 0 <= number <= MAX_COUNT else None


def valid_number(value: object) -> float | None:
    """A cost or duration: finite, in 0 … ``MAX_NUMBER``, else None (a bool is no number)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if 0.0 <= number <= MAX_NUMBER else None  # NaN fails both comparisons


def capped(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters plus a visible truncation marker."""
    if len(text) <= limit:
        return text
    return text[:limit] + TRUNCATION_MARKER.format(kept=limit, total=len(text))


_id_lock = threading.Lock()
_last = [0, 0]  # [unix ms, 12-bit counter] of the previous id


def new_session_id(now: float | None = None) -> str:
    """A time-ordered UUIDv7 (RFC 9562) as text, monotonic within this process.

    Ids made in the same millisecond keep their order through the 12-bit ``rand_a`` field
    used as a counter (RFC 9562 §6.2, method 1); the rest is random.
    """
    ms = int((time.time() if now is None else now) * 1000) & 0xFFFF_FFFF_FFFF
    with _id_lock:
        if ms <= _last[0]:
            ms, counter = _last[0], _last[1] + 1
            if counter > 0xFFF:
                ms, counter = ms + 1, 0
        else:
            counter = int.from_bytes(os.urandom(2), "big") & 0x7FF  # leave room to count up
        _last[0], _last[1] = ms, counter
    rand_b = int.from_bytes(os.urandom(8), "big") & 0x3FFF_FFFF_FFFF_FFFF
    value = (ms << 80) | (0x7 << 76) | (counter << 64) | (0b10 << 62) | rand_b
    return str(uuid.UUID(int=value))


def short_session_id(session_id: object) -> str:
    """The id's random tail (12 hex digits): what lists show, and what look-ups accept.

    A UUIDv7's head is its timestamp, so sessions started close together share it.
    """
    return str(session_id)[-12:]
