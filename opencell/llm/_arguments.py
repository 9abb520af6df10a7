"""Tool-call arguments between the wire (JSON text or objects) and ``ToolCall.arguments``.

A model can emit arguments that are not a JSON object. Raising would lose the whole answer, so
the call is kept with ``{INVALID_JSON_KEY: raw}`` as its arguments: the runtime can then tell
the model exactly what it sent, and the raw text round-trips unchanged in the history.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

INVALID_JSON_KEY = "__invalid_json__"
"""The key under which arguments that are not a JSON object are kept, as the raw text."""


def arguments_from_json(raw: str | None) -> dict[str, Any]:
    """Parse the model's arguments text (OpenAI style); an empty text means no arguments."""
    if raw is None or not raw.strip():
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {INVALID_JSON_KEY: raw}
    return value if isinstance(value, dict) else {INVALID_JSON_KEY: raw}


def arguments_from_object(value: object) -> dict[str, Any]:
    """Anthropic sends ``input`` already parsed; anything but an object is kept raw."""
    if isinstance(value, dict):
        return dict(value)
    return {INVALID_JSON_KEY: json.dumps(value)}


def arguments_to_json(arguments: Mapping[str, Any]) -> str:
    """Arguments as JSON text for the history; an invalid original is sent back as it was."""
    raw = arguments.get(INVALID_JSON_KEY)
    if isinstance(raw, str) and len(arguments) == 1:
        return raw
    return json.dumps(dict(arguments), ensure_ascii=False)


def arguments_to_object(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """Arguments as a JSON object for Anthropic's ``tool_use.input`` (which must be one)."""
    if INVALID_JSON_KEY in arguments and len(arguments) == 1:
        return {}
    return dict(arguments)
