"""Security headers on every dashboard response, and every redirect kept to a path on this origin.

The policy the pages are built to satisfy: scripts and styles only from ``/static`` (no inline
``<script>``, ``<style>`` or ``style=""``; JSON data blocks are not scripts), images from here
or ``data:`` (the favicon), fetches and live streams only to this origin, no plugins, no
``<base>``, forms only to here, and no framing at all (``frame-ancestors 'none'`` plus
``X-Frame-Options`` for old browsers). The wrapper sits outside the access gate, so its refusals
carry the headers too.

A ``Location`` header is reduced to a path (and query) on this origin whoever set it — the
token gate or Starlette's trailing-slash redirect, which would otherwise echo the ``Host``
header — and the path can never start like ``//host`` or ``/\\host``, which browsers follow
off-site.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import quote, urlsplit

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'none'", "script-src 'self'", "style-src 'self'", "img-src 'self' data:",
    "connect-src 'self'", "font-src 'self'", "form-action 'self'", "base-uri 'none'",
    "object-src 'none'", "frame-ancestors 'none'"])

HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
_OURS = {name for name, _ in HEADERS}

# Characters left as they are in a path or query already in URL form; anything else
# (backslash, whitespace, controls, non-ASCII) is percent-encoded.
_PATH_SAFE = "/%!$&'()*+,;=:@~-._"
_QUERY_SAFE = _PATH_SAFE + "?"


def same_origin_location(location: str) -> str:
    """``location`` as a relative reference to a path on this origin.

    Scheme and host are dropped; leading slashes, backslashes and whitespace collapse to one
    ``/``; unsafe characters are percent-encoded. ``"/\\\\evil.example?a=1"`` →
    ``"/evil.example?a=1"``, ``"http://127.0.0.1:8321/sessions"`` → ``"/sessions"``.
    """
    # Browsers treat "\" as "/" and drop tabs and newlines before parsing; do the same first
    # so urlsplit sees what a browser would.
    cleaned = "".join(ch for ch in location.replace("\\", "/") if ch not in "\t\r\n")
    parts = urlsplit(cleaned)
    path = "/" + parts.path.lstrip("/ \x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c")
    target = quote(path, safe=_PATH_SAFE)
    if parts.query:
        target += "?" + quote(parts.query, safe=_QUERY_SAFE)
    return target


def path_location(path: str, query: str = "") -> str:
    """A redirect to the decoded request ``path`` (and an encoded ``query``) on this origin."""
    return same_origin_location(quote(path, safe="/") + (f"?{query}" if query else ""))


class SecurityHeaders:
    """ASGI middleware adding :data:`HEADERS` to every HTTP response and taming ``Location``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = []
                for name, value in message.get("headers", []):
                    lowered = bytes(name).lower()
                    if lowered in _OURS:
                        continue
                    if lowered == b"location":
                        value = same_origin_location(
                            bytes(value).decode("latin-1")).encode("latin-1")
                    headers.append((name, value))
                message["headers"] = headers + HEADERS
            await send(message)

        await self.app(scope, receive, send_with_headers)
