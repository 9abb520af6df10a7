"""Loading bots and configs as the commands do: YAML, schema, and what the YAML names.

``opencell.config`` reads and checks a file against its schema; this module also checks what
a bot's YAML refers to — its tools exist and take those options, a pricing file's prices —
which needs ``opencell.tools`` and ``opencell.llm``, so it sits above all three. Every error
is located: ``file:line: field: message``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Literal

from opencell.config import (
    BotConfig,
    OpenCellConfig,
    claim_name,
    each_error,
    read_bot,
    validate_source,
)
from opencell.config.source import YamlSource, read_yaml
from opencell.errors import ConfigError, ConfigErrors
from opencell.llm.pricing import load_overrides
from opencell.tools.entries import check_tool_entry

__all__ = ["kind_of", "load_bot", "load_bots", "validate_file", "validate_files"]


def load_bot(path: str | Path, env: Mapping[str, str] | None = None) -> BotConfig:
    """Load and validate one bot file; raise ``ConfigErrors`` with every located problem."""
    source = read_yaml(Path(path), os.environ if env is None else env)
    return _bot_from(source)


def _bot_from(source: YamlSource) -> BotConfig:
    bot = read_bot(source)
    _check_tools(bot, source)
    return bot


def load_bots(paths: Iterable[str | Path], env: Mapping[str, str] | None = None) -> list[BotConfig]:
    """Load several bot files; bot names must be unique across them."""
    bots: list[BotConfig] = []
    errors: list[ConfigError] = []
    seen: dict[str, Path] = {}
    for path in paths:
        try:
            bot = load_bot(path, env)
        except ConfigError as exc:
            errors.extend(each_error(exc))
            continue
        duplicate = claim_name(bot, Path(path), seen)
        if duplicate is not None:
            errors.append(duplicate)
            continue
        bots.append(bot)
    if errors:
        raise ConfigErrors(errors)
    return bots


def validate_files(paths: Iterable[str | Path], env: Mapping[str, str] | None = None
                   ) -> tuple[list[tuple[Path, BotConfig | OpenCellConfig | int]],
                              list[ConfigError]]:
    """``opencell validate``: each file's result (a pricing file gives its override count)
    and every located problem, bot names checked for uniqueness across the files."""
    results: list[tuple[Path, BotConfig | OpenCellConfig | int]] = []
    errors: list[ConfigError] = []
    seen: dict[str, Path] = {}
    for raw in paths:
        path = Path(raw)
        try:
            if path.name == "pricing.yaml":
                results.append((path, len(load_overrides(path, env))))
                continue
            result = validate_file(path, env)
        except ConfigError as exc:
            errors.extend(each_error(exc))
            continue
        duplicate = (claim_name(result, path, seen) if isinstance(result, BotConfig)
                     else None)
        if duplicate is not None:
            errors.append(duplicate)
        else:
            results.append((path, result))
    return results, errors


def kind_of(source: YamlSource) -> Literal["bot", "config"]:
    """Tell a bot file from a global config file by its top-level keys."""
    data = source.data
    if isinstance(data, dict) and data and not {"name", "llm", "type"} & set(data):
        return "config"
    return "bot"


def validate_file(path: str | Path, env: Mapping[str, str] | None = None
                  ) -> BotConfig | OpenCellConfig:
    """Validate a bot or config file (``opencell validate``)."""
    source = read_yaml(Path(path), os.environ if env is None else env)
    if kind_of(source) == "config":
        return validate_source(source, OpenCellConfig, "config")
    return _bot_from(source)


def _check_tools(bot: BotConfig, source: YamlSource) -> None:
    errors = []
    for index, entry in enumerate(bot.tools):
        for sub_loc, message in check_tool_entry(entry):
            errors.append(source.error(("tools", index, *sub_loc), message))
    errors += _named_twice(bot, source)
    if errors:
        raise ConfigErrors(errors)


def _named_twice(bot: BotConfig, source: YamlSource) -> list[ConfigError]:
    """A tool name an MCP entry's ``allow`` shares with another entry (the rest of the clashes,
    those of ``allow: ['*']``, are found at start-up, once the servers have listed their tools)."""
    owner = {entry.name: f"tool '{entry.name}'" for entry in bot.tools if entry.mcp is None}
    errors = []
    for index, entry in enumerate(bot.tools):
        allow = entry.options.get("allow") if entry.mcp is not None else None
        if not isinstance(allow, list):
            continue
        for name in allow:
            if not isinstance(name, str) or name == "*":
                continue
            if name in owner:
                errors.append(source.error(("tools", index, "allow"), (
                    f"tool '{name}' of MCP server '{entry.name}' clashes with {owner[name]}; "
                    "tool names must be unique within a bot")))
            else:
                owner[name] = f"tool '{name}' of MCP server '{entry.name}'"
    return errors
