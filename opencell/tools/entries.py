"""A bot's YAML tool entries made concrete: which tool each names, with checked options.

Errors come back located inside the entry, so config loading and ``opencell validate`` can
name file, line and field.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from opencell.config.mcp import SERVER_NAME
from opencell.config.source import suggest
from opencell.tools.builtin import BUILTINS
from opencell.tools.mcp.options import McpOptions
from opencell.tools.registry import NAME_PATTERN, Located, Tool, tool

if TYPE_CHECKING:
    from opencell.config import ToolEntry
    from opencell.tools.policy import ToolSource


def _no_call() -> None:
    """Stands for an MCP entry in option checks (its tools are the server's)."""


_MCP_ENTRY = tool(_no_call, name="mcp", options=McpOptions)

_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


@dataclass(frozen=True)
class ResolvedTool:
    """A YAML tool entry made concrete: the tool under the entry's name, its validated options."""

    tool: Tool
    options: Any
    timeout: float


def resolve_entry(entry: ToolEntry) -> tuple[ResolvedTool | None, list[Located]]:
    """Find and check the tool an entry names; errors come back located inside the entry."""
    found, errors = _find(entry)
    if found is None:
        return None, errors
    if not NAME_PATTERN.match(entry.name):
        return None, [(("name",), f"'{entry.name}' is not a valid tool name; use 1-64 "
                                  "letters, digits, _ or -")]
    options, errors = _check_options(found, entry)
    if errors:
        return None, errors
    explicit = "timeout" in entry.model_fields_set
    timeout = entry.timeout if explicit or found.timeout is None else found.timeout
    return ResolvedTool(tool=replace(found, name=entry.name), options=options,
                        timeout=timeout), []


def check_tool_entry(entry: ToolEntry) -> list[Located]:
    """Every problem with one YAML tool entry, located inside it (empty when it is usable)."""
    if entry.mcp is not None:
        return _mcp_problems(entry)[1]
    return resolve_entry(entry)[1]


def resolve_source(entry: ToolEntry, *, bot: str) -> tuple[ToolSource | None, list[Located]]:
    """The MCP server an ``mcp:`` entry names, not yet connected; or the entry's problems."""
    options, errors = _mcp_problems(entry)
    if options is None or errors:
        return None, errors
    from opencell.tools.mcp.source import McpSource  # needs the optional mcp SDK

    return McpSource(entry, options, bot=bot), []


def _mcp_problems(entry: ToolEntry) -> tuple[McpOptions | None, list[Located]]:
    if importlib.util.find_spec("mcp") is None:
        return None, [(("mcp",), "MCP servers need the mcp package: pip install "
                                 "'opencell[mcp]'")]
    if not SERVER_NAME.match(entry.name):
        return None, [(("name",), f"'{entry.name}' is not a valid server name; use 1-64 "
                                  "letters, digits, '.', _ or -")]
    found = replace(_MCP_ENTRY, name=entry.name)
    options, errors = _check_options(found, entry)
    if "allow" in entry.options or errors:
        return options, errors
    return None, [(("allow",), f"MCP server '{entry.name}' needs an allow list: the names of "
                               "the tools the bot may call, e.g. allow: [search, get_ticket], "
                               "or allow: ['*'] for every tool it offers")]


def _find(entry: ToolEntry) -> tuple[Tool | None, list[Located]]:
    if entry.python is None:
        builtins = BUILTINS
        if entry.name in builtins:
            return builtins[entry.name], []
        message = (f"unknown tool '{entry.name}'{suggest(entry.name, builtins)}; built-in "
                   f"tools: {', '.join(sorted(builtins))}; for a tool of your own add "
                   "python: package.module:function")
        return None, [(("name",), message)]
    path = entry.python
    if not _IMPORT_PATH.match(path):
        return None, [(("python",), f"'{path}' is not an import path like "
                                    "package.module:function")]
    module_name, attr_path = path.split(":", 1)
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:
        return None, [(("python",), f"cannot import module '{module_name}': "
                                    f"{type(exc).__name__}: {exc}")]
    for attr in attr_path.split("."):
        if not hasattr(target, attr):
            return None, [(("python",), f"module '{module_name}' has no attribute "
                                        f"'{attr_path}'{suggest(attr, dir(target))}")]
        target = getattr(target, attr)
    if isinstance(target, Tool):
        return target, []
    if not callable(target) or isinstance(target, type):
        return None, [(("python",), f"'{path}' is a {type(target).__name__}, not a function "
                                    "or @tool")]
    try:
        return tool(target, name=entry.name if NAME_PATTERN.match(entry.name) else None), []
    except (TypeError, ValueError) as exc:
        return None, [(("python",), f"'{path}' cannot be a tool: {exc}")]


def _check_options(found: Tool, entry: ToolEntry) -> tuple[Any, list[Located]]:
    given = entry.options
    if found.options is None:
        return {}, [((key,), f"unknown option '{key}': tool '{entry.name}' takes no options")
                    for key in given]
    model = found.options
    # A key the entry itself consumes (``timeout``) also reaches an options field of that name.
    if "timeout" in model.model_fields and "timeout" in entry.model_fields_set:
        given.setdefault("timeout", entry.timeout)
    names = {info.alias or key for key, info in model.model_fields.items()}
    errors: list[Located] = []
    for key in given:
        if key not in names:
            errors.append(((key,), f"unknown option '{key}' for tool '{entry.name}'"
                                   f"{suggest(key, names)}; its options: "
                                   f"{', '.join(sorted(names))}"))
    try:
        return model.model_validate({k: v for k, v in given.items() if k in names}), errors
    except ValidationError as exc:
        for err in exc.errors():
            errors.append((tuple(err["loc"]), _option_message(err, model, entry.name)))
        return None, errors


def _option_message(err: Any, model: type[BaseModel], tool_name: str) -> str:
    if err["type"] == "missing":
        info = model.model_fields.get(str(err["loc"][0])) if err["loc"] else None
        what = f": {info.description}" if info is not None and info.description else ""
        return f"tool '{tool_name}' needs this option{what}"
    message = str(err["msg"]).removeprefix("Value error, ")
    got = err.get("input")
    return message if isinstance(got, dict | list) else f"{message} (got {got!r})"
