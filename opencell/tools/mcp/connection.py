"""One supervised connection to an MCP server: connect, list tools, call, reconnect.

A ``McpConnection`` owns one asyncio task (the supervisor) that enters the SDK's ``Client``
and leaves it in that same task (the SDK's anyio scopes require it). The supervisor:

- connects (a stdio process is started; an HTTP session is opened), lists the tools;
- keeps the listing fresh when the server announces a change (``tools/list_changed``:
  a notification on handshake-era connections, a ``subscriptions/listen`` stream on
  2026-era ones);
- notices the connection ending — a stdio process that exits closes its stdout; a call that
  finds the connection closed; a failed probe — and reconnects with exponential back-off;
- stops on ``aclose()``, which closes the session and stops the process.

Calls come from other tasks and go straight to the connected client; while the server is down
they fail at once with ``ToolUnavailableError`` (the model reads why), never wait.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from types import TracebackType
from typing import Any

import anyio
import httpx2
import mcp_types as types
from mcp import Client, MCPError, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp_types.jsonrpc import CONNECTION_CLOSED, REQUEST_TIMEOUT
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from opencell.config.mcp import McpServerConfig
from opencell.errors import ToolTimeoutError, ToolUnavailableError
from opencell.retry import Backoff

log = logging.getLogger("opencell.tools.mcp")

PING_INTERVAL = 15.0
"""Seconds between liveness probes (a tool listing) of an idle connection (an HTTP server
that went away gives no end-of-stream)."""


class _Watched:
    """The transport's read stream, setting ``ended`` when the server's side closes."""

    def __init__(self, inner: Any, ended: asyncio.Event) -> None:
        self._inner = inner
        self._ended = ended

    async def receive(self) -> Any:
        try:
            return await self._inner.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            self._ended.set()
            raise

    async def aclose(self) -> None:
        await self._inner.aclose()

    def __aiter__(self) -> _Watched:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self._inner.__anext__()
        except (StopAsyncIteration, anyio.ClosedResourceError):
            self._ended.set()
            raise

    async def __aenter__(self) -> _Watched:
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc_val: BaseException | None, exc_tb: TracebackType | None) -> bool | None:
        self._ended.set()
        result: bool | None = await self._inner.__aexit__(exc_type, exc_val, exc_tb)
        return result


def transport(config: McpServerConfig, ended: asyncio.Event,
              http_errors: list[str] | None = None
              ) -> AbstractAsyncContextManager[tuple[Any, Any]]:
    """The SDK transport for ``config`` whose read side reports its end on ``ended``; HTTP
    error statuses are noted in ``http_errors`` (the SDK reports them only as -32603)."""

    async def note(response: httpx2.Response) -> None:
        if response.status_code >= 400 and http_errors is not None:
            url = response.request.url  # without userinfo or query: they may hold a token
            port = f":{url.port}" if url.port else ""
            http_errors.append(f"HTTP {response.status_code} from {response.request.method} "
                               f"{url.scheme}://{url.host}{port}{url.path}")

    @asynccontextmanager
    async def stdio() -> AsyncIterator[tuple[Any, Any]]:
        params = StdioServerParameters(command=config.command or "", args=list(config.args),
                                       env=dict(config.env) or None, cwd=config.cwd)
        async with stdio_client(params, errlog=sys.stderr) as (read, write):
            yield _Watched(read, ended), write

    @asynccontextmanager
    async def http() -> AsyncIterator[tuple[Any, Any]]:
        timeout = httpx2.Timeout(config.connect_timeout, read=300.0)
        async with httpx2.AsyncClient(headers=dict(config.headers), timeout=timeout,
                                      event_hooks={"response": [note]}) as client, \
                streamable_http_client(config.url or "", http_client=client) as (read, write):
            yield _Watched(read, ended), write

    return stdio() if config.command is not None else http()


class McpConnection:
    """A supervised session with one MCP server; ``tools`` is its latest listing."""

    def __init__(self, name: str, config: McpServerConfig, *,
                 on_tools: Callable[[McpConnection], None] | None = None) -> None:
        self.name = name
        self.config = config
        self.tools: list[types.Tool] = []
        """The server's latest tool listing (kept while the server is down)."""
        self.listed = False
        """Whether the tools were ever listed."""
        self.error: str | None = None
        """Why the last connection attempt failed or the last connection ended."""
        self.protocol_version: str | None = None
        self.connects = 0
        """Successful connections so far (1 at the first; each restart adds one)."""
        self._on_tools = on_tools
        self._client: Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._wake = asyncio.Event()
        self._ended = asyncio.Event()
        self._refresh = False
        self._broken = False
        self._changed = asyncio.Event()
        """Set on every connection or failure: ``wait_settled`` waits for it."""
        self._backoff = Backoff(start=0.5, cap=config.max_restart_delay)
        self._retry_at: float | None = None
        self._http_errors: list[str] = []

    @property
    def connected(self) -> bool:
        return self._client is not None

    def start(self) -> None:
        """Start the supervisor (idempotent); ``wait_settled`` waits for the first outcome."""
        if self._task is None:
            self._stopping, self.error = False, None
            self._task = asyncio.create_task(self._supervise(), name=f"mcp {self.name}")

    async def wait_settled(self, timeout: float) -> bool:
        """Wait until the first attempt connected or failed (up to ``timeout``); connected?"""
        with suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self._client is None and self.error is None:
                    self._changed.clear()
                    await self._changed.wait()
        return self._client is not None

    async def aclose(self, timeout: float = 10.0) -> None:
        """Close the session (a stdio server's stdin is closed, then it is stopped)."""
        self._stopping = True
        self._wake.set()
        task, self._task = self._task, None
        if task is None:
            return
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(task)
        except TimeoutError:
            task.cancel()
            with suppress(asyncio.CancelledError, Exception):
                await task
            log.warning("mcp %s: did not stop within %.0fs; cancelled", self.name, timeout)

    def refresh(self) -> None:
        """List the tools again soon (the server announced a change)."""
        self._refresh = True
        self._wake.set()

    async def call(self, tool: str, arguments: dict[str, Any], timeout: float
                   ) -> types.CallToolResult:
        """Call ``tool``; ``ToolUnavailableError`` when the server is down or the call broke."""
        client = self._client
        if client is None:
            raise ToolUnavailableError(self._down_message(), tool=tool)
        try:
            return await client.call_tool(tool, arguments, read_timeout_seconds=timeout + 1.0)
        except MCPError as exc:
            if exc.code == REQUEST_TIMEOUT:
                raise ToolTimeoutError(f"tool '{tool}' on MCP server '{self.name}' did not "
                                       f"finish within {timeout:g}s", tool=tool) from None
            if exc.code != CONNECTION_CLOSED:
                raise
            self._mark_broken(client, "the connection closed")
            raise ToolUnavailableError(f"the connection to MCP server '{self.name}' closed "
                                       "(it is being restarted; try again shortly)",
                                       tool=tool) from exc
        except (httpx2.TransportError, anyio.BrokenResourceError,
                anyio.ClosedResourceError, OSError) as exc:
            self._mark_broken(client, f"{type(exc).__name__}: {exc}")
            raise ToolUnavailableError(f"MCP server '{self.name}' cannot be reached "
                                       f"({type(exc).__name__}: {exc}); it is being "
                                       "reconnected", tool=tool) from exc

    def _down_message(self) -> str:
        why = f": {self.error}" if self.error else ""
        retry = ""
        if self._retry_at is not None:
            retry = f"; next attempt in {max(0.0, self._retry_at - time.monotonic()):.0f}s"
        return f"MCP server '{self.name}' is not connected{why}{retry}"

    def _mark_broken(self, client: Client, why: str) -> None:
        if client is self._client and not self._broken:
            self._broken = True
            self.error = why
            self._wake.set()

    # ------------------------------------------------------------ the supervisor

    async def _supervise(self) -> None:
        attempt = 0
        while not self._stopping:
            connects = self.connects
            try:
                await self._session()
            except Exception as exc:  # noqa: BLE001 - any failure means: retry later
                self.error = _describe(exc)
                if self._http_errors:
                    self.error += f" ({self._http_errors[-1]}{_hint(self._http_errors[-1])})"
                log.warning("mcp %s: %s", self.name, self.error)
            finally:
                self._client = None
                self._changed.set()
            if self._stopping:
                break
            attempt = 1 if self.connects > connects else attempt + 1
            delay = self._backoff(attempt)
            self._retry_at = time.monotonic() + delay
            self._wake.clear()
            if self._stopping:  # aclose() came between the check above and the clear
                break
            with suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            self._retry_at = None

    async def _session(self) -> None:
        self._ended = asyncio.Event()
        self._broken = False
        self._http_errors.clear()
        client = Client(transport(self.config, self._ended, self._http_errors), mode="auto",
                        cache=None,
                        read_timeout_seconds=self.config.connect_timeout,
                        message_handler=self._on_message,
                        client_info=types.Implementation(name="opencell", version="0.1.0"))
        async with client:
            await self._list(client)
            self.protocol_version = client.protocol_version
            self._client, self.error = client, None
            self.connects += 1
            self._changed.set()
            log.info("mcp %s: connected (%s, %d tool(s))", self.name, client.protocol_version,
                     len(self.tools))
            listener = self._listen(client)
            try:
                await self._watch(client)
            finally:
                self._client = None
                if listener is not None:
                    listener.cancel()
                    with suppress(asyncio.CancelledError, Exception):
                        await listener
        if not self._stopping and self.error is None:
            self.error = "the server closed the connection"

    async def _watch(self, client: Client) -> None:
        while True:
            self._wake.clear()  # then look: anything set before the clear is seen below
            if self._stopping or self._broken:
                return
            if self._ended.is_set():
                self.error = "the server closed the connection (a stdio server exited)"
                return
            if self._refresh:
                self._refresh = False
                try:
                    await self._list(client)
                except Exception as exc:  # noqa: BLE001 - a failed listing: reconnect
                    self.error = f"listing the tools failed: {_describe(exc)}"
                    return
                continue
            if not await self._news():
                await self._ping(client)

    async def _news(self) -> bool:
        """Wait for a wake-up or the end of the stream; False after ``PING_INTERVAL``."""
        ended = asyncio.ensure_future(self._ended.wait())
        woke = asyncio.ensure_future(self._wake.wait())
        try:
            done, _ = await asyncio.wait((ended, woke), timeout=PING_INTERVAL,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()
            woke.cancel()
        return bool(done)

    async def _ping(self, client: Client) -> None:
        # Listing the tools is the probe: ``ping`` is gone from 2026-era servers, and a
        # listing also catches a change whose announcement was lost.
        try:
            await self._list(client)
        except Exception as exc:  # noqa: BLE001 - no answer: reconnect
            self._mark_broken(client, f"it did not answer: {_describe(exc)}")

    async def _list(self, client: Client) -> None:
        tools: list[types.Tool] = []
        cursor: str | None = None
        for _ in range(100):  # a paginator that never ends cannot hang the connection
            page = await client.list_tools(cursor=cursor)
            tools.extend(page.tools)
            cursor = page.next_cursor
            if cursor is None:
                break
        self.tools, self.listed = tools, True
        if self._on_tools is not None:
            self._on_tools(self)

    def _listen(self, client: Client) -> asyncio.Task[None] | None:
        """2026-era servers announce changes only on a ``subscriptions/listen`` stream."""
        capability = client.server_capabilities.tools
        if client.protocol_version not in MODERN_PROTOCOL_VERSIONS or capability is None \
                or not capability.list_changed:
            return None

        async def listen() -> None:
            listening = False
            try:
                async with client.listen(tools_list_changed=True) as subscription:
                    listening = True
                    async for _event in subscription:
                        self.refresh()
            except Exception as exc:  # noqa: BLE001 - see below
                if self._stopping or self._client is not client:
                    return
                if listening:  # the stream broke: the server went away (or restarted)
                    self._mark_broken(client, f"the change stream ended: {_describe(exc)}")
                else:
                    log.info("mcp %s: no change notifications: %s", self.name, _describe(exc))

        return asyncio.create_task(listen(), name=f"mcp {self.name} listen")

    async def _on_message(self, message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            self.refresh()


def _hint(http_error: str) -> str:
    if http_error.startswith(("HTTP 401", "HTTP 403")):
        return ": the server rejected the credentials; check the entry's headers"
    if http_error.startswith("HTTP 404"):
        return ": check the entry's url (often it ends in /mcp)"
    return ""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    if isinstance(exc, MCPError):
        return f"MCP error {exc.code}: {exc.message}"
    if isinstance(exc, FileNotFoundError):
        return f"cannot start the server: {exc.strerror}: {exc.filename}"
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"
