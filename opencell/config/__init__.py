"""Pydantic models for bot YAML and ``config/opencell.yaml``, and their located loading.

Every error names the file, the line and the field (``file:line: field: message``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from opencell.config.fields import MAX_DURATION, CommaList, Duration, Model, parse_duration
from opencell.config.located import validate_source
from opencell.config.mcp import McpServerConfig
from opencell.config.platforms import (
    ConsoleConfig,
    DiscordConfig,
    DiscordShards,
    PlatformsConfig,
    SlackConfig,
)
from opencell.config.settings import (
    AgentOpsConfig,
    AlertsConfig,
    BudgetLimit,
    BudgetsConfig,
    DashboardConfig,
    ObservabilityConfig,
    OpenCellConfig,
    OTLPConfig,
    RedactRule,
    RetentionConfig,
    StoreConfig,
)
from opencell.config.source import YamlSource, format_loc, read_yaml
from opencell.errors import ConfigError, ConfigErrors

# ---------------------------------------------------------------- bot YAML

Provider = Literal["claude", "moonshot", "openai", "offline"]

DEFAULT_MODELS: dict[str, str] = {
    "claude": "claude-sonnet-4-20250514",
    "openai": "gpt-4o-mini",
    "moonshot": "kimi-k2-0905-preview",
    "offline": "offline-demo",
}


class LLMConfig(Model):
    """Which model a bot talks to, and how."""

    provider: Provider
    model: str = ""
    max_tokens: int = Field(1024, gt=0, le=200_000)
    base_url: str | None = None
    api_key: str | None = None
    """Optional; by default the provider's variable (ANTHROPIC_API_KEY, …) is read."""
    temperature: float | None = Field(None, ge=0, le=2)
    timeout: Duration = 60.0
    max_retries: int = Field(2, ge=0, le=10)

    @model_validator(mode="after")
    def _default_model(self) -> LLMConfig:
        if not self.model:
            object.__setattr__(self, "model", DEFAULT_MODELS[self.provider])
        return self


class SessionConfig(Model):
    idle_timeout: Duration = 600.0
    history_turns: int = Field(20, ge=0, le=1000)
    end_command: str | None = None
    """A message that ends the session, e.g. ``/end``."""


def _tool_entry(value: Any) -> Any:
    return {"name": value} if isinstance(value, str) else value


class ToolEntry(BaseModel):
    """One tool a bot may call. Keys other than the ones below are the tool's own options.

    With ``mcp:`` the entry is a Model Context Protocol server whose tools (those its
    ``allow`` option lists) the bot may call; ``name`` then names the server (by default its
    module, script or host).
    """

    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)

    name: str = ""
    python: str | None = None
    """``package.module:function`` for a tool of your own."""
    mcp: McpServerConfig | None = None
    allowed_users: list[str] | None = None
    timeout: Duration = 30.0

    @model_validator(mode="after")
    def _named(self) -> ToolEntry:
        if self.mcp is not None and self.python is not None:
            raise ValueError("a tool entry is either python: or mcp:, not both")
        if not self.name:
            if self.mcp is None:
                raise ValueError("a tool entry needs a name (or mcp: for an MCP server)")
            object.__setattr__(self, "name", self.mcp.default_name())
        return self

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class RateLimitConfig(Model):
    per_user: str = "20/min"
    message: str = "You're sending messages too fast; please wait a moment."

    @field_validator("per_user")
    @classmethod
    def _rate(cls, value: str) -> str:
        parse_rate(value)
        return value


MAX_RATE_COUNT = 1_000_000


