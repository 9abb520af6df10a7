"""Tools an agent bot's model may call: the ``@tool`` decorator, built-ins and the toolbox.

- ``registry.py``: ``@tool`` turns a function into a ``Tool`` (schema + argument checks);
- ``builtin.py``: the built-in tools a YAML can name;
- ``entries.py``: a bot's YAML ``tools:`` entries resolved to tools with checked options;
- ``policy.py``: an enabled tool, a rich result, a tool source (what toolbox and MCP share);
- ``toolbox.py``: how a call executes (allowlists, timeouts, errors the model reads);
- ``mcp/``: tools from Model Context Protocol servers (the optional ``mcp`` extra).
"""

from opencell.tools.builtin import BUILTINS
from opencell.tools.entries import check_tool_entry
from opencell.tools.policy import EnabledTool, ToolOutput
from opencell.tools.registry import Tool, ToolContext, tool
from opencell.tools.toolbox import Toolbox, ToolInvoker, ToolResult

__all__ = [
    "BUILTINS",
    "EnabledTool",
    "Tool",
    "ToolContext",
    "ToolInvoker",
    "ToolOutput",
    "ToolResult",
    "Toolbox",
    "check_tool_entry",
    "tool",
]
