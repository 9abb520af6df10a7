"""Config models for ``platforms:`` in a bot's YAML: console, Discord, Slack."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from opencell.config.fields import Duration, Model


class DiscordShards(Model):
    """``shards: {count: N, ids: [...]}``: this process runs only the shards ``ids`` of
    ``count`` (each shard must run in exactly one process; Discord routes a guild's events
    to one shard, and DMs to shard 0)."""

    count: int = Field(ge=1)
    """How many shards the bot has in all (the same in every process)."""
    ids: list[int] | Literal["auto"]
    """The shards this process runs, each from 0 to ``count - 1``; ``auto``: it claims free
    shards through the PostgreSQL store, and takes over those of a process that stops."""
    max: int | None = Field(None, ge=1)
    """With ``ids: auto``: at most this many shards in this process (default: all that are
    free; the others then stand by)."""

    @model_validator(mode="after")
    def _ids_in_range(self) -> DiscordShards:
        if self.ids == "auto":
            return self
        if not self.ids:
            raise ValueError("shard ids must name at least one shard (or use ids: auto)")
        wrong = sorted({i for i in self.ids if not 0 <= i < self.count})
        if wrong:
            raise ValueError(f"shard ids {wrong} are not shards of count {self.count} "
                             f"(use ids from 0 to {self.count - 1})")
        if len(set(self.ids)) != len(self.ids):
            raise ValueError("shard ids must not repeat")
        return self


class DiscordConfig(Model):
    """``platforms.discord``: how a bot connects to Discord and which messages it answers."""

    token: str
    """The bot token (Developer Portal → your app → Bot); usually ``${DISCORD_TOKEN}``."""
    respond_to: Literal["mentions", "all", "dm"] = "mentions"
    """``mentions``: in servers, only messages that mention the bot or reply to it (DMs
    always); ``all``: every message in the allowed channels; ``dm``: direct messages only."""
    channels: list[str] = []
    """Channel ids or names to listen in (a channel's threads included); empty = every
    channel the bot can see. DMs are not affected."""
    ignore_bots: bool = True
    """Never answer other bots (stops two bots from talking to each other forever)."""
    follow_threads: bool = True
    """With ``respond_to: mentions``: in a thread where someone mentioned the bot or it
    answered them, that person's follow-ups are answered without a new mention."""
    shards: Literal["auto"] | int | DiscordShards | None = None
    """``auto`` (Discord's recommended count) or a shard count: this process runs every shard
    (``AutoShardedClient``); ``{count: N, ids: [...]}``: only those shards, so several
    processes can split one bot's shards between them."""
    ready_timeout: Duration = 60.0
    """How long start-up waits for Discord's READY (raise it for bots with many shards)."""

    @field_validator("shards")
    @classmethod
    def _shard_count(cls, value: Literal["auto"] | int | DiscordShards | None,
                     ) -> Literal["auto"] | int | DiscordShards | None:
        if isinstance(value, int) and value < 1:
            raise ValueError(f"{value} is not a shard count; use auto or a number from 1")
        return value


class SlackConfig(Model):
    """A bot's Slack app: Socket Mode when ``app_token`` is set, else HTTP mode."""

    bot_token: str
    """The Bot User OAuth Token (``xoxb-…``); usually ``${SLACK_BOT_TOKEN}``."""
    app_token: str | None = None
    """An app-level token (``xapp-…``, scope ``connections:write``): selects Socket Mode."""
    signing_secret: str | None = None
    """HTTP mode: verifies that requests to ``host:port/path`` come from Slack."""
    host: str = "127.0.0.1"
    port: int = Field(3000, ge=0, le=65535)
    """HTTP mode; 0 picks a free port (tests)."""
    path: str = "/slack/events"
    api_base_url: str | None = None
    """The Web API base, e.g. ``https://slack-gov.com/api/``; default ``https://slack.com/api/``."""
    respond_to: Literal["mentions", "all", "dm"] = "mentions"
    """Direct messages are always answered (``dm``: only those); in channels the bot answers
    mentions, or every message with ``all``."""
    channels: list[str] = []
    """Channel ids (``C0123ABCD``) to answer in; empty = every channel the bot is in. DMs
    are not affected."""
    ignore_bots: bool = True
    """Never answer other bots (stops two bots from talking to each other forever)."""
    follow_threads: bool = True
    """With ``respond_to: mentions``: in a thread where someone mentioned the bot or it
    answered them, that person's follow-ups are answered without a new mention."""

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"'{value}' is not a URL path; it must start with '/'")
        return value

    @field_validator("channels")
    @classmethod
    def _channel_ids(cls, value: list[str]) -> list[str]:
        for channel in value:
            if not re.fullmatch(r"[CGD][A-Z0-9]{2,}", channel):
                raise ValueError(f"'{channel}' is not a Slack channel id; use ids like C0123ABCD "
                                 "(channel details > About, at the bottom)")
        return value

    @model_validator(mode="after")
    def _mode(self) -> SlackConfig:
        if not self.app_token and not self.signing_secret:
            raise ValueError(
                "set app_token (Socket Mode) or signing_secret (HTTP mode), e.g. "
                "app_token: ${SLACK_APP_TOKEN}"
            )
        # Checked here, not in field validators: a field error would echo the token.
        self._token_kind("bot_token", self.bot_token, "xoxb-",
                         "the Bot User OAuth Token (OAuth & Permissions)")
        self._token_kind("app_token", self.app_token, "xapp-",
                         "an app-level token with connections:write (Basic Information)")
        return self

    @staticmethod
    def _token_kind(field: str, value: str | None, prefix: str, what: str) -> None:
        """An empty token passes (the adapter names the missing variable at start-up); a
        token of the wrong kind is an error that shows its prefix, never the token."""
        value = (value or "").strip()
        if value and not value.startswith(prefix):
            shape = re.match(r"x[a-z]{2,4}-", value)
            found = f"a token starting with '{shape.group(0)}'" if shape else "something else"
            raise ValueError(f"{field} must be {what}, starting with '{prefix}'; found {found}")


class ConsoleConfig(Model):
    user: str = "you"
    prompt: str = "you> "


class PlatformsConfig(Model):
    console: ConsoleConfig | None = None
    discord: DiscordConfig | None = None
    slack: SlackConfig | None = None

    def named(self) -> list[str]:
        return [name for name in ("console", "discord", "slack") if getattr(self, name)]
