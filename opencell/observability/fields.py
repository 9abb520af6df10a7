"""Small field builders the observer's record methods share: checked numbers and texts,
a streamed call's timings, and the secrets a bot's YAML holds (always redacted)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opencell.records import valid_number, valid_text

if TYPE_CHECKING:
    from opencell.config import BotConfig

SECRET_FIELDS = ("api_key", "token", "bot_token", "app_token", "signing_secret")
"""The platform settings in a bot's YAML that hold secrets."""


def streamed_fields(timing: Mapping[str, float | None]) -> dict[str, Any]:
    """An llm_call's streaming fields: ``streamed: true`` and the timings, rounded to µs
    (a timing that is not a usable number is left out and named in ``invalid``)."""
    fields: dict[str, Any] = {"streamed": True}
    for name in ("time_to_first_token_ms", "streaming_ms"):
        value = timing.get(name)
        checked = None if value is None else valid_number(value)
        if value is not None and checked is None:
            invalid_field(fields, name, value)
        fields[name] = None if checked is None else round(checked, 3)
    return fields


def bot_secrets(bot: BotConfig) -> list[str]:
    """Secret values written into a bot's YAML (tokens, keys): always redacted."""
    values = [bot.llm.api_key or ""]
    for platform in (bot.platforms.discord, bot.platforms.slack):
        if platform is not None:
            values += [str(getattr(platform, name, "") or "") for name in SECRET_FIELDS]
    for entry in bot.tools:  # an MCP server's env values and headers (tokens)
        if entry.mcp is not None:
            values += entry.mcp.secrets()
    return [v for v in values if v]


def optional_text(value: object) -> str | None:
    """``value`` as valid text, None staying None."""
    return None if value is None else valid_text(str(value))


def invalid_field(data: dict[str, Any], field_name: str, value: object) -> None:
    """Note a value left out of a record because it is not a usable number."""
    data.setdefault("invalid", {})[field_name] = valid_text(repr(value)[:100])


def truncate(text: str | None, limit: int) -> str | None:
    """``text`` cut at ``limit`` characters (None stays None)."""
    return text if text is None or len(text) <= limit else text[:limit]
