"""Tools an agent bot's model may call: the ``@tool`` decorator, built-ins and the call policy."""

from opencell.tools.policy import EnabledTool, Toolbox, ToolInvoker, ToolResult
from opencell.tools.registry import Tool, ToolContext, builtin_tools, check_tool_entry, tool

__all__ = [
    "EnabledTool",
    "Tool",
    "ToolContext",
    "ToolInvoker",
    "ToolResult",
    "Toolbox",
    "builtin_tools",
    "check_tool_entry",
    "tool",
]
