"""The keys of a bot YAML's ``mcp:`` entry besides ``mcp``, ``name``, ``allowed_users`` and
``timeout``: which of the server's tools the bot may call, and how much of a result it reads."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from opencell.tools.registry import NAME_PATTERN

EVERY_TOOL = "*"


class McpOptions(BaseModel):
    """Options of an ``mcp:`` tool entry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allow: list[str] = Field(
        min_length=1,
        description="the server's tools the bot may call, e.g. allow: [search, get_ticket], "
                    "or allow: ['*'] for all of them")
    max_result_chars: int = Field(100_000, gt=0, le=10_000_000)
    """Longer text results are cut (with a note saying so) before the model reads them."""

    @field_validator("allow")
    @classmethod
    def _names(cls, names: list[str]) -> list[str]:
        if EVERY_TOOL in names and len(names) > 1:
            raise ValueError("allow: ['*'] already allows every tool; list names or '*', "
                             "not both")
        for name in names:
            if name != EVERY_TOOL and not NAME_PATTERN.match(name):
                raise ValueError(f"'{name}' is not a tool name (1-64 letters, digits, _ or -)")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"listed twice: {', '.join(dupes)}")
        return names

    @property
    def every_tool(self) -> bool:
        return self.allow == [EVERY_TOOL]

    def allows(self, name: str) -> bool:
        return self.every_tool or name in self.allow
