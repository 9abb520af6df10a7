"""The built-in tools a bot YAML can name: ``current_time``, ``calculator`` and ``http_get``."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from opencell.config import Duration
from opencell.errors import (
    ToolArgumentsError,
    ToolExecutionError,
    ToolNotAllowedError,
    ToolTimeoutError,
)
from opencell.tools._calc import CalculatorError, Number, evaluate
from opencell.tools.registry import Tool, ToolContext, tool

MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


def _zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone '{name}'; use an IANA name such as UTC, "
                         "Europe/Paris or America/New_York") from None
    return name


@tool
def current_time(timezone: Annotated[str, AfterValidator(_zone)] = "UTC") -> str:
    """The current date and time, in ISO 8601 with the weekday.

    Args:
        timezone: IANA timezone name, e.g. Europe/Paris or America/New_York. Defaults to UTC.
    """
    now = datetime.now(UTC).astimezone(ZoneInfo(timezone))
    return f"{now.isoformat(timespec='seconds')} ({now.strftime('%A')}, {timezone})"


@tool
def calculator(expression: str) -> Number:
    """Evaluate an arithmetic expression, e.g. (3 + 4) * 2 ** 10 / 7.

    Args:
        expression: Numbers with + - * / // % ** and parentheses; functions sqrt, abs, round,
            min, max, floor, ceil, log, ln, log10, log2, exp, sin, cos, tan; constants pi, e.
    """
    try:
        return evaluate(expression)
    except CalculatorError as exc:
        raise ToolArgumentsError(f"calculator: {exc}", tool="calculator") from None


class HttpGetOptions(BaseModel):
    """Options of ``http_get`` in the bot YAML."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allow_hosts: list[str] = Field(
        min_length=1,
        description="the hosts it may fetch, e.g. allow_hosts: [status.example.com] "
                    "(*.example.com allows every subdomain)")
    max_bytes: int = Field(100_000, gt=0, le=10_000_000)
    timeout: Duration = 10.0

    @field_validator("allow_hosts")
    @classmethod
    def _hosts(cls, hosts: list[str]) -> list[str]:
        out = []
        for host in hosts:
            plain = host.strip().lower().rstrip(".")
            bare = plain.removeprefix("*.")
            if "*" in bare or not bare or any(c in bare for c in "/:@ ?#"):
                raise ValueError(f"'{host}' is not a host; write only the host name, like "
                                 "status.example.com or *.example.com (no scheme, port or path)")
            out.append(plain)
        return out


def host_allowed(host: str, patterns: list[str]) -> bool:
    """Whether ``host`` is one of ``patterns`` (``*.example.com`` matches its subdomains)."""
    host = host.lower().rstrip(".")
    for pattern in patterns:
        if pattern.startswith("*."):
            if host.endswith(pattern[1:]):
                return True
        elif host == pattern:
            return True
    return False


@tool(options=HttpGetOptions)
async def http_get(url: str, ctx: ToolContext) -> dict[str, Any]:
    """Fetch a web page or API over HTTP(S) GET and return its status, content type and text.

    Only the hosts this bot is configured for can be fetched; long bodies are truncated.

    Args:
        url: The full http:// or https:// URL to fetch.
    """
    options = ctx.options_as(HttpGetOptions)
    name = ctx.tool or "http_get"
    target = _checked_url(url, options, name)
    try:
        async with asyncio.timeout(options.timeout), httpx.AsyncClient(
                trust_env=False, follow_redirects=False,
                timeout=httpx.Timeout(options.timeout)) as client:
            for _ in range(MAX_REDIRECTS + 1):
                async with client.stream("GET", target) as response:
                    location = response.headers.get("location")
                    if response.status_code in _REDIRECTS and location:
                        target = _checked_url(str(response.url.join(location)), options, name)
                        continue
                    return await _read(response, options.max_bytes)
    except (TimeoutError, httpx.TimeoutException):
        raise ToolTimeoutError(f"{url} did not answer within {options.timeout:g}s",
                               tool=name) from None
    raise ToolExecutionError(f"{url} redirected more than {MAX_REDIRECTS} times", tool=name)


def _checked_url(url: str, options: HttpGetOptions, name: str) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ToolArgumentsError(f"'{url}' is not a valid URL: {exc}", tool=name) from None
    if parsed.scheme not in ("http", "https"):
        raise ToolNotAllowedError(f"only http and https URLs can be fetched, not "
                                  f"'{parsed.scheme or url}'", tool=name)
    if not parsed.host:
        raise ToolArgumentsError(f"'{url}' has no host", tool=name)
    if not host_allowed(parsed.host, options.allow_hosts):
        raise ToolNotAllowedError(
            f"host '{parsed.host}' is not allowed for {name}; to allow it, add it to "
            f"allow_hosts of {name} in the bot's YAML (allowed now: "
            f"{', '.join(options.allow_hosts)})", tool=name)
    return parsed


async def _read(response: httpx.Response, max_bytes: int) -> dict[str, Any]:
    body = bytearray()
    truncated = False
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > max_bytes:
            del body[max_bytes:]
            truncated = True
            break
    try:
        text = bytes(body).decode(response.encoding or "utf-8", errors="replace")
    except LookupError:  # the server named a charset Python does not know
        text = bytes(body).decode("utf-8", errors="replace")
    if truncated:
        text += f"\n[truncated: the body is longer than max_bytes={max_bytes} bytes]"
    return {"url": str(response.url), "status": response.status_code,
            "content_type": response.headers.get("content-type", ""), "text": text,
            "truncated": truncated}


BUILTINS: dict[str, Tool] = {t.name: t for t in (current_time, calculator, http_get)}
"""The built-in tools a bot YAML can name, by name."""
