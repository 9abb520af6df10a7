"""Slack Web API errors as one short code (``invalid_auth``, ``ratelimited``, ``HTTP 405`` …)."""

from __future__ import annotations

import aiohttp
from slack_sdk.errors import SlackApiError

from opencell.errors import PlatformError

AUTH_ERRORS = frozenset({"invalid_auth", "not_authed", "account_inactive", "token_revoked",
                         "token_expired", "not_allowed_token_type", "missing_scope"})
"""Errors that mean the token is wrong, not Slack."""
NETWORK_ERRORS = (aiohttp.ClientError, TimeoutError, OSError)


def error_code(exc: SlackApiError) -> str:
    """The ``error`` field of a failed call, or its HTTP status when the body was not JSON."""
    response = exc.response
    data = getattr(response, "data", None)
    if isinstance(data, dict) and data.get("error"):
        return str(data["error"])
    status = getattr(response, "status_code", None)
    return f"HTTP {status}" if status else "unknown_error"


POST_HINTS = {
    "not_in_channel": "invite the bot to the channel (/invite @bot)",
    "channel_not_found": "the bot cannot see this channel; invite it or check the channel id",
    "missing_scope": "add the chat:write scope and reinstall the app",
    "ratelimited": "Slack kept rate-limiting after retries",
    "msg_too_long": "the message is too long for Slack",
}


def post_error(method: str, channel: str, exc: SlackApiError) -> PlatformError:
    """The error for a failed post or update, with what to do about it."""
    error = error_code(exc)
    hint = POST_HINTS.get(error, f"see Slack's {method} errors")
    return PlatformError(f"{method} to {channel} failed ({error}): {hint}")
