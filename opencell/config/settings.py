"""Config models for the global ``config/opencell.yaml``."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Field,
    field_validator,
)

from opencell.config.fields import CommaList, Duration, Model, parse_duration


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


def _window(value: Any) -> float | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("never", "")):
        return None
    return parse_duration(value)


RetentionWindow = Annotated[float | None, BeforeValidator(_window)]
"""A retention window: a duration (``30d``, ``12h``) or ``never``."""


class RetentionConfig(Model):
    """How long the store keeps events and their content (see README, "Data lifecycle")."""

    enabled: bool = True
    events: RetentionWindow = 90 * 86400.0
    """Events older than this are deleted (sessions and cost rollups are kept)."""
    content: RetentionWindow = 30 * 86400.0
    """Message text, tool arguments/results, error context and custom data older than
    this are removed; lengths, tokens and costs stay."""
    exporter_grace: Duration = 7 * 86400.0
    """How long past the window an exporter's undelivered events are still kept."""
    interval: Duration = 600.0
    """How often the background pruner runs."""
    batch_rows: int = Field(2000, ge=10, le=100_000)
    """Rows per pruning transaction (each is short; the pruner pauses between them)."""

    @field_validator("events")
    @classmethod
    def _long_enough(cls, value: float | None) -> float | None:
        if value is not None and value < 32 * 86400.0:
            raise ValueError("events must be kept at least 32d: budgets read the first and "
                             "last day of a month from them (content can expire sooner)")
        return value

    @field_validator("content")
    @classmethod
    def _content_window(cls, value: float | None) -> float | None:
        if value is not None and value < 3600.0:
            raise ValueError("content must be kept at least 1h (or use capture_content: "
                             "false to store none)")
        return value


class ObservabilityConfig(Model):
    capture_content: bool = True
    redact: list[RedactRule] = []
    agentops: AgentOpsConfig = AgentOpsConfig()
    otlp: OTLPConfig = OTLPConfig()
    retention: RetentionConfig = RetentionConfig()
    max_result_chars: int = Field(4000, ge=0)
    max_message_chars: int = Field(100_000, ge=1)
    """Characters of message text (input, reply, prompt, completion) kept per stored field;
    longer text is cut and ends with a visible truncation marker."""


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
