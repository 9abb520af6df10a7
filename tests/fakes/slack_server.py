"""A loopback fake of Slack: the Web API, the Socket Mode websocket, and signed Events API posts.

The real slack-sdk and slack-bolt inside OpenCell talk to it over HTTP and websockets, so
their request building, retries, Socket Mode acks and reconnects all run for real.

Web API (``/api/<method>``, GET or POST, query, JSON or form arguments, ``Authorization: Bearer``):
``auth.test``, ``chat.postMessage`` (kept in ``fake.posts``), ``users.info`` (names from
``fake.users``), ``apps.connections.open`` (returns ``ws://…/link/?ticket=N`` on this same
server); anything else answers ``unknown_method``. Every call is logged in ``fake.calls``.

Modes: ``fake.auth_error = "invalid_auth"`` makes ``auth.test`` fail;
``fake.ratelimit("chat.postMessage", retry_after=1)`` answers the next call of that method
with 429 + ``Retry-After`` (once per call to ``ratelimit``).

Socket Mode: each websocket gets ``hello``; ``send_envelope`` pushes an ``events_api``
envelope to the newest connection and ``wait_ack`` waits for the client's ack (all acks are
kept in ``fake.acks``); ``disconnect`` sends Slack's ``disconnect`` message, after which a
real client opens a new connection (``fake.connections`` counts them).

Events API (HTTP mode): ``post_event(url, body)`` signs the raw body the way Slack does —
``v0=hex(HMAC_SHA256(secret, "v0:{ts}:{body}"))`` — and posts it.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import itertools
import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import aiohttp
from aiohttp import web

from tests.fakes import waiting
from tests.fakes.waiting import WAIT

BOT_TOKEN = "xoxb-1111-2222-fakebottoken"
APP_TOKEN = "xapp-1-A0FAKEAPP-3333-fakeapptoken"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TEAM = "T0FAKETEAM"
BOT_USER = "U0FAKEBOT"
BOT_ID = "B0FAKEBOT"
APP_ID = "A0FAKEAPP"
DATA = Path(__file__).resolve().parent.parent / "data" / "slack"


@dataclass
class Call:
    """One Web API request as the fake received it."""

    method: str
    args: dict[str, Any]
    token: str
    at: float = field(default_factory=time.monotonic)


class FakeSlack:
    """Slack's Web API and Socket Mode on 127.0.0.1, one per test."""

    def __init__(self, *, users: Mapping[str, str] | None = None) -> None:
        self.users: dict[str, str] = dict(users or {})
        """user id → display name, for ``users.info``."""
        self.calls: list[Call] = []
        self.acks: list[dict[str, Any]] = []
        self.connections = 0
        self.auth_error: str | None = None
        self._ratelimits: dict[str, list[int]] = {}
        self._sockets: list[web.WebSocketResponse] = []
        self._ts = itertools.count(1)
        self.texts: dict[tuple[str, str], str] = {}
        """Each posted message's text now (after ``chat.update``), by (channel, ts)."""
        self.update_times: list[tuple[str, float]] = []
        """(ts, ``time.monotonic()``) of every accepted ``chat.update`` (benchmarks)."""
        self._runner: web.AppRunner | None = None
        self.port = 0

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> str:
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._web_api)
        app.router.add_get("/link/", self._socket_mode)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self.api_url

    async def close(self) -> None:
        for ws in self._sockets:
            await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeSlack:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    # ------------------------------------------------------------ what the client did

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    @property
    def posts(self) -> list[dict[str, Any]]:
        """The ``chat.postMessage`` calls that were answered ok, in order."""
        return [c.args for c in self.calls
                if c.method == "chat.postMessage" and c.args.get("_answered") == "ok"]

    async def wait_posts(self, n: int, timeout: float = WAIT) -> list[dict[str, Any]]:
        await until(lambda: len(self.posts) >= n, timeout, f"{n} chat.postMessage call(s)")
        return self.posts

    def ratelimit(self, method: str = "chat.postMessage", retry_after: int = 1) -> None:
        """Answer the next call of ``method`` with 429 and ``Retry-After``."""
        self._ratelimits.setdefault(method, []).append(retry_after)

    # ------------------------------------------------------------ Socket Mode

    async def wait_connections(self, n: int, timeout: float = WAIT) -> None:
        await until(lambda: self.connections >= n and self._open_socket() is not None,
                    timeout, f"{n} Socket Mode connection(s)")

    async def send_envelope(self, payload: Mapping[str, Any], *, kind: str = "events_api",
                            retry_attempt: int = 0) -> str:
        """Push one envelope to the newest connection; returns its ``envelope_id``."""
        ws = self._open_socket()
        if ws is None:
            raise AssertionError("no Socket Mode connection is open")
        envelope_id = str(uuid.uuid4())
        await ws.send_str(json.dumps({
            "envelope_id": envelope_id, "payload": payload, "type": kind,
            "accepts_response_payload": False, "retry_attempt": retry_attempt,
            "retry_reason": "timeout" if retry_attempt else ""}))
        return envelope_id

    async def wait_ack(self, envelope_id: str, timeout: float = WAIT) -> dict[str, Any]:
        await until(lambda: any(a.get("envelope_id") == envelope_id for a in self.acks),
                    timeout, f"the ack of envelope {envelope_id}")
        return next(a for a in self.acks if a.get("envelope_id") == envelope_id)

    async def disconnect(self, reason: str = "refresh_requested") -> None:
        """Slack's notice that this connection is going away (the client must reconnect)."""
        ws = self._open_socket()
        if ws is None:
            raise AssertionError("no Socket Mode connection is open")
        await ws.send_str(json.dumps({"type": "disconnect", "reason": reason,
                                      "debug_info": {"host": "fake-slack"}}))

    @property
    def open_connections(self) -> int:
        """Socket Mode connections open now."""
        return sum(1 for ws in self._sockets if not ws.closed)

    def _open_socket(self) -> web.WebSocketResponse | None:
        for ws in reversed(self._sockets):
            if not ws.closed:
                return ws
        return None

    async def _socket_mode(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        self._sockets.append(ws)
        self.connections += 1
        await ws.send_str(json.dumps({
            "type": "hello", "num_connections": 1,
            "debug_info": {"host": "fake-slack", "approximate_connection_time": 18060},
            "connection_info": {"app_id": APP_ID}}))
        async for message in ws:
            if message.type == aiohttp.WSMsgType.TEXT:
                data = json.loads(message.data)
                if "envelope_id" in data:
                    self.acks.append(data)
        return ws

    # ------------------------------------------------------------ Web API

    async def _web_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        args: dict[str, Any] = dict(request.query)
        raw = await request.text()
        if raw:
            if request.content_type == "application/json":
                args.update(json.loads(raw))
            else:
                args.update(parse_qsl(raw))
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else str(
            args.pop("token", ""))
        call = Call(method, args, token)
        self.calls.append(call)
        retry_afters = self._ratelimits.get(method)
        if retry_afters:
            wait = retry_afters.pop(0)
            args["_answered"] = "ratelimited"
            return web.json_response({"ok": False, "error": "ratelimited"}, status=429,
                                     headers={"Retry-After": str(wait)})
        body = self._answer(method, args, token)
        args["_answered"] = "ok" if body.get("ok") else str(body.get("error"))
        return web.json_response(body)

    def _answer(self, method: str, args: dict[str, Any], token: str) -> dict[str, Any]:
        if method == "apps.connections.open":
            if token != APP_TOKEN:
                return {"ok": False, "error": "invalid_auth"}
            ticket = uuid.uuid4()
            return {"ok": True, "url": f"ws://127.0.0.1:{self.port}/link/?ticket={ticket}"}
        if not token:
            return {"ok": False, "error": "not_authed"}
        if token != BOT_TOKEN or (method == "auth.test" and self.auth_error):
            return {"ok": False, "error": self.auth_error or "invalid_auth"}
        if method == "auth.test":
            return {"ok": True, "url": "https://fake-team.slack.com/", "team": "Fake Team",
                    "user": "opencell", "team_id": TEAM, "user_id": BOT_USER,
                    "bot_id": BOT_ID, "is_enterprise_install": False}
        if method == "chat.update":
            key = (str(args.get("channel")), str(args.get("ts")))
            if key not in self.texts:
                return {"ok": False, "error": "message_not_found"}
            self.texts[key] = str(args.get("text") or "")
            self.update_times.append((key[1], time.monotonic()))
            return {"ok": True, "channel": key[0], "ts": key[1], "text": self.texts[key]}
        if method == "chat.postMessage":
            ts = f"{1_800_000_000 + next(self._ts)}.000100"
            self.texts[(str(args.get("channel")), ts)] = str(args.get("text") or "")
            args["_ts"] = ts
            return {"ok": True, "channel": args.get("channel"), "ts": ts,
                    "message": {"type": "message", "text": args.get("text"), "user": BOT_USER,
                                "bot_id": BOT_ID, "ts": ts}}
        if method == "users.info":
            user = str(args.get("user"))
            if user not in self.users:
                return {"ok": False, "error": "user_not_found"}
            name = self.users[user]
            return {"ok": True, "user": {"id": user, "team_id": TEAM, "name": name.lower(),
                                         "profile": {"display_name": name, "real_name": name}}}
        return {"ok": False, "error": "unknown_method"}


# ------------------------------------------------------------ Events API (HTTP mode)


def signature(secret: str, timestamp: int | str, body: str) -> str:
    """Slack's request signature: ``v0=hex(HMAC_SHA256(secret, "v0:{ts}:{body}"))``."""
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


async def post_event(url: str, body: Mapping[str, Any] | str, *,
                     secret: str = SIGNING_SECRET, timestamp: int | None = None,
                     retry_num: int | None = None, signed_body: str | None = None
                     ) -> tuple[int, str]:
    """POST an Events API request as Slack does; returns (status, response text).

    ``signed_body`` signs a different body than the one sent (a tampered request).
    """
    raw = body if isinstance(body, str) else json.dumps(body)
    ts = int(time.time()) if timestamp is None else timestamp
    headers = {"Content-Type": "application/json", "X-Slack-Request-Timestamp": str(ts),
               "X-Slack-Signature": signature(secret, ts, raw if signed_body is None
                                              else signed_body)}
    if retry_num is not None:
        headers["X-Slack-Retry-Num"] = str(retry_num)
        headers["X-Slack-Retry-Reason"] = "http_timeout"
    async with aiohttp.ClientSession() as session, session.post(
            url, data=raw.encode(), headers=headers) as response:
        return response.status, await response.text()


# ------------------------------------------------------------ payload fixtures

_event_ids = itertools.count(1)
_message_ts = itertools.count(1)


def event(name: str, **changes: Any) -> dict[str, Any]:
    """The event_callback body in ``tests/data/slack/<name>.json`` with a fresh ``event_id``
    and message ``ts`` (so two calls are two messages), then ``changes`` applied to
    ``body["event"]`` (``None`` removes a key)."""
    body: dict[str, Any] = json.loads((DATA / f"{name}.json").read_text())
    body["event_id"] = f"Ev0TEST{next(_event_ids):06d}"
    inner = body.get("event", {})
    if "ts" in inner:
        ts = f"{1_700_000_000 + next(_message_ts)}.000200"
        inner["ts"] = ts
        if "event_ts" in inner:
            inner["event_ts"] = ts
    for key, value in changes.items():
        if value is None:
            inner.pop(key, None)
        else:
            inner[key] = value
    return body


def reaction_event(ts: str, name: str = "+1", *, added: bool = True,
                   channel: str = "C0GENERAL", user: str = "U0ALICE") -> dict[str, Any]:
    """A ``reaction_added`` / ``reaction_removed`` body: ``user`` reacting with ``:name:``
    on the message ``ts`` in ``channel`` (a message of the bot's, as Slack sends it)."""
    return event("reaction_added", type="reaction_added" if added else "reaction_removed",
                 user=user, reaction=name, item={"type": "message", "channel": channel,
                                                 "ts": ts})


def twin(body: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """The same user message as another event type (Slack's ``message`` + ``app_mention``
    pair): same channel, ts and text, its own ``event_id``."""
    other = copy.deepcopy(dict(body))
    other["event_id"] = f"Ev0TEST{next(_event_ids):06d}"
    other["event"]["type"] = kind
    if kind == "app_mention":
        other["event"].pop("channel_type", None)
    else:
        other["event"]["channel_type"] = "channel"
    return other


async def until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """``tests.fakes.waiting.until`` in this module's argument order, kept for its callers;
    ``timeout`` is at least ``WAIT``: a deadline only stops a broken test from hanging."""
    await waiting.until(predicate, what, max(timeout, WAIT))
