"""A loopback fake of Discord (REST API and gateway websocket) for driving the real discord.py.

Point discord.py at it with two process-wide class attributes (``point_discord_py_at``, with a
``monkeypatch`` so they are restored)::

    discord.http.Route.BASE = fake.api_base                           # http://127.0.0.1:P/api/v10
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = fake.gateway   # ws://127.0.0.1:P/

What it serves (payloads from ``tests/data/discord/``, shaped like Discord's own):

* ``GET /users/@me`` and ``GET /oauth2/applications/@me`` (login), ``GET /gateway/bot``
  (``AutoShardedClient``), ``POST /channels/{id}/messages`` (logged in ``posts``, answered with
  a real-shaped message; over 2,000 characters → 400 / code 50035, as Discord does),
  ``POST /channels/{id}/typing`` (logged in ``typing``), ``PATCH /channels/{id}/messages/{m}``
  (edits, logged in ``edits``; ``contents`` holds each message's text now). Every request must carry
  ``Authorization: Bot <token>`` with the fake's ``token``, else 401 — which is how a test
  scripts "invalid token". ``rate_limit_posts(n)`` answers the next ``n`` message POSTs with a
  429 that discord.py honours (JSON ``retry_after`` and a ``Via`` header).
* The gateway, with Discord's sessions: HELLO, heartbeat ACKs, IDENTIFY → a new session
  (``sessions``) and READY + GUILD_CREATE (one guild with roles, two text channels and a thread;
  sent only to the shard the guild belongs to). ``await fake.dispatch("MESSAGE_CREATE",
  fake.message(...))`` gives an event to every session of the shard it belongs to (its guild's
  shard, ``(guild_id >> 22) % count``; a DM's is shard 0), each with its own sequence numbers
  (``fake.reaction(...)`` builds MESSAGE_REACTION_ADD/REMOVE payloads). A session whose
  connection closed with any code but 1000/1001 stays resumable and keeps its events; RESUME
  (logged in ``resumes``) with its id replays those after the client's sequence, then RESUMED;
  RESUME of an unknown or ended session gets op 9 (invalid session), as Discord does.
  ``drop_connections(code)`` scripts a disconnect; ``withhold_ready`` a gateway that never
  says READY. With ``refuse_privileged_intents`` the gateway closes with
  4014 when IDENTIFY asks for the Message Content intent, as Discord does when it is not
  enabled in the Developer Portal.

Responses carry ``Content-Type: application/json`` exactly (discord.py does not parse JSON
with a charset parameter). Run it in the test's loop (``async with FakeDiscord() as fake``) or
from a thread (``start_in_thread``) for CLI subprocess tests.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler

from tests.fakes._threaded import ServesInThread
from tests.fakes.waiting import WAIT, until

DATA = Path(__file__).resolve().parent.parent / "data" / "discord"
JSON = "application/json"  # exactly: discord.py rejects "application/json; charset=utf-8"

BOT_ID = "1100000000000000001"
GUILD_ID = "1200000000000000001"
GENERAL_ID = "1300000000000000001"
RANDOM_ID = "1300000000000000002"
THREAD_ID = "1400000000000000001"
BOT_ROLE_ID = "1700000000000000001"
DM_CHANNEL_ID = "1800000000000000001"
ALICE = {"id": "1500000000000000001", "username": "alice", "global_name": "Alice"}
OTHER_BOT = {"id": "1600000000000000001", "username": "helperbot", "global_name": None,
             "bot": True}

CHANNEL_TYPES = {GENERAL_ID: 0, RANDOM_ID: 0, THREAD_ID: 11}
"""Guild channels the fake's guild has, with their Discord channel type."""

MESSAGE_CONTENT_INTENT = 1 << 15


def load(name: str) -> dict[str, Any]:
    """One fixture payload from ``tests/data/discord/``, as a fresh dict."""
    data: dict[str, Any] = json.loads((DATA / name).read_text(encoding="utf-8"))
    return data


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None
          ) -> web.Response:
    return web.Response(body=json.dumps(data).encode(), status=status,
                        headers={"Content-Type": JSON, **(headers or {})})


@dataclass(frozen=True)
class Edited:
    """One edit of a message the bot sent (``PATCH /channels/{c}/messages/{m}``)."""

    channel_id: str
    message_id: str
    content: str
    at: float
    """``time.monotonic()`` when it arrived (benchmarks measure edit rates with it)."""


