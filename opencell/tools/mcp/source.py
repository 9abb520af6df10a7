"""One ``mcp:`` entry as a tool source: the server's tools its ``allow`` list lets through.

The server's names, descriptions and JSON schemas are offered to the model unchanged.
Arguments are checked by the server (against the schema it published); the toolbox applies
the entry's ``allowed_users`` and ``timeout`` like for any tool.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mcp import MCPError

from opencell.errors import ToolArgumentsError, ToolExecutionError, ToolResultError
from opencell.tools.mcp.connection import McpConnection
from opencell.tools.mcp.options import McpOptions
from opencell.tools.mcp.results import to_output
from opencell.tools.policy import EnabledTool, ToolOutput
from opencell.tools.registry import NAME_PATTERN, Tool, ToolContext

if TYPE_CHECKING:
    from opencell.config import ToolEntry

log = logging.getLogger("opencell.tools.mcp")


def _unused(**_: Any) -> None:
    """An MCP tool has no Python function; ``McpTool.run`` calls the server."""


@dataclass(frozen=True, eq=False)
class McpTool(Tool):
    """A tool the server listed, called over the entry's connection."""

    connection: McpConnection | None = field(default=None, repr=False)
    max_chars: int = 100_000
    call_timeout: float = 30.0

    def validate_arguments(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(arguments, Mapping):
            raise ToolArgumentsError(
                f"arguments for tool '{self.name}' must be a JSON object, "
                f"got {type(arguments).__name__}", tool=self.name)
        return dict(arguments)

    async def run(self, arguments: Mapping[str, Any], context: ToolContext) -> ToolOutput:
        assert self.connection is not None
        kwargs = self.validate_arguments(arguments)
        try:
            result = await self.connection.call(self.name, kwargs, self.call_timeout)
        except MCPError as exc:  # a protocol error: unknown tool, bad params, a server fault
            raise ToolExecutionError(f"MCP server '{self.connection.name}' answered the call "
                                     f"with an error: {exc.message} (code {exc.code})",
                                     tool=self.name) from exc
        output = to_output(result, max_chars=self.max_chars)
        if result.is_error:
            raise ToolResultError(output.text or f"tool '{self.name}' reported an error",
                                  tool=self.name)
        return output


class McpSource:
    """The tools of one MCP server that its entry allows (a ``ToolSource``)."""

    def __init__(self, entry: ToolEntry, options: McpOptions, *, bot: str) -> None:
        assert entry.mcp is not None
        self.name = entry.name
        self.bot = bot
        self.options = options
        self.timeout = entry.timeout
        self.allowed_users = (None if entry.allowed_users is None
                              else frozenset(entry.allowed_users))
        self.connection = McpConnection(entry.name, entry.mcp, on_tools=self._listed)
        self._offered: frozenset[str] = frozenset()
        # Until the server is first reached, the names allow lists are offered with an open
        # schema: the model can still try them, and reads why they are unavailable.
        self._enabled = {name: self._enabled_tool(
            name, f"(unavailable: MCP server '{self.name}' has not been reached yet; "
                  "calling it returns the reason)", {"type": "object", "properties": {}})
            for name in options.allow if name != "*" and NAME_PATTERN.match(name)}

    # ------------------------------------------------------------ ToolSource

    def enabled(self) -> Mapping[str, EnabledTool]:
        return self._enabled

    def refusal(self, name: str) -> str | None:
        if name in self._enabled or name not in self._offered:
            return None
        return (f"tool '{name}' of MCP server '{self.name}' is not allowed for this bot "
                f"(not in the allow list of its entry)")

    async def start(self) -> None:
        self.connection.start()
        if not await self.connection.wait_settled(self.connection.config.connect_timeout):
            log.warning("bot %s: MCP server '%s' is not available at start-up (%s); its tools "
                        "answer with an error until it is", self.bot, self.name,
                        self.connection.error or "no answer within connect_timeout")

    async def aclose(self) -> None:
        await self.connection.aclose()

    # ------------------------------------------------------------ doctor's view

    @property
    def offered(self) -> list[str]:
        """Every tool the server listed last."""
        return [t.name for t in self.connection.tools]

    # ------------------------------------------------------------ listing

    def _enabled_tool(self, name: str, description: str, schema: dict[str, Any]
                      ) -> EnabledTool:
        tool = McpTool(name=name, description=description, parameters=schema,
                       function=_unused, is_async=True, timeout=self.timeout,
                       connection=self.connection, max_chars=self.options.max_result_chars,
                       call_timeout=self.timeout)
        return EnabledTool(tool=tool, options=None, timeout=self.timeout,
                           allowed_users=self.allowed_users, server=self.name)

    def _listed(self, connection: McpConnection) -> None:
        enabled: dict[str, EnabledTool] = {}
        for listed in connection.tools:
            if not self.options.allows(listed.name):
                continue
            if not NAME_PATTERN.match(listed.name):
                log.warning("bot %s: MCP server '%s' offers a tool named %r, which models do "
                            "not accept (1-64 letters, digits, _ or -); it is left out",
                            self.bot, self.name, listed.name)
                continue
            schema = dict(listed.input_schema or {})
            schema.setdefault("type", "object")
            schema.setdefault("properties", {})
            enabled[listed.name] = self._enabled_tool(listed.name, listed.description or "",
                                                      schema)
        missing = [n for n in self.options.allow if n != "*" and n not in enabled]
        if missing:
            log.warning("bot %s: MCP server '%s' does not offer %s (named in allow)",
                        self.bot, self.name, ", ".join(missing))
        self._enabled = enabled
        self._offered = frozenset(t.name for t in connection.tools)