def parse_rate(value: str) -> tuple[int, float]:
    """``20/min`` → (20, 60.0): a count from 1 to a million per a period up to a year."""
    match = re.fullmatch(r"\s*(\d{1,9})\s*/\s*(\d{0,9})\s*"
                         r"(s|sec|second|m|min|minute|h|hour|d|day)\s*", value)
    if not match or not 0 < int(match.group(1)) <= MAX_RATE_COUNT:
        raise ValueError(f"'{value}' is not a rate; use e.g. 20/min, 5/10s, 100/hour "
                         f"(at most {MAX_RATE_COUNT} per period)")
    unit = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600,
            "hour": 3600, "d": 86400, "day": 86400}[match.group(3)]
    period = float(int(match.group(2) or 1) * unit)
    if not 0 < period <= MAX_DURATION:
        raise ValueError(f"'{value}' is not a rate: the period must be longer than zero and "
                         "at most a year; use e.g. 20/min, 5/10s, 100/hour")
    return int(match.group(1)), period


class MiddlewareEntry(Model):
    """One user middleware: a built-in (``rate_limit``) or ``python: pkg.mod:Class``."""

    rate_limit: RateLimitConfig | None = None
    python: str | None = None
    kwargs: dict[str, Any] = {}

    @model_validator(mode="after")
    def _one_kind(self) -> MiddlewareEntry:
        kinds = [k for k in ("rate_limit", "python") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("each middleware entry names exactly one of: rate_limit, python")
        if self.kwargs and not self.python:
            raise ValueError("kwargs only go with python: pkg.module:Class")
        if self.python and not re.fullmatch(r"[\w.]+:[\w.]+", self.python):
            raise ValueError(f"'{self.python}' is not an import path like pkg.module:Class")
        return self


class BotBudget(Model):
    """A bot's own ``budget:``: limits on what this bot spends (see ``budgets:`` globally)."""

    daily_usd: float | None = Field(None, gt=0)
    weekly_usd: float | None = Field(None, gt=0)
    monthly_usd: float | None = Field(None, gt=0)
    enforce: bool = False
    alert_at: list[float] = [0.8, 1.0]
    scope: Literal["bot", "user"] = "bot"
    """``bot``: the limits cap the whole bot; ``user``: each user of this bot separately."""
    blocked_message: str | None = None
    """What users of this bot see when a call is blocked; default ``budgets.blocked_message``."""


DEFAULT_REACTIONS: dict[str, Literal["good", "bad"]] = {
    "👍": "good", "👎": "bad", "+1": "good", "-1": "bad", "thumbsup": "good",
    "thumbsdown": "bad",
}
"""👍 and 👎 as Discord sends them (the emoji) and as Slack names them (``+1``, ``thumbsup``…)."""


class FeedbackConfig(Model):
    """``feedback:``: how people rate a bot's replies (see the README's Feedback section)."""

    reactions: dict[str, Literal["good", "bad"]] = DEFAULT_REACTIONS
    """Reactions on a bot reply that count as feedback: the emoji (Discord) or the emoji's
    name without colons (Slack), mapped to ``good`` or ``bad``. Skin tones count as the
    plain emoji. Replaces the default set: list 👍/👎 too if you still want them."""
    command: str | None = "/feedback"
    """``/feedback good|bad [comment]`` rates the bot's previous reply; null turns it off."""
    thanks: str = "Thanks for the feedback!"
    """What the bot answers to the command."""


class BotConfig(Model):
    """One bot, as written in its YAML file."""

    name: str
    type: Literal["conversational", "agent"] = "conversational"
    description: str = ""
    llm: LLMConfig
    system_prompt: str = "You are a helpful assistant."
    platforms: PlatformsConfig = PlatformsConfig(console=ConsoleConfig())
    session: SessionConfig = SessionConfig()
    tools: list[Annotated[ToolEntry, BeforeValidator(_tool_entry)]] = []
    middleware: list[MiddlewareEntry] = []
    budget: BotBudget | None = None
    tags: list[str] = []
    max_iterations: int = Field(8, ge=1, le=100)
    """Agent bots: model calls per turn before giving up."""
    error_message: str = "Sorry, something went wrong on my side. Please try again in a moment."
    stream: bool = True
    """Show answers as the model writes them (console, Discord, Slack); false: post each
    answer once it is complete."""
    feedback: FeedbackConfig = FeedbackConfig()
    _source: Path | None = PrivateAttr(default=None)
    _lines: dict[tuple[str | int, ...], int] = PrivateAttr(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", value):
            raise ValueError(f"'{value}' is not a bot name; use 1-64 letters, digits, "
                             "'-', '_' or '.'")
        return value

    @field_validator("tools")
    @classmethod
    def _tools_need_agent(cls, tools: list[ToolEntry], info: ValidationInfo) -> list[ToolEntry]:
        if tools and info.data.get("type", "conversational") != "agent":
            raise ValueError("tools are only used by agent bots; set type: agent")
        names = [t.name for t in tools]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"tool listed twice: {', '.join(sorted(dupes))} (an mcp: entry "
                             "is named after its server; give one a name: to tell them apart)")
        return tools

    @property
    def source(self) -> Path | None:
        """The file this bot was loaded from."""
        return self._source

    def locate(self, loc: tuple[str | int, ...], message: str) -> ConfigError:
        """A ``ConfigError`` pointing at ``loc`` in this bot's file (found at start-up)."""
        parts = loc
        while parts and parts not in self._lines:
            parts = parts[:-1]
        return ConfigError(message, file=str(self._source) if self._source else self.name,
                           line=self._lines.get(parts), field=format_loc(loc) or None)


# ---------------------------------------------------------------- loading


def each_error(exc: ConfigError) -> list[ConfigError]:
    """The single errors inside ``exc`` (a ``ConfigErrors`` holds several)."""
    return list(exc.errors) if isinstance(exc, ConfigErrors) else [exc]


def claim_name(bot: BotConfig, path: Path, seen: dict[str, Path]) -> ConfigError | None:
    """Record ``bot``'s name; the located error if another file already uses it."""
    if bot.name in seen:
        return bot.locate(("name",), f"bot name '{bot.name}' is already used by "
                                     f"{seen[bot.name]}; names must be unique")
    seen[bot.name] = path
    return None


def read_bot(source: YamlSource) -> BotConfig:
    """A bot file's YAML checked against the bot schema (tools are checked by the loader,
    ``opencell.loading``, which knows the tools)."""
    bot = validate_source(source, BotConfig, "bot")
    bot._source = source.path
    bot._lines = source.lines
    return bot


def load_config(path: str | Path | None = None, env: Mapping[str, str] | None = None
                ) -> OpenCellConfig:
    """Load the global config; a missing default file means all defaults.

    ``path`` defaults to ``$OPENCELL_CONFIG``, then ``config/opencell.yaml`` if it exists.
    ``OPENCELL_DATABASE_URL`` wins over ``store.url``.
    """
    env = os.environ if env is None else env
    explicit = path or env.get("OPENCELL_CONFIG")
    candidate = Path(explicit) if explicit else Path("config/opencell.yaml")
    if explicit or candidate.exists():
        config = validate_source(read_yaml(candidate, env), OpenCellConfig, "config")
    else:
        config = OpenCellConfig()
    if env.get("OPENCELL_DATABASE_URL"):
        store = config.store.model_copy(update={"url": env["OPENCELL_DATABASE_URL"]})
        config = config.model_copy(update={"store": store})
    return config


__all__ = [
    "AgentOpsConfig", "AlertsConfig", "BotBudget", "BotConfig", "BudgetLimit", "BudgetsConfig",
    "CommaList", "ConsoleConfig", "DashboardConfig", "DiscordConfig", "DiscordShards",
    "Duration", "LLMConfig", "McpServerConfig", "MiddlewareEntry", "Model", "OTLPConfig",
    "ObservabilityConfig", "OpenCellConfig", "PlatformsConfig", "RateLimitConfig", "RedactRule",
    "RetentionConfig", "SessionConfig", "SlackConfig", "StoreConfig", "ToolEntry", "claim_name",
    "each_error", "format_loc", "load_config", "parse_duration", "parse_rate", "read_bot",
    "validate_source",
]
