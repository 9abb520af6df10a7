"""Platform adapters: the only place that knows Discord, Slack or the terminal."""

from __future__ import annotations

from opencell.adapters.base import Adapter
from opencell.config import BotConfig
from opencell.errors import UnsupportedPlatformError


def create_adapter(bot: BotConfig, platform: str) -> Adapter:
    """The adapter for ``platform`` of ``bot``; platform SDKs are imported only when used."""
    if platform == "console":
        from opencell.adapters.console import ConsoleAdapter

        return ConsoleAdapter(bot)
    if platform == "discord":
        from opencell.adapters.discord import DiscordAdapter

        return DiscordAdapter(bot)
    if platform == "slack":
        from opencell.adapters.slack import SlackAdapter

        return SlackAdapter(bot)
    raise UnsupportedPlatformError(
        f"bot '{bot.name}' names platform '{platform}', which this version of OpenCell "
        "cannot run yet; remove it from platforms: or use `opencell chat` to try the bot "
        "in the terminal"
    )


__all__ = ["Adapter", "create_adapter"]
