"""What a bot's model may call and how a call runs: default deny, per-user lists, timeouts.

``Toolbox`` is the only place a tool is executed. It never raises for a tool's problems: each
call ends as a ``ToolResult`` whose ``error`` is one of the ``ToolError`` subtree. Observability
wraps a ``ToolInvoker`` (``specs()`` + ``invoke()``) rather than patching the tools.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic_core import to_jsonable_python

from opencell.config.source import format_loc
from opencell.errors import (
    ConfigError,
    ConfigErrors,
    ToolError,
    ToolExecutionError,
    ToolNotAllowedError,
    ToolTimeoutError,
)
from opencell.llm.base import ToolCall, ToolSpec
from opencell.tools.entries import resolve_entry
from opencell.tools.registry import Tool, ToolContext

if TYPE_CHECKING:
    from opencell.config import ToolEntry


@dataclass(frozen=True, slots=True)
class ToolResult:
    """How one tool call ended; ``content`` is what the model reads back."""

    call_id: str
    name: str
    content: str
    is_error: bool
    error: ToolError | None
    """The error, when ``is_error``; a ``ToolExecutionError``'s ``__cause__`` is the original."""
    duration_ms: float


@runtime_checkable
class ToolInvoker(Protocol):
    """Offers tools to the model and runs its calls; ``Toolbox`` and its wrappers implement it."""

    def specs(self, *, user_id: str | None = None) -> list[ToolSpec]:
        """The tools the model may call (for ``user_id``, when given)."""
        ...

    async def invoke(self, call: ToolCall, *, user_id: str) -> ToolResult:
        """Run one call; problems come back as an error result, never as an exception."""
        ...


@dataclass(frozen=True, slots=True)
class EnabledTool:
    """One tool a bot may call, as its YAML entry configured it."""

    tool: Tool
    """The tool under the name the model sees."""
    options: Any
    timeout: float
    allowed_users: frozenset[str] | None = None
    """Only these users may call it; ``None`` means everyone."""

    def allows(self, user_id: str) -> bool:
        return self.allowed_users is None or user_id in self.allowed_users


class Toolbox:
    """The tools one bot may call. Anything not listed in its YAML is refused (default deny)."""

    def __init__(self, tools: Iterable[EnabledTool], *, bot: str) -> None:
        self.bot = bot
        self._tools = {enabled.tool.name: enabled for enabled in tools}

    @classmethod
    def from_entries(cls, entries: Sequence[ToolEntry], *, bot: str) -> Toolbox:
        """Build from a bot's ``tools:`` entries; ``ConfigErrors`` if one is not usable."""
        enabled: list[EnabledTool] = []
        errors: list[ConfigError] = []
        for index, entry in enumerate(entries):
            resolved, problems = resolve_entry(entry)
            for loc, message in problems:
                errors.append(ConfigError(f"bot '{bot}': {message}",
                                          field=format_loc(("tools", index, *loc))))
            if resolved is not None:
                users = None if entry.allowed_users is None else frozenset(entry.allowed_users)
                enabled.append(EnabledTool(tool=resolved.tool, options=resolved.options,
                                           timeout=resolved.timeout, allowed_users=users))
        if errors:
            raise ConfigErrors(errors)
        return cls(enabled, bot=bot)

    def specs(self, *, user_id: str | None = None) -> list[ToolSpec]:
        """The enabled tools as the model sees them, leaving out those ``user_id`` may not use."""
        return [ToolSpec(name=e.tool.name, description=e.tool.description,
                         parameters=e.tool.parameters)
                for e in self._tools.values() if user_id is None or e.allows(user_id)]

    async def invoke(self, call: ToolCall, *, user_id: str) -> ToolResult:
        """Run ``call`` for ``user_id`` under the bot's policy; never raises for tool problems.

        A sync tool runs in a worker thread; on timeout its result is abandoned (a thread
        cannot be cancelled), an async tool is cancelled.
        """
        started = time.perf_counter()
        try:
            content = await self._run(call, user_id)
        except ToolError as exc:
            elapsed = (time.perf_counter() - started) * 1000
            return ToolResult(call_id=call.id, name=call.name, content=str(exc), is_error=True,
                              error=exc, duration_ms=elapsed)
        elapsed = (time.perf_counter() - started) * 1000
        return ToolResult(call_id=call.id, name=call.name, content=content, is_error=False,
                          error=None, duration_ms=elapsed)

    async def _run(self, call: ToolCall, user_id: str) -> str:
        enabled = self._tools.get(call.name)
        if enabled is None:
            usable = sorted(n for n, e in self._tools.items() if e.allows(user_id))
            can = f"; it can call: {', '.join(usable)}" if usable else ""
            raise ToolNotAllowedError(f"tool '{call.name}' is not enabled for this bot{can}",
                                      tool=call.name)
        if not enabled.allows(user_id):
            raise ToolNotAllowedError(f"user '{user_id}' may not use tool '{call.name}' on this "
                                      "bot (see allowed_users in its YAML)", tool=call.name)
        context = ToolContext(bot=self.bot, user_id=user_id, options=enabled.options,
                              call_id=call.id, tool=call.name)
        scope = asyncio.timeout(enabled.timeout)
        try:
            async with scope:
                result = await enabled.tool.run(call.arguments, context)
        except ToolError:
            raise
        except TimeoutError as exc:
            if scope.expired():
                raise ToolTimeoutError(f"tool '{call.name}' did not finish within "
                                       f"{enabled.timeout:g}s", tool=call.name) from None
            raise ToolExecutionError(f"TimeoutError: {exc}", tool=call.name) from exc
        except Exception as exc:
            raise ToolExecutionError(f"{type(exc).__name__}: {exc}", tool=call.name) from exc
        return _as_text(result, call.name)


def _as_text(result: Any, name: str) -> str:
    if isinstance(result, str):
        return result
    try:
        return json.dumps(to_jsonable_python(result, fallback=str), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise ToolExecutionError(f"the result of tool '{name}' cannot be sent to the model: "
                                 f"{type(exc).__name__}: {exc}", tool=name) from exc
