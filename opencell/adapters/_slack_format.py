"""Slack's side of a reply: the model's Markdown as Slack mrkdwn, cut to Slack's message size."""

from __future__ import annotations

import logging
from typing import Any

from slackify_markdown.slackify import SlackifyMarkdown  # type: ignore[import-untyped]

from opencell.adapters._chunks import split_message

log = logging.getLogger("opencell.adapters.slack")

MESSAGE_LIMIT = 3900
"""Characters per ``chat.postMessage``: Slack advises at most 4,000 and truncates long text."""


def escape(text: str) -> str:
    """Slack's escaping: exactly ``&``, ``<`` and ``>``, everywhere in a message."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class _Mrkdwn(SlackifyMarkdown):  # type: ignore[misc]
    """slackify-markdown, with code escaped too: Slack parses ``<…>`` and entities inside code
    as well, so an unescaped ``<div>`` in a code block would vanish into a "link"."""

    def code_inline(self, *args: Any) -> str:
        return escape(str(super().code_inline(*args)))

    def code_block(self, *args: Any) -> str:
        return escape(str(super().code_block(*args)))

    def fence(self, *args: Any) -> str:
        return escape(str(super().fence(*args)))


def to_mrkdwn(markdown: str) -> str:
    """Markdown (what models write) → mrkdwn (what Slack renders).

    ``**bold**`` → ``*bold*``, ``[text](url)`` → ``<url|text>``, headings → bold lines, lists
    → bullets, code fences kept (without a language, which Slack would show as code), and
    ``&``, ``<``, ``>`` escaped except in Slack's own ``<@U…>``/``<#C…>``/``<!here>`` markup.
    If conversion fails the text goes out escaped but otherwise as written.
    """
    try:
        return str(_Mrkdwn(markdown).slackify()).strip("\n")
    except Exception as exc:  # noqa: BLE001 - a reply must still go out
        log.warning("mrkdwn conversion failed, sending plain text error=%s", type(exc).__name__)
        return escape(markdown)


def slack_messages(markdown: str, limit: int = MESSAGE_LIMIT) -> list[str]:
    """The messages that carry one reply: converted first (escapes and link markup change
    the length), then split at paragraph, line or word boundaries with code fences kept."""
    return split_message(to_mrkdwn(markdown), limit)
