"""A real MCP server written with the ``mcp`` SDK, for the MCP tool tests and the benchmark.

Run as a program it serves over stdio (``python -m tests.fakes.mcp_server``); ``McpHttpServer``
serves the same tools over streamable HTTP on 127.0.0.1 from a thread, and can be stopped
and started again on the same port (a server that restarts).

Its tools: ``echo``, ``add``, ``whoami`` (the process id, to kill it), ``hang`` (never
answers in time), ``login`` (takes a secret), ``env`` (reads an environment variable),
``picture`` (an image), ``fail`` (an ``isError`` result), ``delete_everything`` (a tool a
bot should not allow) and ``grow`` (adds the tool ``late`` and announces the change).
"""

from __future__ import annotations

import asyncio
import base64
import os
import threading
from pathlib import Path
from typing import Any

import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp_types import CallToolResult, ImageContent, TextContent

from tests.fakes.ports import free_port

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
"""A 1x1 PNG."""


def build(name: str = "acme") -> MCPServer:
    server = MCPServer(name, log_level="WARNING")

    @server.tool()
    def echo(text: str) -> str:
        """Say the text back."""
        return text

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two whole numbers."""
        return a + b

    @server.tool()
    def whoami() -> int:
        """The server's process id."""
        return os.getpid()

    @server.tool()
    async def hang(seconds: float = 3600.0, started: str = "") -> str:
        """Answer only after a long while (first creating the file ``started``, if named)."""
        if started:
            Path(started).touch()
        await asyncio.sleep(seconds)
        return "finally"

    @server.tool()
    def login(api_key: str) -> str:
        """Log in to the upstream service with a key."""
        return f"logged in with a key of {len(api_key)} characters"

    @server.tool()
    def env(variable: str) -> str:
        """An environment variable of the server process."""
        return os.environ.get(variable, "(unset)")

    @server.tool()
    def picture() -> CallToolResult:
        """A tiny picture with a caption."""
        return CallToolResult(content=[
            TextContent(text="a red dot"),
            ImageContent(data=base64.b64encode(PNG).decode(), mime_type="image/png")])

    @server.tool()
    def fail() -> CallToolResult:
        """A tool that reports an error of its own."""
        return CallToolResult(content=[TextContent(text="ticket 42 not found")], is_error=True)

    @server.tool()
    def delete_everything() -> str:
        """Delete all the data (no bot should allow this)."""
        raise RuntimeError("delete_everything ran; the allow list failed")

    @server.tool()
    async def grow(ctx: Context) -> str:
        """Add the tool 'late' and announce that the tool list changed."""
        def late() -> str:
            """A tool that appears at run time."""
            return "late and here"

        server.add_tool(late)
        await ctx.notify_tools_changed()
        return "grown"

    return server


class McpHttpServer:
    """``build()``'s tools over streamable HTTP at ``url``; ``start``/``stop`` from a test."""

    def __init__(self, port: int | None = None, *, token: str | None = None) -> None:
        self.port = port or free_port()
        self.token = token
        self.seen_headers: list[dict[str, str]] = []
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def start(self) -> McpHttpServer:
        app = build().streamable_http_app()
        outer = self

        async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                headers = {k.decode(): v.decode() for k, v in scope["headers"]}
                outer.seen_headers.append(headers)
                if outer.token and headers.get("authorization") != f"Bearer {outer.token}":
                    await send({"type": "http.response.start", "status": 401, "headers": []})
                    await send({"type": "http.response.body", "body": b"unauthorized"})
                    return
            await app(scope, receive, send)

        config = uvicorn.Config(asgi, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="on")
        self._server = server = uvicorn.Server(config)
        self._thread = threading.Thread(target=server.run, name="mcp-http", daemon=True)
        self._thread.start()
        deadline = 600  # x 0.05 s: a started uvicorn says so at once
        while not server.started and deadline and self._thread.is_alive():
            threading.Event().wait(0.05)
            deadline -= 1
        if not server.started:
            raise RuntimeError("the MCP HTTP server did not start")
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._server.force_exit = True
            self._thread.join(30)
        self._server = self._thread = None


if __name__ == "__main__":
    build().run()
