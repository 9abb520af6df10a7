"""Bot versions: a fingerprint of the bot as it ran, so sessions can be compared by version.

A version is the canonical text of what shapes the bot's answers — system prompt, provider and
model, temperature, max_tokens, max_iterations, history length, the tools offered (names,
descriptions and schemas) and the middleware — as sorted, indented JSON (so two versions diff
line by line). Its digest (SHA-256 of the redacted text) is the version's id: the first
session of a version carries the text (``bot_definition``), later ones only the digest
(``bot_version``); the store keeps the text once, in its ``texts`` table.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any

from opencell.config import BotConfig
from opencell.llm.base import ToolSpec


def definition(config: BotConfig, tools: Sequence[ToolSpec]) -> str:
    """The bot's version text (deterministic: same bot, same text)."""
    llm = config.llm
    data: dict[str, Any] = {
        "bot": config.name, "type": config.type, "system_prompt": config.system_prompt,
        "provider": llm.provider, "model": llm.model, "temperature": llm.temperature,
        "max_tokens": llm.max_tokens, "history_turns": config.session.history_turns,
        "tools": [{"name": t.name, "description": t.description,
                   "parameters": t.parameters} for t in tools],
        "middleware": [m.model_dump(mode="json") if hasattr(m, "model_dump") else m
                       for m in config.middleware],
    }
    if config.type == "agent":
        data["max_iterations"] = config.max_iterations
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, default=str)


def digest(text: str) -> str:
    """A version's id: the SHA-256 of its (redacted) text, as the store's ``texts`` keys it."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def short(version: str | None) -> str:
    """How lists show a version: its first 12 hex digits."""
    return (version or "")[:12]


def stamp(data: dict[str, Any], version: str | None, replay_of: str | None,
          sent: dict[str, str], redact: Callable[[str], str]) -> None:
    """Add a session_start's version fields: the (redacted) text the first time ``sent``
    has not seen it, its digest afterwards; and the replayed session's id."""
    if version is not None:
        known = sent.get(version)
        if known is None:
            data["bot_definition"] = text = redact(version)
            sent[version] = digest(text)
        else:
            data["bot_version"] = known
    if replay_of:
        data["replay_of"] = replay_of
