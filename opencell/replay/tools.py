"""Tool calls in a replay: answered from the recording, run for real, or refused.

``recorded`` (the default) serves the recorded result of the same tool called with the same
arguments (each recorded result once, in order) without running anything; a call the
recording cannot answer gets an error result the model sees and is reported as
``unanswered``. Neither a served error nor an unanswered call fails the turn (they are
reported; a real tool crash in ``live`` mode does, as in production). ``live`` runs the
bot's tools under its tool policy; ``deny`` refuses all.
"""

from __future__ import annotations

from collections import deque
from typing import Literal

from opencell.errors import ToolError, ToolNotAllowedError
from opencell.llm.base import ToolCall, ToolSpec
from opencell.replay.recording import ToolUse, arguments_key
from opencell.tools import ToolInvoker, ToolResult

ToolMode = Literal["recorded", "live", "deny"]
TOOL_MODES: tuple[ToolMode, ...] = ("recorded", "live", "deny")


class ReplayTools:
    """A :class:`ToolInvoker` for replays; ``uses`` lists the calls of the current turn."""

    def __init__(self, live: ToolInvoker, mode: ToolMode,
                 answers: dict[tuple[str, str], deque[tuple[str, bool]]]) -> None:
        if mode not in TOOL_MODES:
            raise ValueError(f"tools mode '{mode}' is not one of {', '.join(TOOL_MODES)}")
        self._live = live
        self.mode = mode
        self._answers = {key: deque(queue) for key, queue in answers.items()}
        self.uses: list[ToolUse] = []

    def specs(self, *, user_id: str | None = None) -> list[ToolSpec]:
        return self._live.specs(user_id=user_id)

    def take(self) -> list[ToolUse]:
        """The calls since the last ``take`` (one turn's)."""
        uses, self.uses = self.uses, []
        return uses

    async def invoke(self, call: ToolCall, *, user_id: str) -> ToolResult:
        args = dict(call.arguments)
        if self.mode == "live":
            result = await self._live.invoke(call, user_id=user_id)
            served = "live"
        elif self.mode == "deny":
            message = "tool calls are refused in this replay (--tools deny)"
            result = ToolResult(call.id, call.name, message, True,
                                ToolNotAllowedError(message, tool=call.name), 0.0)
            served = "denied"
        else:
            queue = self._answers.get(arguments_key(call.name, args))
            if queue:
                content, is_error = queue.popleft()
                error = ToolError(content, tool=call.name) if is_error else None
                result = ToolResult(call.id, call.name, content, is_error, error, 0.0)
                served = "replayed"
            else:
                message = (f"the recording has no result for {call.name} with these "
                           "arguments (replay with --tools recorded)")
                result = ToolResult(call.id, call.name, message, True,
                                    ToolError(message, tool=call.name), 0.0)
                served = "unanswered"
        self.uses.append(ToolUse(call.name, args, result.content, result.is_error, served))
        return result
