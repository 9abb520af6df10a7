"""Display names of Slack users, looked up once each with ``users.info`` and kept (bounded)."""

from __future__ import annotations

import asyncio
import logging

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from opencell.adapters._slack_errors import error_code

log = logging.getLogger("opencell.adapters.slack")


class UserNames:
    """``users.info`` with a bounded cache; the user id stands in when the name is unknown.

    Needs the ``users:read`` scope. Without it the first ``missing_scope`` answer turns the
    look-ups off for good (one log line), so a bot without the scope still answers promptly.
    """

    def __init__(self, client: AsyncWebClient, *, bot: str, max_size: int = 10_000) -> None:
        self._client = client
        self._bot = bot
        self._max_size = max_size
        self._names: dict[str, str] = {}
        self._enabled = True
        self._asking: dict[str, asyncio.Future[str]] = {}

    async def name(self, user_id: str) -> str:
        """The user's display name. Concurrent look-ups of one user share one request, and
        their callers resume in the order they asked, so a conversation's messages reach the
        runtime in the order Slack sent them."""
        cached = self._names.get(user_id)
        if cached is not None:
            return cached
        if not self._enabled:
            return user_id
        asking = self._asking.get(user_id)
        if asking is not None:
            return await asyncio.shield(asking)
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._asking[user_id] = future
        try:
            name = await self._look_up(user_id)
        except BaseException:
            future.set_result(user_id)
            raise
        finally:
            del self._asking[user_id]
        future.set_result(name)
        return name

    async def _look_up(self, user_id: str) -> str:
        name = user_id
        try:
            response = await self._client.users_info(user=user_id)
            user = response.get("user") or {}
            profile = user.get("profile") or {}
            name = (profile.get("display_name") or profile.get("real_name")
                    or user.get("name") or user_id)
        except SlackApiError as exc:
            error = error_code(exc)
            if error in ("missing_scope", "not_allowed_token_type"):
                self._enabled = False
                log.info("slack user names off bot=%s reason=%s hint='add the users:read scope'",
                         self._bot, error)
            else:
                log.debug("slack users.info failed bot=%s user=%s error=%s",
                          self._bot, user_id, error)
            return name
        except Exception as exc:  # noqa: BLE001 - a missing name must never fail a turn
            log.debug("slack users.info failed bot=%s user=%s error=%s",
                      self._bot, user_id, type(exc).__name__)
            return name
        if len(self._names) >= self._max_size:
            del self._names[next(iter(self._names))]
        self._names[user_id] = str(name)
        return str(name)
