"""Slack Web API errors as one short code (``invalid_auth``, ``ratelimited``, ``HTTP 405`` …)."""

from __future__ import annotations

from slack_sdk.errors import SlackApiError


def error_code(exc: SlackApiError) -> str:
    """The ``error`` field of a failed call, or its HTTP status when the body was not JSON."""
    response = exc.response
    data = getattr(response, "data", None)
    if isinstance(data, dict) and data.get("error"):
        return str(data["error"])
    status = getattr(response, "status_code", None)
    return f"HTTP {status}" if status else "unknown_error"
