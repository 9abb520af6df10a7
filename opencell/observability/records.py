"""The records OpenCell keeps about a session: one small immutable shape for every kind.

A record is what ``Recorder.record()`` queues and the writer thread stores. Its ``data`` holds
the kind's own fields (JSON-serialisable, already redacted):

- ``session_start``: bot, bot_type, platform, workspace, channel, thread, user_id, user_name,
  tags (list), key (the conversation key as text)
- ``message``: input (text or None), output (text or None), input_chars, output_chars,
  user_id; ``duration_ms`` = processing time; ``success``
- ``llm_call``: provider, model (requested), response_model, input_tokens, output_tokens,
  cache_read_tokens, cache_write_tokens, cost_usd (None = unpriced), price_source,
  stop_reason, request_id, error (on failure); ``duration_ms``; ``success``
- ``tool_call``: tool, call_id, args, result (truncated), result_chars, error; ``duration_ms``;
  ``success``
- ``error``: type, message, stack, context (dict)
- ``custom``: the event's data (``name`` is the event's name)
- ``alert``: scope, level, message, … (budgets)
- ``session_end``: reason (idle_timeout | explicit | end_command | shutdown | interrupted),
  status (success | failed), metadata (dict)
"""

from __future__ import annotations

import os
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


def new_session_id(now: float | None = None) -> str:
    """A time-ordered UUIDv7 (RFC 9562) as text: sorts by creation time."""
    ms = int((time.time() if now is None else now) * 1000) & 0xFFFF_FFFF_FFFF
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms << 80) | (0x7 << 76) | ((rand >> 64) & 0x0FFF) << 64
    value |= (0b10 << 62) | (rand & 0x3FFF_FFFF_FFFF_FFFF)
    return str(uuid.UUID(int=value))