@dataclass(frozen=True)
class Posted:
    """One message the bot sent: the channel it went to and the JSON body discord.py built."""

    channel_id: str
    body: dict[str, Any]
    message_id: str = ""
    """The id the fake gave it (empty for a refused POST)."""

    @property
    def content(self) -> str:
        return str(self.body.get("content") or "")

    @property
    def reply_to(self) -> str | None:
        """The message id this one replies to (``message_reference``), if any."""
        reference = self.body.get("message_reference") or {}
        return str(reference["message_id"]) if reference.get("message_id") else None


@dataclass
class GatewaySession:
    """One gateway session (an IDENTIFY): its shard, and every event it was given, in order."""

    id: str
    shard: tuple[int, int]
    """(shard id, shard count), as IDENTIFY said; (0, 1) for an unsharded client."""
    frames: list[dict[str, Any]] = field(default_factory=list)
    """Every dispatch of this session, with its sequence number ``s``."""
    ws: web.WebSocketResponse | None = None
    """The connection holding it now (None: disconnected, resumable unless ``ended``)."""
    ended: bool = False
    """Closed with 1000/1001 by the client, or refused: it can no longer be resumed."""

    def takes(self, guild_id: str | None) -> bool:
        """Whether events of ``guild_id`` (None: a DM) go to this session's shard."""
        shard, count = self.shard
        return (int(guild_id) >> 22) % count == shard if guild_id else shard == 0


