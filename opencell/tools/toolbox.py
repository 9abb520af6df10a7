"""What a bot's model may call and how a call runs: default deny, per-user lists, timeouts.

``Toolbox`` is the only place a tool is executed. It never raises for a tool's problems: each
call ends as a ``ToolResult`` whose ``error`` is one of the ``ToolError`` subtree. Observability
wraps a ``ToolInvoker`` (``specs()`` + ``invoke()``) rather than patching the tools.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterable, Mapping, Sequence
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
from opencell.llm.base import Attachment, ToolCall, ToolSpec
from opencell.tools.entries import resolve_entry, resolve_source
from opencell.tools.policy import EnabledTool, ToolOutput, ToolSource, clashes
from opencell.tools.registry import ToolContext

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
    server: str | None = None
    """The MCP server the tool belongs to, if any."""
    attachments: tuple[Attachment, ...] = ()
    """Images for the model (providers that can show them get them with ``content``)."""
    parts: tuple[Mapping[str, Any], ...] = ()
    """The result's content blocks by type and size (recorded; empty for plain text)."""


@runtime_checkable
class ToolInvoker(Protocol):
    """Offers tools to the model and runs its calls; ``Toolbox`` and its wrappers implement it."""

    def specs(self, *, user_id: str | None = None) -> list[ToolSpec]:
        """The tools the model may call (for ``user_id``, when given)."""
        ...

    async def invoke(self, call: ToolCall, *, user_id: str) -> ToolResult:
        """Run one call; problems come back as an error result, never as an exception."""
        ...


class Toolbox:
    """The tools one bot may call. Anything not listed in its YAML is refused (default deny).

    ``sources`` (MCP servers) add the tools their entries allow, as their servers list them;
    ``start()`` connects them (the App and ``BotRuntime.start`` call it) and ``aclose()``
    disconnects them.
    """

    def __init__(self, tools: Iterable[EnabledTool], *, bot: str,
                 sources: Sequence[ToolSource] = ()) -> None:
        self.bot = bot
        self._tools = {enabled.tool.name: enabled for enabled in tools}
        self.sources = list(sources)
        self._started = False

    async def start(self) -> None:
        """Connect every source; ``ConfigErrors`` when two entries would offer one name."""
        if self._started:
            return
        self._started = True
        await asyncio.gather(*(source.start() for source in self.sources))
        static = {name: _what(e) for name, e in self._tools.items()}
        errors = clashes(static, self.sources, bot=self.bot)
        if errors:
            await self.aclose()
            raise ConfigErrors(errors)

    async def aclose(self) -> None:
        """Disconnect every source (stdio servers are stopped)."""
        self._started = False
        await asyncio.gather(*(source.aclose() for source in self.sources),
                             return_exceptions=True)

    def _all(self) -> dict[str, EnabledTool]:
        if not self.sources:
            return self._tools
        tools = dict(self._tools)
        for source in self.sources:
            for name, enabled in source.enabled().items():
                tools.setdefault(name, enabled)  # a clash after a refresh: the first wins
        return tools

    @classmethod
    def from_entries(cls, entries: Sequence[ToolEntry], *, bot: str) -> Toolbox:
        """Build from a bot's ``tools:`` entries; ``ConfigErrors`` if one is not usable."""
        enabled: list[EnabledTool] = []
        sources: list[ToolSource] = []
        errors: list[ConfigError] = []
        for index, entry in enumerate(entries):
            if entry.mcp is not None:
                source, problems = resolve_source(entry, bot=bot)
                for loc, message in problems:
                    errors.append(ConfigError(f"bot '{bot}': {message}",
                                              field=format_loc(("tools", index, *loc))))
                if source is not None:
                    sources.append(source)
                continue
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
        return cls(enabled, bot=bot, sources=sources)

    def specs(self, *, user_id: str | None = None) -> list[ToolSpec]:
        """The enabled tools as the model sees them, leaving out those ``user_id`` may not use."""
        return [ToolSpec(name=e.tool.name, description=e.tool.description,
                         parameters=e.tool.parameters)
                for e in self._all().values() if user_id is None or e.allows(user_id)]

    async def invoke(self, call: ToolCall, *, user_id: str) -> ToolResult:
        """Run ``call`` for ``user_id`` under the bot's policy; never raises for tool problems.

        A sync tool runs in a worker thread; on timeout its result is abandoned (a thread
        cannot be cancelled), an async tool is cancelled.
        """
        started = time.perf_counter()
        enabled = self._tools.get(call.name) if not self.sources else self._all().get(call.name)
        server = enabled.server if enabled is not None else None
        try:
            output = await self._run(call, user_id, enabled)
        except ToolError as exc:
            elapsed = (time.perf_counter() - started) * 1000
            if server is None and isinstance(exc, ToolNotAllowedError):
                server = self._refused_by(call.name)
            return ToolResult(call_id=call.id, name=call.name, content=str(exc), is_error=True,
                              error=exc, duration_ms=elapsed, server=server)
        elapsed = (time.perf_counter() - started) * 1000
        if isinstance(output, ToolOutput):
            return ToolResult(call_id=call.id, name=call.name, content=output.text,
                              is_error=False, error=None, duration_ms=elapsed, server=server,
                              attachments=output.attachments, parts=output.parts)
        return ToolResult(call_id=call.id, name=call.name, content=output, is_error=False,
                          error=None, duration_ms=elapsed, server=server)

    def _refused_by(self, name: str) -> str | None:
        return next((s.name for s in self.sources if s.refusal(name) is not None), None)

    async def _run(self, call: ToolCall, user_id: str, enabled: EnabledTool | None
                   ) -> str | ToolOutput:
        if enabled is None:
            for source in self.sources:
                refusal = source.refusal(call.name)
                if refusal is not None:
                    raise ToolNotAllowedError(refusal, tool=call.name)
            usable = sorted(n for n, e in self._all().items() if e.allows(user_id))
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
        if isinstance(result, ToolOutput):
            return result
        return _as_text(result, call.name)


def _what(enabled: EnabledTool) -> str:
    kind = "built-in tool" if enabled.tool.function.__module__ == "opencell.tools.builtin" \
        else "tool"
    return f"{kind} '{enabled.tool.name}'"


def _as_text(result: Any, name: str) -> str:
    if isinstance(result, str):
        return result
    try:
        return json.dumps(to_jsonable_python(result, fallback=str), ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise ToolExecutionError(f"the result of tool '{name}' cannot be sent to the model: "
                                 f"{type(exc).__name__}: {exc}", tool=name) from exc
