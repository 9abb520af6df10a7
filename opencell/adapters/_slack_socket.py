"""Slack Socket Mode for the Slack adapter: the connection, opened and closed, and the acks.

An envelope is acknowledged after the adapter's listener took it on (bolt's
``process_before_response``). Once the adapter stops accepting (a graceful stop), an envelope
that still arrives is neither handled nor acknowledged, so Slack delivers it again, to another
connection of the app; the adapter closes its connection first, so Slack sends new events to
the others.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from opencell.adapters._slack_errors import AUTH_ERRORS, NETWORK_ERRORS, error_code
from opencell.errors import PlatformError

log = logging.getLogger("opencell.adapters.slack")

CONNECT_TIMEOUT = 30.0


class AcceptingHandler(AsyncSocketModeHandler):
    """Bolt's Socket Mode handler that leaves envelopes unacknowledged while ``accepting()``
    is false."""

    def __init__(self, app: AsyncApp, *, app_token: str, accepting: Callable[[], bool]
                 ) -> None:
        super().__init__(app, app_token=app_token, logger=app.logger)
        self.accepting = accepting

    async def handle(self, client: Any, req: Any) -> None:
        if not self.accepting():
            log.info("slack envelope left unacknowledged reason=stopping envelope_id=%s",
                     getattr(req, "envelope_id", ""))
            return
        await super().handle(client, req)


async def connect_socket(app: AsyncApp, client: AsyncWebClient, base_url: str,
                         app_token: str, *, bot: str,
                         accepting: Callable[[], bool]) -> AcceptingHandler:
    """Open a Socket Mode connection for ``app``; ``PlatformError`` saying what to fix."""
    # Opened here rather than by the handler: a bad app token is then one clear error
    # instead of the socket client's endless retry loop.
    try:
        opened = await client.apps_connections_open(app_token=app_token)
    except SlackApiError as exc:
        error = error_code(exc)
        hint = ("set SLACK_APP_TOKEN to an app-level token (xapp-…) with the "
                "connections:write scope, and turn Socket Mode on"
                if error in AUTH_ERRORS else "is Socket Mode turned on for the app?")
        raise PlatformError(f"bot '{bot}': Slack refused a Socket Mode "
                            f"connection ({error}); {hint}") from None
    except NETWORK_ERRORS as exc:
        raise PlatformError(
            f"bot '{bot}': cannot reach the Slack Web API at {base_url} "
            f"({type(exc).__name__}: {exc})") from None
    handler = AcceptingHandler(app, app_token=app_token, accepting=accepting)
    handler.client.wss_uri = str(opened["url"])
    try:
        await asyncio.wait_for(handler.connect_async(),  # type: ignore[no-untyped-call]
                               CONNECT_TIMEOUT)
    except TimeoutError:
        await close_socket_mode(handler)
        raise PlatformError(
            f"bot '{bot}': no Socket Mode connection to Slack within "
            f"{CONNECT_TIMEOUT:.0f}s") from None
    except BaseException:
        await close_socket_mode(handler)
        raise
    return handler


async def close_socket_mode(handler: AsyncSocketModeHandler) -> None:
    """Close the Socket Mode client and wait for the tasks its ``close`` only cancels, so
    none is left pending when the loop ends."""
    client = handler.client
    await handler.close_async()  # type: ignore[no-untyped-call]
    pending = [f for f in (client.message_processor, client.current_session_monitor,
                           client.message_receiver) if f is not None and not f.done()]
    if pending:
        await asyncio.wait(pending, timeout=1.0)
