"""``get_agentops()``: manual session tracking in the seed's names, into the same store.

Every method is cheap and never raises: a bad argument is logged and ignored, so tracking
code can never take a bot down. Values are checked where the records are built (see
``core.py``): a NaN duration or an impossible token count is left out of the record and named
in its ``invalid`` field; an unusable timestamp is replaced by the current time (logged).
"""

from __future__ import annotations

import atexit
import logging
import math
import threading
import time
import traceback
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from opencell.guard import guard
from opencell.llm.base import ToolCall, Usage
from opencell.observability.observer import Observability
from opencell.observability.recorder import NullRecorder

log = logging.getLogger("opencell.facade")

_lock = threading.Lock()
_default: Observability | None = None

Timestamp = datetime | float | str | None


def default_observability() -> Observability:
    """The process's observability: what ``opencell run`` installed, else the configured store.

    Opened on first use from ``config/opencell.yaml`` / ``OPENCELL_DATABASE_URL``; if that
    fails, a warning is logged and nothing is recorded (the bot still runs).
    """
    global _default
    with _lock:
        if _default is None:
            from opencell.config import load_config

            try:
                _default = Observability.from_config(load_config())
            except Exception as exc:  # noqa: BLE001 - tracking must never stop the bot
                log.warning("observability disabled: %s: %s", type(exc).__name__, exc)
                _default = Observability.disabled()
            atexit.register(_default.close)
        return _default


def install(observability: Observability | None) -> None:
    """Make ``observability`` the process default (the App does this at start)."""
    global _default
    with _lock:
        _default = observability


def _epoch(ts: Timestamp) -> float:
    """Epoch seconds of ``ts``; now when it is missing, or unusable (logged, rate-limited)."""
    if ts is None:
        return time.time()
    try:
        if isinstance(ts, datetime):
            value = ts.timestamp()
        elif isinstance(ts, str):
            value = datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
        else:
            value = float(ts)
    except (TypeError, ValueError, OverflowError, OSError):
        value = math.nan
    if math.isfinite(value) and 0.0 <= value < 1e11:  # 1e11 s is the year 5138
        return value
    with guard("facade timestamp", logger=log):
        raise ValueError(f"unusable timestamp {str(ts)[:60]!r}; the current time is used")
    return time.time()


class AgentOpsFacade:
    """Manual tracking; the same records the automatic path writes."""

    def __init__(self, observability: Observability | None = None) -> None:
        self._obs = observability

    @property
    def observability(self) -> Observability:
        return self._obs or default_observability()

    def is_enabled(self) -> bool:
        """True when events are being recorded somewhere."""
        return not isinstance(self.observability.recorder, NullRecorder)

    def start_session(self, *, bot_name: str, bot_type: str = "conversational",
                      user_id: str = "", platform: str = "api", tags: Iterable[str] = (),
                      timestamp: Timestamp = None) -> str:
        """Open a session; returns its id (an empty string if it could not be recorded)."""
        with guard("facade start_session"):
            return self.observability.start_session(
                bot=bot_name, bot_type=bot_type, user_id=user_id, platform=platform,
                tags=[*self.observability.default_tags, *tags], ts=_epoch(timestamp))
        return ""

    def track_tool_execution(self, session_id: str, *, tool: str, args: Mapping[str, Any]
                             | None = None, result: Any = None, duration: float = 0.0,
                             success: bool = True, error: str | None = None,
                             timestamp: Timestamp = None) -> None:
        """A tool call; ``duration`` in seconds."""
        from opencell.errors import ToolExecutionError
        from opencell.tools import ToolResult

        with guard("facade track_tool_execution"):
            content = result if isinstance(result, str) else repr(result)
            failure = (ToolExecutionError(error or "failed", tool=tool)
                       if error or not success else None)
            self.observability.tool_call(
                session_id, call=ToolCall(id="", name=tool, arguments=dict(args or {})),
                result=ToolResult(call_id="", name=tool, content=content,
                                  is_error=failure is not None, error=failure,
                                  duration_ms=duration * 1000),
                started=_epoch(timestamp), duration_ms=duration * 1000)

    def track_cost(self, session_id: str, *, provider: str, model: str, input_tokens: int = 0,
                   output_tokens: int = 0, cost: float | None = None,
                   cache_read_tokens: int = 0, cache_write_tokens: int = 0,
                   duration: float = 0.0, timestamp: Timestamp = None) -> None:
        """An LLM call's usage; ``cost`` in USD, else priced from the price book."""
        with guard("facade track_cost"):
            self.observability.usage(
                session_id, provider=provider, model=model,
                usage=Usage(input_tokens, output_tokens, cache_read_tokens, cache_write_tokens),
                cost_usd=cost, started=_epoch(timestamp), duration_ms=duration * 1000)

    def track_error(self, session_id: str, *, error: BaseException | str,
                    stack: str | None = None, context: Mapping[str, Any] | None = None,
                    timestamp: Timestamp = None) -> None:
        """An error with its stack (taken from the exception when not given)."""
        with guard("facade track_error"):
            if isinstance(error, BaseException):
                kind, message = type(error).__name__, str(error)
                stack = stack or "".join(traceback.format_exception(error))
            else:
                kind, message = "Error", error
            self.observability.error_text(session_id, kind, message, stack or "",
                                          context=context, ts=_epoch(timestamp))

    def track_event(self, session_id: str, name: str, data: Mapping[str, Any] | None = None,
                    *, timestamp: Timestamp = None) -> None:
        """A custom event (e.g. ``roundtable_vote``) with its data."""
        with guard("facade track_event"):
            self.observability.custom(session_id, name, data or {}, ts=_epoch(timestamp))

    def track_feedback(self, session_id: str, value: str | None, *, turn: str | None = None,
                       user_id: str = "", bot: str = "", comment: str | None = None,
                       source: str = "api") -> None:
        """A rating of a turn: ``value`` ``good`` or ``bad`` (None retracts an earlier one
        from the same ``user_id`` and ``source``). ``turn`` is the id of the user's message
        the rated reply answered; default: the session's latest answered turn. Recorded as
        a ``feedback`` event and counted in the session's feedback (lists, analytics)."""
        if value is not None and value not in ("good", "bad"):
            raise ValueError(f"feedback is 'good' or 'bad' (or None), not {value!r}")
        with guard("facade track_feedback"):
            self.observability.feedback.rate(session_id, bot=bot, turn=turn,
                                             user_id=user_id, value=value, source=source,
                                             comment=comment)

    def end_session(self, session_id: str, *, success: bool = True,
                    metadata: Mapping[str, Any] | None = None,
                    timestamp: Timestamp = None) -> None:
        with guard("facade end_session"):
            self.observability.end_session(session_id, reason="explicit", success=success,
                                           metadata=metadata, ts=_epoch(timestamp))

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything tracked so far is stored (True) or ``timeout`` passes."""
        with guard("facade flush"):
            return self.observability.recorder.flush(timeout)
        return False


def get_agentops() -> AgentOpsFacade:
    """The manual-tracking API, recording into the process's store and exporters."""
    return AgentOpsFacade()
