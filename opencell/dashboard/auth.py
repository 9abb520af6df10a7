"""Who may see the dashboard: loopback by default, a token for anything else, never a token in logs.

The rule (DESIGN §3): the dashboard binds 127.0.0.1 unless told otherwise; bound to any other
address it refuses to start without ``OPENCELL_DASHBOARD_TOKEN`` (or ``dashboard.token``).
With a token, every request — pages, API, stream, metrics, health, static files — must carry
it: an ``Authorization: Bearer <token>`` header, or the cookie a browser gets by opening any
page once with ``?token=<token>`` (it is then redirected to the same address without it, so
the token leaves the address bar and history). Comparisons are constant-time. Without a token
only loopback ``Host`` headers are served, so a web page cannot reach the dashboard through
DNS rebinding.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import ipaddress
import json
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode

from opencell.dashboard.security_headers import path_location
from opencell.errors import ConfigError

TOKEN_VARIABLE = "OPENCELL_DASHBOARD_TOKEN"
COOKIE = "opencell_dashboard"
MIN_TOKEN_CHARS = 16

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("opencell.dashboard")

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
_TOKEN_IN_TEXT = re.compile(r"(token=)[^&\s\"']*", re.IGNORECASE)


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 possibly in brackets) is this machine only."""
    name = host.strip().strip("[]").lower()
    if name in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to serve beyond loopback without a token (a ``ConfigError`` naming the variable)."""
    if is_loopback(host):
        return
    if not token:
        raise ConfigError(
            f"refusing to serve the dashboard on {host} without a token: anyone who can reach "
            f"it could read every conversation. Set {TOKEN_VARIABLE} (or dashboard.token in "
            "config/opencell.yaml) to a long random secret, e.g. the output of "
            "`python -c \"import secrets; print(secrets.token_urlsafe(32))\"`, "
            "or bind 127.0.0.1", field="dashboard.host")
    if len(token) < MIN_TOKEN_CHARS:
        log.warning("dashboard token is short chars=%d advice=use_at_least_%d_random_chars",
                    len(token), MIN_TOKEN_CHARS)


def redact_token(text: str) -> str:
    """``text`` with any ``token=…`` query value replaced by ``***``."""
    return _TOKEN_IN_TEXT.sub(r"\1***", text)


class TokenRedactingFilter(logging.Filter):
    """Rewrites log records (uvicorn's access log) so a ``?token=`` value never reaches a log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(redact_token(a) if isinstance(a, str) else a
                                for a in record.args)
        if isinstance(record.msg, str) and "token=" in record.msg.lower():
            record.msg = redact_token(record.msg)
        return True


def install_log_redaction() -> None:
    """Add the filter to uvicorn's loggers (idempotent)."""
    for name in ("uvicorn.access", "uvicorn.error", "uvicorn"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, TokenRedactingFilter) for f in logger.filters):
            logger.addFilter(TokenRedactingFilter())


class AccessGate:
    """ASGI middleware enforcing the rule above on every HTTP request."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.token = token.encode() if token else None
        self.cookie_value = (hmac.new(self.token, b"opencell-dashboard-cookie-v1",
                                      hashlib.sha256).hexdigest() if self.token else "")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":  # e.g. a websocket: no route serves one, refuse it
            await send({"type": "websocket.close", "code": 1008})
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        if self.token is None:
            host = headers.get("host", "")
            if not is_loopback(_host_name(host)):
                await _deny(send, scope, 403, "this dashboard only answers to localhost; "
                            "open it as http://127.0.0.1:PORT/")
                return
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"").decode("latin-1")
        pairs = parse_qsl(query, keep_blank_values=True)
        offered = [v for k, v in pairs if k == "token"]
        if offered and self._same(offered[-1].encode()):
            if scope.get("method") == "GET" and "text/html" in headers.get("accept", ""):
                await self._redirect_without_token(scope, send, pairs)
                return
            await self.app(scope, receive, send)
            return
        if self._authorised(headers):
            await self.app(scope, receive, send)
            return
        await _deny(send, scope, 401, "a dashboard token is required: send "
                    "'Authorization: Bearer <token>', or open any page once with ?token=<token>")

    def _same(self, offered: bytes) -> bool:
        if self.token is None:
            return False
        return hmac.compare_digest(hashlib.sha256(offered).digest(),
                                   hashlib.sha256(self.token).digest())

    def _authorised(self, headers: dict[str, str]) -> bool:
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer " and self._same(auth[7:].strip().encode()):
            return True
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # noqa: BLE001 - a malformed cookie header is just no cookie
            return False
        morsel = cookie.get(COOKIE)
        return morsel is not None and hmac.compare_digest(morsel.value.encode(),
                                                          self.cookie_value.encode())

    async def _redirect_without_token(self, scope: Scope, send: Send,
                                      pairs: list[tuple[str, str]]) -> None:
        rest = urlencode([(k, v) for k, v in pairs if k != "token"])
        # Encoded and collapsed: "/\\evil.example" or "//evil.example" must stay on this site.
        location = path_location(scope.get("root_path", "") + scope["path"], rest)
        cookie = (f"{COOKIE}={self.cookie_value}; Path=/; HttpOnly; SameSite=Strict; "
                  "Max-Age=2592000")
        await send({"type": "http.response.start", "status": 303, "headers": [
            (b"location", location.encode("latin-1", "replace")),
            (b"set-cookie", cookie.encode()), (b"cache-control", b"no-store"),
            (b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})


def _host_name(host_header: str) -> str:
    if host_header.startswith("["):
        return host_header[1:host_header.find("]")] if "]" in host_header else host_header
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


async def _deny(send: Send, scope: Scope, status: int, message: str) -> None:
    wants_html = scope["path"] in ("/", "") or not scope["path"].startswith(
        ("/api", "/metrics", "/healthz", "/static"))
    if wants_html:
        # No inline style: the page must satisfy the dashboard's CSP (security_headers.py).
        body = (f"<!doctype html><meta charset=utf-8><title>OpenCell — {status}</title>"
                f"<body><h1>{status}</h1><p>{html.escape(message)}</p>").encode()
        kind = b"text/html; charset=utf-8"
    else:
        body = json.dumps({"detail": message}).encode()
        kind = b"application/json"
    headers = [(b"content-type", kind), (b"content-length", str(len(body)).encode()),
               (b"cache-control", b"no-store")]
    if status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="opencell"'))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
