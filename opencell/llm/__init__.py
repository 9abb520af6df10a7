"""LLM providers behind one interface: ``create_llm`` turns a bot's ``llm:`` block into a client.

The SDKs (anthropic, openai) are imported only when a client of theirs is created, so that
importing OpenCell — and ``opencell --help`` — stays fast.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING

from opencell.errors import ConfigError, MissingSecretError
from opencell.llm._arguments import INVALID_JSON_KEY
from opencell.llm.base import (
    ChatMessage,
    LLMClient,
    LLMRequest,
    LLMResponse,
    ToolCall,
    ToolSpec,
    Usage,
)

if TYPE_CHECKING:
    from opencell.config import LLMConfig

__all__ = [
    "INVALID_JSON_KEY",
    "ChatMessage",
    "LLMClient",
    "LLMRequest",
    "LLMResponse",
    "ToolCall",
    "ToolSpec",
    "Usage",
    "create_llm",
]

# provider → (API key variable, base URL variable)
_VARIABLES = {
    "claude": ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"),
    "openai": ("OPENAI_API_KEY", "OPENAI_BASE_URL"),
    "moonshot": ("MOONSHOT_API_KEY", "MOONSHOT_BASE_URL"),
}


def create_llm(llm: LLMConfig, *, bot: str, env: Mapping[str, str] | None = None) -> LLMClient:
    """The client for one bot's ``llm:`` block.

    The API key is ``llm.api_key`` or the provider's variable in ``env`` (default: the process
    environment); the base URL is ``llm.base_url``, else the provider's ``*_BASE_URL``
    variable, else the provider's default. A missing key raises ``MissingSecretError`` naming
    the variable and the bot. Retries and timeouts are the SDK's own (``llm.max_retries``,
    ``llm.timeout``).
    """
    environ = os.environ if env is None else env
    if llm.provider == "offline":
        from opencell.llm.offline import OfflineClient

        return OfflineClient(llm.model)
    if llm.provider not in _VARIABLES:
        raise ConfigError(
            f"unknown provider '{llm.provider}'; use claude, openai, moonshot or offline",
            field="llm.provider",
        )
    key_variable, url_variable = _VARIABLES[llm.provider]
    # An empty value (e.g. from ``${VAR:-}``) counts as unset.
    api_key = llm.api_key or environ.get(key_variable) or ""
    if not api_key:
        raise MissingSecretError(key_variable, bot=bot, purpose=f"llm.provider: {llm.provider}")
    # Read here rather than left to the SDK, so ``env`` is the only source tests must control.
    base_url = llm.base_url or environ.get(url_variable) or None
    if llm.provider == "claude":
        from opencell.llm.anthropic import AnthropicClient

        return AnthropicClient(
            model=llm.model, api_key=api_key, base_url=base_url, timeout=llm.timeout,
            max_retries=llm.max_retries, key_variable=key_variable,
        )
    from opencell.llm.openai import OpenAIClient

    return OpenAIClient(
        model=llm.model, api_key=api_key, base_url=base_url, timeout=llm.timeout,
        max_retries=llm.max_retries, provider=llm.provider, key_variable=key_variable,
    )
