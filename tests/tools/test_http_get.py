"""http_get against a loopback aiohttp server: host allowlist, redirects, size and time limits."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from pydantic import ValidationError

from opencell.config import ToolEntry
from opencell.errors import ToolExecutionError, ToolNotAllowedError, ToolTimeoutError
from opencell.llm.base import ToolCall
from opencell.tools import Toolbox, ToolResult
from opencell.tools.builtin import HttpGetOptions, host_allowed
from tests.fakes.waiting import WAIT


@dataclass
class FakeWeb:
    """A loopback web server that remembers every path it was asked for."""

    port: int = 0
    requests: list[str] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
async def fake_web() -> AsyncIterator[FakeWeb]:
    fake = FakeWeb()

    @web.middleware
    async def remember(request: web.Request, handler: Any) -> web.StreamResponse:
        fake.requests.append(request.path)
        response: web.StreamResponse = await handler(request)
        return response

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello there", content_type="text/plain")

    async def big(request: web.Request) -> web.Response:
        return web.Response(body=b"a" * 50_000, content_type="text/plain")

    async def slow(request: web.Request) -> web.Response:
        await fake.release.wait()
        return web.Response(text="finally")

    async def hop(request: web.Request) -> web.Response:
        raise web.HTTPFound("/hello")

    async def away(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"http://localhost:{fake.port}/secret")

    async def loop(request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop")

    async def secret(request: web.Request) -> web.Response:
        return web.Response(text="secret")

    app = web.Application(middlewares=[remember])
    app.add_routes([web.get("/hello", hello), web.get("/big", big), web.get("/slow", slow),
                    web.get("/hop", hop), web.get("/away", away), web.get("/loop", loop),
                    web.get("/secret", secret)])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.port = runner.addresses[0][1]
    yield fake
    fake.release.set()
    await runner.cleanup()


def _toolbox(**options: Any) -> Toolbox:
    entry = ToolEntry.model_validate({"name": "http_get", **options})
    return Toolbox.from_entries([entry], bot="fetcher")


async def _get(box: Toolbox, url: str) -> ToolResult:
    return await box.invoke(ToolCall(id="c1", name="http_get", arguments={"url": url}),
                            user_id="u1")


async def test_allowed_host_is_fetched(fake_web: FakeWeb) -> None:
    result = await _get(_toolbox(allow_hosts=["127.0.0.1"]), f"{fake_web.base}/hello")
    assert not result.is_error, result.content
    body = json.loads(result.content)
    assert body["status"] == 200
    assert body["content_type"].startswith("text/plain")
    assert body["text"] == "hello there"
    assert body["truncated"] is False
    assert fake_web.requests == ["/hello"]


async def test_disallowed_host_is_refused_before_any_request(fake_web: FakeWeb) -> None:
    result = await _get(_toolbox(allow_hosts=["status.example.com"]), f"{fake_web.base}/hello")
    assert isinstance(result.error, ToolNotAllowedError)
    assert "host '127.0.0.1' is not allowed" in result.content
    assert "allow_hosts" in result.content
    assert fake_web.requests == []


async def test_userinfo_cannot_smuggle_another_host(fake_web: FakeWeb) -> None:
    url = f"http://127.0.0.1@localhost:{fake_web.port}/hello"
    result = await _get(_toolbox(allow_hosts=["127.0.0.1"]), url)
    assert isinstance(result.error, ToolNotAllowedError)
    assert "'localhost'" in result.content
    assert fake_web.requests == []


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/x"])
async def test_only_http_and_https(url: str) -> None:
    result = await _get(_toolbox(allow_hosts=["127.0.0.1"]), url)
    assert isinstance(result.error, ToolNotAllowedError)
    assert "only http and https" in result.content


async def test_redirect_within_allowed_hosts_is_followed(fake_web: FakeWeb) -> None:
    result = await _get(_toolbox(allow_hosts=["127.0.0.1"]), f"{fake_web.base}/hop")
    assert json.loads(result.content)["text"] == "hello there"
    assert fake_web.requests == ["/hop", "/hello"]


async def test_redirect_to_a_disallowed_host_is_refused(fake_web: FakeWeb) -> None:
    result = await _get(_toolbox(allow_hosts=["127.0.0.1"]), f"{fake_web.base}/away")
    assert isinstance(result.error, ToolNotAllowedError)
    assert "host 'localhost' is not allowed" in result.content
    assert fake_web.requests == ["/away"]


async def test_redirect_loops_stop(fake_web: FakeWeb) -> None:
    result = await _get(_toolbox(allow_hosts=["127.0.0.1"]), f"{fake_web.base}/loop")
    assert isinstance(result.error, ToolExecutionError)
    assert "redirected more than" in result.content
    assert len(fake_web.requests) == 6


async def test_long_body_is_truncated_and_says_so(fake_web: FakeWeb) -> None:
    box = _toolbox(allow_hosts=["127.0.0.1"], max_bytes=100)
    body = json.loads((await _get(box, f"{fake_web.base}/big")).content)
    assert body["truncated"] is True
    assert body["text"].startswith("a" * 100 + "\n[truncated")
    assert "a" * 101 not in body["text"]
    assert "max_bytes=100" in body["text"]


async def test_slow_server_times_out(fake_web: FakeWeb) -> None:
    # /slow answers only once ``release`` is set (at teardown): a result now is the timeout's.
    result = await asyncio.wait_for(_get(_toolbox(allow_hosts=["127.0.0.1"], timeout=0.2),
                                         f"{fake_web.base}/slow"), WAIT)
    assert isinstance(result.error, ToolTimeoutError)
    assert not fake_web.release.is_set()
    # One attempt, never retried. On a busy machine the 0.2 s can run out before the request
    # even reaches the server: that is the same timeout, so either is right.
    assert fake_web.requests in ([], ["/slow"])


async def test_proxy_variables_are_ignored(fake_web: FakeWeb,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")  # nothing listens on the discard port
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    result = await _get(_toolbox(allow_hosts=["127.0.0.1"]), f"{fake_web.base}/hello")
    assert not result.is_error, result.content
    assert fake_web.requests == ["/hello"]


@pytest.mark.parametrize(("host", "allowed"), [
    ("status.example.com", True), ("STATUS.example.com.", True), ("api.example.org", True),
    ("a.b.example.org", True), ("example.org", False), ("evil-example.org", False),
    ("status.example.com.evil.net", False), ("example.com", False),
])
def test_host_patterns(host: str, allowed: bool) -> None:
    assert host_allowed(host, ["status.example.com", "*.example.org"]) is allowed


@pytest.mark.parametrize("bad", ["https://status.example.com", "example.com/path",
                                 "example.com:8080", "*", "*.*.example.com", ""])
def test_allow_hosts_must_be_plain_hosts(bad: str) -> None:
    with pytest.raises(ValidationError, match="not a host|at least 1"):
        HttpGetOptions(allow_hosts=[bad])
