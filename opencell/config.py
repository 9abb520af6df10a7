"""Pydantic models for bot YAML and ``config/opencell.yaml``, and their located loading.

Every error names the file, the line and the field (``file:line: field: message``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from opencell._yaml_source import YamlSource, format_loc, read_yaml, suggest
from opencell.errors import ConfigError, ConfigErrors

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any) -> float:
    """``90s``, ``10m``, ``1h``, ``1h30m``, ``500ms`` or a number of seconds → seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 90s, 10m, 1h or a number of seconds")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip().replace(" ", "")
        try:
            seconds = float(text)
        except ValueError:
            pos, seconds = 0, 0.0
            for match in _DURATION.finditer(text):
                if match.start() != pos:
                    break
                seconds += float(match.group(1)) * _UNITS[match.group(2)]
                pos = match.end()
            if pos != len(text) or pos == 0:
                raise ValueError(
                    f"'{value}' is not a duration; use 90s, 10m, 1h or a number of seconds"
                ) from None
    else:
        raise ValueError("expected a duration like 90s, 10m, 1h or a number of seconds")
    if seconds <= 0:
        raise ValueError("a duration must be greater than zero")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]
M = TypeVar("M", bound=BaseModel)


def _comma_list(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


CommaList = Annotated[list[str], BeforeValidator(_comma_list)]


class Model(BaseModel):
    """Base for config models: unknown fields are errors (they are usually typos)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


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
    shards: Literal["auto"] | int | None = None
    """``auto`` (Discord's recommended count) or a shard count: uses ``AutoShardedClient``."""
    ready_timeout: Duration = 60.0
    """How long start-up waits for Discord's READY (raise it for bots with many shards)."""

    @field_validator("shards")
    @classmethod
    def _shard_count(cls, value: Literal["auto"] | int | None) -> Literal["auto"] | int | None:
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


class SessionConfig(Model):
    idle_timeout: Duration = 600.0
    history_turns: int = Field(20, ge=0, le=1000)
    end_command: str | None = None
    """A message that ends the session, e.g. ``/end``."""


def _tool_entry(value: Any) -> Any:
    return {"name": value} if isinstance(value, str) else value


class ToolEntry(BaseModel):
    """One tool a bot may call. Keys other than the ones below are the tool's own options."""

    model_config = ConfigDict(extra="allow", frozen=True)

    name: str
    python: str | None = None
    """``package.module:function`` for a tool of your own."""
    allowed_users: list[str] | None = None
    timeout: Duration = 30.0

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


def parse_rate(value: str) -> tuple[int, float]:
    """``20/min`` → (20, 60.0)."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d*)\s*(s|sec|second|m|min|minute|h|hour|d|day)\s*",
                         value)
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"'{value}' is not a rate; use e.g. 20/min, 5/10s, 100/hour")
    unit = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600,
            "hour": 3600, "d": 86400, "day": 86400}[match.group(3)]
    return int(match.group(1)), float(int(match.group(2) or 1) * unit)


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
            raise ValueError(f"tool listed twice: {', '.join(sorted(dupes))}")
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


# ---------------------------------------------------------------- config/opencell.yaml


class StoreConfig(Model):
    url: str = "sqlite:///opencell.db"


class RedactRule(Model):
    pattern: str
    replacement: str = "[REDACTED]"

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return value


class AgentOpsConfig(Model):
    enabled: bool = False
    api_key: str = ""
    endpoint: str = "https://api.agentops.ai"
    exporter_endpoint: str = "https://otlp.agentops.ai/v1/traces"
    tags: CommaList = ["opencell"]
    export_content: bool = True


class OTLPConfig(Model):
    endpoint: str = ""
    export_content: bool = False
    headers: dict[str, str] = {}


class ObservabilityConfig(Model):
    capture_content: bool = True
    redact: list[RedactRule] = []
    agentops: AgentOpsConfig = AgentOpsConfig()
    otlp: OTLPConfig = OTLPConfig()
    max_result_chars: int = Field(4000, ge=0)


class DashboardConfig(Model):
    host: str = "127.0.0.1"
    port: int = Field(8321, ge=0, le=65535)
    token: str = ""


class BudgetLimit(Model):
    scope: Literal["global", "bot", "user", "platform"]
    match: str | None = None
    """Which bot/user/platform this limit is for; empty = each one separately."""
    daily_usd: float | None = Field(None, gt=0)
    weekly_usd: float | None = Field(None, gt=0)
    monthly_usd: float | None = Field(None, gt=0)
    alert_at: list[float] = [0.8, 1.0]
    enforce: bool = False


class AlertsConfig(Model):
    webhooks: list[str] = []
    spike_factor: float = Field(3.0, gt=1)


class BudgetsConfig(Model):
    timezone: str = "UTC"
    """Where days, weeks (from Monday) and months start, e.g. ``Europe/Berlin``."""
    limits: list[BudgetLimit] = []
    alerts: AlertsConfig = AlertsConfig()
    blocked_message: str = ("Sorry, I've reached my usage budget for now, so I can't answer "
                            "this. Please try again later.")
    """What the user sees when an enforced limit blocks a model call."""
    unpriced: Literal["block", "allow"] = "block"
    """With enforcement on, a model without a known price is over budget (``block``) or let
    through uncounted (``allow``); never counted as free silently."""
    alert_channel: str | None = None
    """Also post alerts in a chat channel through a running bot: ``bot/platform/channel``,
    e.g. ``support/slack/C0123ABCD`` or ``support/discord/112233445566778899``."""

    @field_validator("alert_channel")
    @classmethod
    def _channel_spec(cls, value: str | None) -> str | None:
        if value is not None and (value.count("/") != 2 or not all(value.split("/"))):
            raise ValueError(f"'{value}' is not bot/platform/channel, e.g. "
                             "support/slack/C0123ABCD")
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"'{value}' is not a time zone; use e.g. UTC or Europe/Berlin"
                             ) from None
        return value


class OpenCellConfig(Model):
    """The global ``config/opencell.yaml``; every key optional."""

    store: StoreConfig = StoreConfig()
    observability: ObservabilityConfig = ObservabilityConfig()
    dashboard: DashboardConfig = DashboardConfig()
    budgets: BudgetsConfig = BudgetsConfig()
    pricing: str | None = None


GLOBAL_KEYS = frozenset(OpenCellConfig.model_fields)
BOT_KEYS = frozenset(BotConfig.model_fields)


# ---------------------------------------------------------------- loading


def load_bot(path: str | Path, env: Mapping[str, str] | None = None) -> BotConfig:
    """Load and validate one bot file; raise ``ConfigErrors`` with every located problem."""
    source = read_yaml(Path(path), os.environ if env is None else env)
    return _bot_from(source)


def _bot_from(source: YamlSource) -> BotConfig:
    bot = validate_source(source, BotConfig, "bot")
    bot._source = source.path
    bot._lines = source.lines
    _check_tools(bot, source)
    return bot


def load_bots(paths: Iterable[str | Path], env: Mapping[str, str] | None = None) -> list[BotConfig]:
    """Load several bot files; bot names must be unique across them."""
    bots: list[BotConfig] = []
    errors: list[ConfigError] = []
    seen: dict[str, Path] = {}
    for path in paths:
        try:
            bot = load_bot(path, env)
        except ConfigError as exc:
            errors.extend(_each(exc))
            continue
        duplicate = _claim_name(bot, Path(path), seen)
        if duplicate is not None:
            errors.append(duplicate)
            continue
        bots.append(bot)
    if errors:
        raise ConfigErrors(errors)
    return bots


def validate_files(paths: Iterable[str | Path], env: Mapping[str, str] | None = None
                   ) -> tuple[list[tuple[Path, BotConfig | OpenCellConfig | int]],
                              list[ConfigError]]:
    """``opencell validate``: each file's result (a pricing file gives its override count)
    and every located problem, bot names checked for uniqueness across the files."""
    results: list[tuple[Path, BotConfig | OpenCellConfig | int]] = []
    errors: list[ConfigError] = []
    seen: dict[str, Path] = {}
    for raw in paths:
        path = Path(raw)
        try:
            if path.name == "pricing.yaml":
                from opencell.llm.pricing import load_overrides

                results.append((path, len(load_overrides(path, env))))
                continue
            result = validate_file(path, env)
        except ConfigError as exc:
            errors.extend(_each(exc))
            continue
        duplicate = (_claim_name(result, path, seen) if isinstance(result, BotConfig)
                     else None)
        if duplicate is not None:
            errors.append(duplicate)
        else:
            results.append((path, result))
    return results, errors


def _each(exc: ConfigError) -> list[ConfigError]:
    return list(exc.errors) if isinstance(exc, ConfigErrors) else [exc]


def _claim_name(bot: BotConfig, path: Path, seen: dict[str, Path]) -> ConfigError | None:
    """Record ``bot``'s name; the located error if another file already uses it."""
    if bot.name in seen:
        return bot.locate(("name",), f"bot name '{bot.name}' is already used by "
                                     f"{seen[bot.name]}; names must be unique")
    seen[bot.name] = path
    return None


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


def kind_of(source: YamlSource) -> Literal["bot", "config"]:
    """Tell a bot file from a global config file by its top-level keys."""
    data = source.data
    if isinstance(data, dict) and data and not {"name", "llm", "type"} & set(data):
        return "config"
    return "bot"


def validate_file(path: str | Path, env: Mapping[str, str] | None = None
                  ) -> BotConfig | OpenCellConfig:
    """Validate a bot or config file (``opencell validate``)."""
    source = read_yaml(Path(path), os.environ if env is None else env)
    if kind_of(source) == "config":
        return validate_source(source, OpenCellConfig, "config")
    return _bot_from(source)


def validate_source(source: YamlSource, model: type[M], what: str) -> M:
    """Validate parsed YAML against ``model``; every problem becomes a located error."""
    if not isinstance(source.data, dict):
        found = type(source.data).__name__ if source.data is not None else "nothing"
        found = {"str": "plain text", "list": "a list"}.get(found, found)
        raise ConfigError(
            f"expected a mapping of {what} fields at the top level, found {found}; "
            f"is this a {what} YAML file?", file=str(source.path), line=1)
    try:
        return model.model_validate(source.data)
    except ValidationError as exc:
        located: dict[tuple[int | None, str | None], ConfigError] = {}
        for err in exc.errors():
            error = _located(source, model, err)
            # A union reports once per member; the first says it best.
            located.setdefault((error.line, error.field), error)
        raise ConfigErrors(list(located.values())) from None


def _located(source: YamlSource, model: type[BaseModel], err: Any) -> ConfigError:
    loc: tuple[str | int, ...] = tuple(p for p in err["loc"] if not _is_union_tag(p))
    kind = err["type"]
    if kind == "extra_forbidden":
        field = str(loc[-1])
        known = _known_fields(model, loc[:-1])
        message = f"unknown field '{field}'{suggest(field, known)}"
        if known:
            message += f"; allowed: {', '.join(sorted(known))}"
    elif kind == "missing":
        message = "required field is missing"
    elif kind == "literal_error":
        message = f"{_strip(err['msg'])}, got {err['input']!r}"
    else:
        message = _strip(err["msg"])
        if ("input" in err and not isinstance(err["input"], dict | list)
                and not _is_secret_field(loc) and repr(err["input"]) not in message):
            message += f" (got {err['input']!r})"
    return source.error(loc, message)


def _is_secret_field(loc: tuple[str | int, ...]) -> bool:
    """Never echo a token or key back in an error message."""
    name = str(loc[-1]).lower() if loc else ""
    return any(word in name for word in ("token", "key", "secret", "password"))


def _strip(msg: str) -> str:
    return msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")


_TAG_NAMES = {"int", "str", "float", "bool", "none", "list", "dict"}


def _is_union_tag(part: Any) -> bool:
    """Pydantic's union member tags in a loc (``int``, ``literal['auto']``, ``LLMConfig``)."""
    return isinstance(part, str) and (
        part[:1].isupper() or "[" in part or part.startswith("function-")
        or part in _TAG_NAMES)


def _known_fields(model: type[BaseModel], loc: tuple[str | int, ...]) -> list[str]:
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        field = current.model_fields.get(part) if hasattr(current, "model_fields") else None
        if field is None:
            return []
        current = _model_in(field.annotation)
        if current is None:
            return []
    return list(current.model_fields) if hasattr(current, "model_fields") else []


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    metadata_origin = getattr(annotation, "__origin__", None)
    if metadata_origin is not None and metadata_origin is not annotation:
        return _model_in(metadata_origin)
    return None


def _check_tools(bot: BotConfig, source: YamlSource) -> None:
    from opencell.tools.registry import check_tool_entry

    errors = []
    for index, entry in enumerate(bot.tools):
        for sub_loc, message in check_tool_entry(entry):
            errors.append(source.error(("tools", index, *sub_loc), message))
    if errors:
        raise ConfigErrors(errors)


__all__ = [
    "BotConfig", "OpenCellConfig", "LLMConfig", "ToolEntry", "MiddlewareEntry", "Duration",
    "load_bot", "load_bots", "load_config", "validate_file", "parse_duration", "parse_rate",
    "format_loc",
]