class FakeDiscord(ServesInThread):
    """Loopback Discord: REST under ``/api/v10`` and the gateway websocket at ``/``."""

    def __init__(self, *, token: str = "test-token", shards: int = 1) -> None:
        self.token = token
        self.shards = shards
        self.refuse_privileged_intents = False
        self.requests: list[tuple[str, str]] = []
        """``(method, path)`` of every REST request, in arrival order."""
        self.posts: list[Posted] = []
        self.typing: list[str] = []
        self.identifies: list[dict[str, Any]] = []
        self.resumes: list[dict[str, Any]] = []
        self.withhold_ready = False
        """Accept IDENTIFY but never send READY (a gateway that hangs)."""
        self.rate_limited: list[str] = []
        """Channel ids of message POSTs answered with 429."""
        self.post_latency = 0.0
        """Seconds each accepted message POST takes to answer (logged when it arrives)."""
        self.edits: list[Edited] = []
        """Every accepted message edit, in arrival order."""
        self.contents: dict[str, str] = {}
        """Each posted message's content now (after its edits), by message id."""
        self.post_times: list[float] = []
        """``time.monotonic()`` of each accepted POST (benchmarks)."""
        self.rejected: list[Posted] = []
        """Message POSTs refused with 400 / 50035 (content over 2,000 characters)."""
        self._rate_limit_left = 0
        self._retry_after = 0.05
        self._sockets: set[web.WebSocketResponse] = set()
        self.sessions: list[GatewaySession] = []
        self.hold_resumes: asyncio.Event | None = None
        """When set to an Event, a RESUME is answered only once it is set (a test's window in
        which events go to both a resumable session and a newer one of the same shard)."""
        self.resumes_waiting = 0
        """RESUMEs that have waited for ``hold_resumes``."""
        self._closed_here: set[web.WebSocketResponse] = set()
        """Every gateway session, in the order they were identified."""
        self._message_ids = itertools.count(1371000000000001000)
        self._sent_ids = itertools.count(1390000000000000001)
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ------------------------------------------------------------------ addresses

    @property
    def api_base(self) -> str:
        """What ``discord.http.Route.BASE`` (or ``OPENCELL_DISCORD_API_BASE``) should be."""
        return f"http://127.0.0.1:{self.port}/api/v10"

    @property
    def gateway(self) -> str:
        """What ``DiscordWebSocket.DEFAULT_GATEWAY`` should be (as a ``yarl.URL``)."""
        return f"ws://127.0.0.1:{self.port}/"

    # ------------------------------------------------------------------ scripting

    def rate_limit_posts(self, count: int = 1, retry_after: float = 0.05) -> None:
        """Answer the next ``count`` message POSTs with 429 and ``retry_after`` seconds."""
        self._rate_limit_left = count
        self._retry_after = retry_after

    def message(self, content: str = "hello there", *, channel: str = GENERAL_ID,
                author: dict[str, Any] | None = None, mention_bot: bool = True,
                reply_to_bot: str | None = None, message_id: str | None = None
                ) -> dict[str, Any]:
        """A MESSAGE_CREATE payload. ``mention_bot`` puts ``<@bot>`` first in the content (as
        the Discord client does) and the bot in ``mentions``; a ``channel`` that is not one of
        the guild's (``DM_CHANNEL_ID`` or any other id) makes it a DM; ``reply_to_bot`` makes
        it a reply to that message of the bot's."""
        dm = channel not in CHANNEL_TYPES
        data = load("message_create_dm.json" if dm else "message_create.json")
        data["id"] = message_id or str(next(self._message_ids))
        data["channel_id"] = channel
        data["channel_type"] = 1 if dm else CHANNEL_TYPES[channel]
        data["content"] = f"<@{BOT_ID}> {content}" if mention_bot else content
        if not mention_bot:
            data["mentions"] = []
        if author is not None:
            data["author"] = {**data["author"], "global_name": None, **author}
            data.get("member", {})["nick"] = None
        if reply_to_bot is not None:
            data["type"] = 19
            sent = load("message_sent.json")
            sent.update(id=reply_to_bot, channel_id=channel, content="an earlier answer")
            data["message_reference"] = {"type": 0, "channel_id": channel,
                                         "message_id": reply_to_bot}
            if not dm:
                data["message_reference"]["guild_id"] = GUILD_ID
            data["referenced_message"] = sent
        return data

    async def dispatch(self, event: str, data: dict[str, Any]) -> None:
        """Give one gateway dispatch (``op 0``) to every live session of its shard: sent
        now if the session is connected, kept for a RESUME otherwise."""
        guild = data.get("guild_id")
        for session in list(self.sessions):
            if not session.ended and session.takes(str(guild) if guild else None):
                await self._send(session, event, data)

    async def _send(self, session: GatewaySession, event: str, data: dict[str, Any]) -> None:
        frame = {"op": 0, "t": event, "s": len(session.frames) + 1, "d": data}
        session.frames.append(frame)
        if session.ws is not None and not session.ws.closed:
            await session.ws.send_str(json.dumps(frame))

    def connected(self, shard: int) -> GatewaySession | None:
        """The session of ``shard`` that has a connection now, if any."""
        return next((s for s in self.sessions
                     if s.shard[0] == shard and s.ws is not None and not s.ws.closed), None)

    async def drop_connections(self, code: int = 4000) -> None:
        """Close every gateway socket with ``code``: 4000 is resumable (discord.py
        reconnects and RESUMEs), 4004 and 4010-4014 are fatal."""
        for ws in list(self._sockets):
            self._closed_here.add(ws)
            await ws.close(code=code, message=b"closed by the test")

    async def wait_for_posts(self, count: int, timeout: float = WAIT) -> list[Posted]:
        """Wait until at least ``count`` messages were posted; returns them all."""
        await self._wait(lambda: len(self.posts) >= count, timeout,
                         f"{count} posted message(s)")
        return list(self.posts)

    async def wait_for_reply_to(self, message: dict[str, Any], timeout: float = WAIT
                                ) -> Posted:
        """Wait for the bot's reply to ``message`` (a payload from ``message()``).

        Send a marker message last in a conversation and wait for its reply: the adapter
        takes gateway events in order and answers one conversation in order, so anything
        the bot would (wrongly) post for the messages before it has been posted by then.
        """
        def replied() -> Posted | None:
            return next((p for p in self.posts if p.reply_to == message["id"]), None)

        await self._wait(lambda: replied() is not None, timeout,
                         f"the reply to {message['content']!r}")
        posted = replied()
        assert posted is not None
        return posted

    async def wait_connected(self, timeout: float = WAIT) -> None:
        """Wait until a client has identified on the gateway."""
        await self._wait(lambda: bool(self.identifies), timeout, "an IDENTIFY")

    async def _wait(self, done: Any, timeout: float, what: str) -> None:
        await until(done, f"the fake Discord to see {what}", timeout)

    # ------------------------------------------------------------------ REST

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/api/"):  # the gateway authenticates in IDENTIFY
            self.requests.append((request.method, request.path.removeprefix("/api/v10")))
            if request.headers.get("Authorization") != f"Bot {self.token}":
                return _json({"message": "401: Unauthorized", "code": 0}, 401)
        return await handler(request)

    async def _user_me(self, request: web.Request) -> web.Response:
        return _json(load("user_me.json"))

    async def _application(self, request: web.Request) -> web.Response:
        return _json(load("application.json"))

    async def _gateway_bot(self, request: web.Request) -> web.Response:
        data = load("gateway_bot.json")
        data["url"] = self.gateway
        data["shards"] = self.shards
        return _json(data)

    async def _gateway_plain(self, request: web.Request) -> web.Response:
        return _json({"url": self.gateway})

    async def _post_message(self, request: web.Request) -> web.Response:
        channel_id = request.match_info["channel_id"]
        if self._rate_limit_left > 0:
            self._rate_limit_left -= 1
            self.rate_limited.append(channel_id)
            return _json({"message": "You are being rate limited.",
                          "retry_after": self._retry_after, "global": False}, 429,
                         {"Via": "1.1 google", "Retry-After": "1",
                          "X-RateLimit-Scope": "user", "X-RateLimit-Limit": "5",
                          "X-RateLimit-Remaining": "0",
                          "X-RateLimit-Reset-After": str(self._retry_after),
                          "X-RateLimit-Bucket": "fake-bucket"})
        body = await request.json()
        if len(body.get("content") or "") > 2000:
            self.rejected.append(Posted(channel_id, body))
            return _json({"message": "Invalid Form Body", "code": 50035, "errors": {
                "content": {"_errors": [{"code": "BASE_TYPE_MAX_LENGTH",
                                         "message": "Must be 2000 or fewer in length."}]}}},
                         400)
        message_id = str(next(self._sent_ids))
        self.posts.append(Posted(channel_id, body, message_id))
        self.post_times.append(time.monotonic())
        self.contents[message_id] = str(body.get("content") or "")
        if self.post_latency:
            await asyncio.sleep(self.post_latency)
        sent = load("message_sent.json")
        sent.update(id=message_id, channel_id=channel_id, content=body.get("content", ""))
        if body.get("message_reference"):
            sent["message_reference"] = {"type": 0, "channel_id": channel_id,
                                         **body["message_reference"]}
        else:
            sent["type"] = 0
        # Discord's per-channel budget is 5 per 5 s; the fake never runs it down, but the
        # headers let discord.py send up to 5 at once, as it would against Discord.
        return _json(sent, headers={"Via": "1.1 google", "X-RateLimit-Bucket": "fake-bucket",
                                    "X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "4",
                                    "X-RateLimit-Reset-After": "5.000"})

    async def _edit_message(self, request: web.Request) -> web.Response:
        channel_id, message_id = request.match_info["channel_id"], request.match_info["id"]
        if message_id not in self.contents:
            return _json({"message": "Unknown Message", "code": 10008}, 404)
        body = await request.json()
        content = str(body.get("content") or "")
        if len(content) > 2000:
            self.rejected.append(Posted(channel_id, body, message_id))
            return _json({"message": "Invalid Form Body", "code": 50035}, 400)
        self.edits.append(Edited(channel_id, message_id, content, time.monotonic()))
        self.contents[message_id] = content
        sent = load("message_sent.json")
        sent.update(id=message_id, channel_id=channel_id, content=content, type=0,
                    edited_timestamp="2026-01-01T00:00:01.000000+00:00")
        return _json(sent, headers={"Via": "1.1 google", "X-RateLimit-Bucket": "fake-edit",
                                    "X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "4",
                                    "X-RateLimit-Reset-After": "5.000"})

    def reaction(self, message_id: str, emoji: str = "👍", *, channel: str = GENERAL_ID,
                 user: dict[str, Any] | None = None) -> dict[str, Any]:
        """A MESSAGE_REACTION_ADD / _REMOVE payload: ``user`` (default Alice) reacting with
        the unicode ``emoji`` on ``message_id``."""
        who = user or ALICE
        data: dict[str, Any] = {"user_id": who["id"], "channel_id": channel,
                                "message_id": message_id,
                                "emoji": {"id": None, "name": emoji}, "burst": False,
                                "type": 0}
        if channel in CHANNEL_TYPES:
            data["guild_id"] = GUILD_ID
        return data

    async def _typing(self, request: web.Request) -> web.Response:
        self.typing.append(request.match_info["channel_id"])
        return web.Response(status=204)

    async def _not_found(self, request: web.Request) -> web.Response:
        return _json({"message": "404: Not Found", "code": 0}, 404)

    # ------------------------------------------------------------------ gateway

    async def _gateway_socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.add(ws)
        try:
            await ws.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": 41250}}))
            async for frame in ws:
                if frame.type != aiohttp.WSMsgType.TEXT:
                    continue
                payload = json.loads(frame.data)
                op = payload.get("op")
                if op == 1:
                    await ws.send_str(json.dumps({"op": 11}))
                elif op == 2:
                    await self._identify(ws, payload["d"])
                elif op == 6:
                    await self._resume(ws, payload["d"])
        finally:
            self._sockets.discard(ws)
            for session in self.sessions:
                if session.ws is ws:
                    session.ws = None
                    # Discord ends a session its client closed with 1000 or 1001; any other
                    # close (or a lost connection, or one the server closed) leaves it
                    # resumable.
                    session.ended = (ws not in self._closed_here
                                     and ws.close_code in (1000, 1001))
            self._closed_here.discard(ws)
        return ws

    async def _resume(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
        if self.hold_resumes is not None:
            self.resumes_waiting += 1
            await self.hold_resumes.wait()
        session = next((s for s in self.sessions if s.id == data.get("session_id")), None)
        if session is None or session.ended or data.get("token") != self.token:
            self.resumes.append(data)
            await ws.send_str(json.dumps({"op": 9, "d": False}))  # invalid session
            return
        if session.ws is not None and not session.ws.closed:
            self._closed_here.add(session.ws)
            await session.ws.close(code=4009, message=b"Session taken over.")
        session.ws = ws
        self.resumes.append(data)
        after = int(data.get("seq") or 0)
        for frame in session.frames:  # what it missed, in order, then RESUMED
            if frame["s"] > after:
                await ws.send_str(json.dumps(frame))
        await self._send(session, "RESUMED", {})

    async def _identify(self, ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
        self.identifies.append(data)
        if data.get("token") != self.token:
            await ws.close(code=4004, message=b"Authentication failed.")
            return
        if self.refuse_privileged_intents and data.get("intents", 0) & MESSAGE_CONTENT_INTENT:
            await ws.close(code=4014, message=b"Disallowed intent(s).")
            return
        if self.withhold_ready:
            return
        shard = data.get("shard") or [0, 1]
        session = GatewaySession(uuid.uuid4().hex, (int(shard[0]), int(shard[1])), ws=ws)
        self.sessions.append(session)
        ready = load("ready.json")
        ready["session_id"] = session.id
        ready["resume_gateway_url"] = self.gateway
        if data.get("shard"):
            ready["shard"] = data["shard"]
        mine = session.takes(GUILD_ID)
        if not mine:
            ready["guilds"] = []
        await self._send(session, "READY", ready)
        if mine:
            await self._send(session, "GUILD_CREATE", copy.deepcopy(load("guild_create.json")))

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> FakeDiscord:
        """Serve on 127.0.0.1:0 in the running loop."""
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/", self._gateway_socket)
        app.router.add_get("/api/v10/users/@me", self._user_me)
        app.router.add_get("/api/v10/oauth2/applications/@me", self._application)
        app.router.add_get("/api/v10/gateway/bot", self._gateway_bot)
        app.router.add_get("/api/v10/gateway", self._gateway_plain)
        app.router.add_post("/api/v10/channels/{channel_id}/messages", self._post_message)
        app.router.add_post("/api/v10/channels/{channel_id}/typing", self._typing)
        app.router.add_patch("/api/v10/channels/{channel_id}/messages/{id}",
                             self._edit_message)
        app.router.add_route("*", "/api/{tail:.*}", self._not_found)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def close(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def start_in_thread(self) -> FakeDiscord:
        """Serve from a daemon thread with its own loop (for CLI subprocess tests)."""
        self._serve_in_thread("fake-discord")
        return self
