"""What the toolbox and the tool sources share: an enabled tool, a rich result, a source.

A *source* (an MCP server) offers tools that change at run time; the toolbox asks it for its
current ones on every turn and starts and stops it with the bot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from opencell.errors import ConfigError
from opencell.llm.base import Attachment
from opencell.tools.registry import Tool


@dataclass(frozen=True, slots=True)
class EnabledTool:
    """One tool a bot may call, as its YAML entry configured it."""

    tool: Tool
    """The tool under the name the model sees."""
    options: Any
    timeout: float
    allowed_users: frozenset[str] | None = None
    """Only these users may call it; ``None`` means everyone."""
    server: str | None = None
    """The MCP server it comes from, if any (recorded with each call)."""

    def allows(self, user_id: str) -> bool:
        return self.allowed_users is None or user_id in self.allowed_users


@dataclass(frozen=True, slots=True)
class ToolOutput:
    """A tool's answer with more than text: what the model reads, images, and a summary of
    every part by type and size (what is recorded about non-text content)."""

    text: str
    attachments: tuple[Attachment, ...] = ()
    parts: tuple[Mapping[str, Any], ...] = ()
    """One ``{"type": …, "bytes"/"chars": …, "mime_type"?: …}`` per content block."""


class ToolSource(Protocol):
    """Tools that come and go at run time (an MCP server's), under one YAML entry."""

    name: str
    """The entry's name (the server's)."""

    def enabled(self) -> Mapping[str, EnabledTool]:
        """The tools the model may call now, by name (those the entry allows)."""
        ...

    def refusal(self, name: str) -> str | None:
        """Why ``name`` is refused, when this source offers it but its entry does not allow
        it; None when the source does not offer ``name``."""
        ...

    async def start(self) -> None:
        """Connect (bounded by the entry's connect timeout); never raises for a down server."""
        ...

    async def aclose(self) -> None:
        ...


def clashes(static: Mapping[str, str], sources: Sequence[ToolSource], *, bot: str
            ) -> list[ConfigError]:
    """A config error for every tool name two entries would both offer, naming both.

    ``static`` maps each built-in or ``python:`` tool's name to what it is.
    """
    owner = dict(static)
    errors = []
    for source in sources:
        for name in source.enabled():
            if name in owner:
                errors.append(ConfigError(
                    f"bot '{bot}': tool '{name}' of MCP server '{source.name}' clashes with "
                    f"{owner[name]}; leave it out of one entry's allow list (tool names must "
                    "be unique within a bot)", field=f"tools.{source.name}"))
            else:
                owner[name] = f"tool '{name}' of MCP server '{source.name}'"
    return errors
