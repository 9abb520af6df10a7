"""The Slack adapter: slack-bolt (async) over Socket Mode or HTTP, answering in threads."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import aiohttp
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from opencell.adapters._slack_errors import AUTH_ERRORS, NETWORK_ERRORS, error_code, post_error
from opencell.adapters._slack_events import (
    BotIdentity,
    RecentKeys,
    message_from_event,
    reaction_from_event,
    thread_follow_up,
)
from opencell.adapters._slack_format import slack_messages
from opencell.adapters._slack_signature import (
    REFUSED_BODY,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    malformed_signing,
)
from opencell.adapters._slack_socket import close_socket_mode, connect_socket
from opencell.adapters._slack_users import UserNames
from opencell.adapters._streaming import PiecewiseSurface
from opencell.adapters.base import Adapter
from opencell.config import BotConfig
from opencell.errors import MissingSecretError, PlatformError
from opencell.messages import ConversationKey, IncomingMessage, Reply
from opencell.types import Clock, Deliver

log = logging.getLogger("opencell.adapters.slack")


class _NoTokenNotes(logging.Filter):
    """Drops bolt's start-up note that it will not use ``SLACK_BOT_TOKEN``: bolt reads that
    variable by itself, while the token reaches it through ``authorize`` (per bot)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token`" not in record.getMessage()


bolt_log = logging.getLogger("opencell.adapters.slack.bolt")
bolt_log.addFilter(_NoTokenNotes())

DEFAULT_API = "https://slack.com/api/"
EVENT_TTL = 15 * 60.0
"""How long a delivery is remembered: Slack retries an event 3 times within about 5 minutes."""
SEEN_MAX = 20_000
STOP_GRACE = 5.0


STOPPING_BODY = '{"ok": false, "error": "stopping"}'


class SlackAdapter(Adapter):
    """One bot on one Slack workspace, through slack-bolt's async app.

    Socket Mode when ``app_token`` is set (no public URL needed); otherwise HTTP mode: an
    aiohttp server on ``host:port/path`` whose requests bolt verifies with the signing secret.
    Every event type is acknowledged (a listener-less type would get 404 and be retried by
    Slack). Slack's retries are dropped by ``event_id``, and a mention — which Slack delivers
    as both ``message`` and ``app_mention`` — is answered once, by (channel, ts).

    Bolt runs the listener before acknowledging; the listener only translates the event and
    starts a task for the turn, so the ack is immediate and conversations run concurrently
    (the runtime keeps each conversation in order). Replies go to the conversation's thread
    via ``chat.postMessage``, as mrkdwn, in pieces of at most 3,900 characters; ``ratelimited``
    answers are retried after their ``Retry-After``.
    """

    platform = "slack"
    shared = True

    def __init__(self, bot: BotConfig, *, clock: Clock = time.monotonic) -> None:
        super().__init__(bot)
        settings = bot.platforms.slack
        if settings is None:
            raise bot.locate(("platforms",), "has no slack: section; add one to run on Slack")
        if not settings.bot_token.strip():
            raise MissingSecretError("SLACK_BOT_TOKEN", bot=bot.name,
                                     purpose="platforms.slack.bot_token, the Bot User OAuth Token")
        self.settings = settings
        self.socket_mode = bool(settings.app_token and settings.app_token.strip())
        self.url: str | None = None
        """HTTP mode: where Slack should send events (the bound port, when port was 0)."""
        self.identity: BotIdentity | None = None
        self._events = RecentKeys(ttl=EVENT_TTL, max_size=SEEN_MAX, clock=clock)
        self._messages = RecentKeys(ttl=EVENT_TTL, max_size=SEEN_MAX, clock=clock)
        self._tasks: set[asyncio.Task[None]] = set()
        self._deliver: Deliver | None = None
        self._http: aiohttp.ClientSession | None = None
        self._client: AsyncWebClient | None = None
        self._users: UserNames | None = None
        self._runner: web.AppRunner | None = None
        self._socket: AsyncSocketModeHandler | None = None
        self._closing_socket: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ start and stop

    async def start(self, deliver: Deliver) -> None:
        """Check the token (``auth.test``), then connect (Socket Mode) or listen (HTTP)."""
        self._deliver = deliver
        base_url = self.settings.api_base_url or DEFAULT_API
        retries: list[AsyncRetryHandler] = [AsyncConnectionErrorRetryHandler(),
                                            AsyncRateLimitErrorRetryHandler(max_retry_count=3)]
        self._http = aiohttp.ClientSession()
        self._client = client = AsyncWebClient(
            token=self.settings.bot_token.strip(), base_url=base_url, session=self._http,
            retry_handlers=retries)
        self._users = UserNames(client, bot=self.bot.name)
        try:
            auth = await self._auth_test(client, base_url)
            # bolt gets its own token-less client and an authorize() that hands it this
            # auth.test answer; bolt's default would call auth.test itself on the first events
            # (once per event when several arrive together).
            bolt_client = AsyncWebClient(base_url=base_url, session=self._http,
                                         retry_handlers=retries)
            app = self._bolt_app(auth, bolt_client)
            if self.socket_mode:
                self._socket = await connect_socket(
                    app, client, base_url, (self.settings.app_token or "").strip(),
                    bot=self.bot.name, accepting=lambda: self.accepting)
            else:
                await self._serve_http(app)
        except BaseException:
            await self._close()
            raise
        me = self.identity
        log.info("slack ready bot=%s mode=%s team=%s bot_user=%s url=%s", self.bot.name,
                 "socket" if self.socket_mode else "http", me and me.team_id,
                 me and me.user_id, self.url or "-")

    def stop_accepting(self) -> None:
        """A graceful stop begins. HTTP mode answers new events 503 (Slack retries them, a
        load balancer elsewhere). Socket Mode closes this process's connection first, so
        Slack sends new events to the app's other connections; an envelope that still
        reaches this one is not acknowledged, so Slack delivers it again."""
        super().stop_accepting()
        if self._socket is not None:
            handler, self._socket = self._socket, None
            self._closing_socket = asyncio.create_task(close_socket_mode(handler),
                                                       name=f"slack-socket-{self.bot.name}")

    async def drain(self, timeout: float) -> bool:
        if self._closing_socket is not None:
            await asyncio.wait({self._closing_socket}, timeout=timeout)
        return await super().drain(timeout)

    async def stop(self) -> None:
        """Stop receiving, let turns already accepted finish (bounded), close connections."""
        await self._close()
        self.finished.set()

    async def _close(self) -> None:
        if self._socket is not None:
            handler, self._socket = self._socket, None
            await close_socket_mode(handler)
        if self._closing_socket is not None:
            await asyncio.gather(self._closing_socket, return_exceptions=True)
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=STOP_GRACE)
            for task in pending:
                task.cancel()
            if pending:
                log.warning("slack stop: cancelled %d unfinished turn(s) bot=%s",
                            len(pending), self.bot.name)
                await asyncio.gather(*pending, return_exceptions=True)
        if self._http is not None:
            http, self._http = self._http, None
            await http.close()

    async def _auth_test(self, client: AsyncWebClient, base_url: str) -> AuthorizeResult:
        try:
            response = await client.auth_test()
        except SlackApiError as exc:
            error = error_code(exc)
            if error in AUTH_ERRORS:
                raise PlatformError(
                    f"bot '{self.bot.name}': Slack rejected the bot token ({error}); set "
                    "SLACK_BOT_TOKEN to the app's Bot User OAuth Token (xoxb-…) and check "
                    "that the app is installed in the workspace") from None
            raise PlatformError(
                f"bot '{self.bot.name}': Slack auth.test failed ({error})") from None
        except NETWORK_ERRORS as exc:
            raise PlatformError(
                f"bot '{self.bot.name}': cannot reach the Slack Web API at {base_url} "
                f"({type(exc).__name__}: {exc})") from None
        self.identity = BotIdentity(user_id=str(response.get("user_id") or ""),
                                    bot_id=str(response.get("bot_id") or ""),
                                    team_id=str(response.get("team_id") or ""))
        return AuthorizeResult.from_auth_test_response(
            bot_token=self.settings.bot_token.strip(), auth_test_response=response)

    def _bolt_app(self, auth: AuthorizeResult, client: AsyncWebClient) -> AsyncApp:
        async def authorize() -> AuthorizeResult:
            return auth

        app = AsyncApp(
            client=client, authorize=authorize, name=f"opencell-{self.bot.name}",
            signing_secret=self.settings.signing_secret or "",
            request_verification_enabled=not self.socket_mode,
            # The listener only starts a task, so running it before the ack costs nothing
            # and keeps every task referenced by us rather than by bolt's ensure_future.
            process_before_response=True,
            logger=bolt_log)
        # One listener for every event type: each one Slack delivers is acknowledged.
        app.event(re.compile(".*"))(self._on_event)
        return app

    async def _serve_http(self, app: AsyncApp) -> None:
        async def events(request: web.Request) -> web.Response:
            if not self.accepting:  # stopping: Slack retries it (elsewhere, behind a balancer)
                log.info("slack event refused bot=%s reason=stopping action=slack_retries",
                         self.bot.name)
                return web.Response(status=503, headers={"Retry-After": "1"},
                                    text=STOPPING_BODY, content_type="application/json")
            raw = await request.read()
            headers = request.headers
            refused = malformed_signing(headers.getall(TIMESTAMP_HEADER, []),
                                        headers.getall(SIGNATURE_HEADER, []), raw)
            if refused is not None:
                log.info("slack request refused bot=%s reason=%s", self.bot.name, refused)
                return web.Response(status=401, text=REFUSED_BODY,
                                    content_type="application/json")
            bolt_request = AsyncBoltRequest(body=raw.decode("utf-8"),
                                            query=request.query_string,
                                            headers=dict(headers.items()))
            return await to_aiohttp_response(await app.async_dispatch(bolt_request))

        web_app = web.Application()
        web_app.router.add_post(self.settings.path, events)
        runner = web.AppRunner(web_app, access_log=None, handle_signals=False)
        await runner.setup()
        self._runner = runner
        host, port = self.settings.host, self.settings.port
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            raise PlatformError(
                f"bot '{self.bot.name}': cannot listen for Slack events on {host}:{port} "
                f"({exc.strerror or exc}); free the port or change platforms.slack.port"
            ) from None
        bound_host, bound_port = runner.addresses[0][:2]
        shown = f"[{bound_host}]" if ":" in str(bound_host) else bound_host
        self.url = f"http://{shown}:{bound_port}{self.settings.path}"

    # ------------------------------------------------------------ events in

    async def _on_event(self, body: dict[str, Any]) -> None:
        """Bolt's listener for every event: cheap checks, then the turn in its own task."""
        try:
            event_id = body.get("event_id")
            if isinstance(event_id, str) and not self._events.add(event_id):
                log.info("slack duplicate delivery ignored bot=%s event_id=%s",
                         self.bot.name, event_id)
                return
            if self.identity is None:
                return
            reaction = reaction_from_event(body)
            if reaction is not None:
                channel, ts, user, name, added = reaction
                if user != self.identity.user_id:
                    self._start(self.reacted(channel=channel, message_id=ts, user_id=user,
                                             reaction=name, added=added), f"reaction-{ts}")
                return
            message = message_from_event(body, bot=self.bot.name, settings=self.settings,
                                         me=self.identity)
            follow_up = False
            if message is None and self.feedback is not None:
                message = thread_follow_up(body, bot=self.bot.name, settings=self.settings,
                                           me=self.identity)
                follow_up = message is not None
            if message is None or not self._messages.add((message.key.channel,
                                                          message.message_id)):
                return
            work = self._follow_up(message) if follow_up else self._answer(message)
            self._start(work, message.message_id)
        except Exception:  # noqa: BLE001 - never fail the ack: Slack would retry the event
            log.exception("slack event dropped bot=%s", self.bot.name)

    def _start(self, work: Any, name: str) -> None:
        task = asyncio.create_task(work, name=f"slack-{self.bot.name}-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _follow_up(self, message: IncomingMessage) -> None:
        """A thread reply without a mention: answered if the bot answered this person in
        this thread before (``follow_threads``)."""
        book, key = self.feedback, message.key
        if book is not None and await book.took_part(
                bot=self.bot.name, platform=self.platform, channel=key.channel,
                thread=key.thread, user_id=key.user):
            await self._answer(message)

    async def _answer(self, message: IncomingMessage) -> None:
        deliver, users = self._deliver, self._users
        if deliver is None:
            return

        async def deliver_named(incoming: IncomingMessage) -> Reply | None:
            # The name lookup runs inside handle(), so a graceful stop waits for it too.
            if not incoming.user_name and users is not None:
                incoming = replace(incoming, user_name=await users.name(incoming.user_id))
            return await deliver(incoming)

        try:
            await self.handle(message, deliver_named)
        except Exception:  # noqa: BLE001 - one failed turn must not end the adapter
            log.exception("slack turn failed bot=%s conversation=%s", self.bot.name,
                          message.key)

    # ------------------------------------------------------------ replies out

    async def send(self, reply: Reply) -> list[str]:
        """Post ``reply`` in its conversation's thread (a DM's top level has none); returns
        the posted messages' ts."""
        if reply.key is None:
            raise PlatformError("a Slack reply needs the conversation it answers (Reply.key)")
        post = self._poster(reply.key)
        return [await post(index, text) for index, text in enumerate(slack_messages(reply.text))]

    def _poster(self, key: ConversationKey) -> Callable[[int, str], Awaitable[str]]:
        client = self._client
        if client is None:
            raise PlatformError(f"bot '{self.bot.name}': the Slack adapter is not started")
        channel, thread_ts = key.channel, key.thread or None

        async def post(index: int, text: str) -> str:
            try:
                answer = await client.chat_postMessage(channel=channel, text=text,
                                                       thread_ts=thread_ts)
            except SlackApiError as exc:
                raise post_error("chat.postMessage", channel, exc) from None
            return str(answer.get("ts") or "")

        return post

    def stream_surface(self, message: IncomingMessage) -> PiecewiseSurface[str] | None:
        """A streamed answer: ``chat.postMessage`` for the first piece, ``chat.update`` as
        it grows (the growing text converted to mrkdwn each time; ``ratelimited`` answers
        are retried after their ``Retry-After``), a new message past 3,900 characters."""
        client = self._client
        if client is None:
            return None
        channel = message.key.channel

        async def update(ts: str, text: str) -> None:
            try:
                await client.chat_update(channel=channel, ts=ts, text=text)
            except SlackApiError as exc:
                raise post_error("chat.update", channel, exc) from None

        return PiecewiseSurface(split=slack_messages, post=self._poster(message.key),
                                edit=update, ident=lambda ts: ts)
