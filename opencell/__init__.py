"""OpenCell: LLM chat bots on Discord, Slack and the terminal, with observability built in.

The public API. Names are imported lazily so that ``opencell --help`` does not pay for the
LLM SDKs or the store.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "App": "opencell.app",
    "BotRuntime": "opencell.runtime",
    "BotConfig": "opencell.config",
    "OpenCellConfig": "opencell.config",
    "load_bot": "opencell.loading",
    "load_bots": "opencell.loading",
    "load_config": "opencell.config",
    "ConversationKey": "opencell.messages",
    "IncomingMessage": "opencell.messages",
    "Reply": "opencell.messages",
    "TurnContext": "opencell.context",
    "Middleware": "opencell.types",
    "tool": "opencell.tools",
    "ToolContext": "opencell.tools",
    "get_agentops": "opencell.observability.facade",
    "OpenCellError": "opencell.errors",
    "ConfigError": "opencell.errors",
}

__all__ = [
    "App", "BotConfig", "BotRuntime", "ConfigError", "ConversationKey", "IncomingMessage",
    "Middleware", "OpenCellConfig", "OpenCellError", "Reply", "ToolContext", "TurnContext",
    "get_agentops", "load_bot", "load_bots", "load_config", "tool",
]

if TYPE_CHECKING:
    from opencell.app import App
    from opencell.config import BotConfig, OpenCellConfig, load_config
    from opencell.context import TurnContext
    from opencell.errors import ConfigError, OpenCellError
    from opencell.loading import load_bot, load_bots
    from opencell.messages import ConversationKey, IncomingMessage, Reply
    from opencell.observability.facade import get_agentops
    from opencell.runtime import BotRuntime
    from opencell.tools import ToolContext, tool
    from opencell.types import Middleware


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'opencell' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
