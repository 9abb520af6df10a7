"""Serving the dashboard with uvicorn: standalone (`opencell dashboard`) or inside `opencell run`.

The socket is bound here, before uvicorn starts, so a busy port or a bad address is one
clear error (uvicorn itself would ``sys.exit``). uvicorn's own signal handling is turned off:
the caller (the CLI or the App) owns SIGINT/SIGTERM and calls :meth:`DashboardServer.stop`,
which ends every live stream first so the graceful shutdown does not wait on open browsers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from opencell.dashboard.auth import TOKEN_VARIABLE, check_bind, install_log_redaction, is_loopback
from opencell.errors import OpenCellError

if TYPE_CHECKING:
    from opencell.config import DashboardConfig
    from opencell.dashboard.budgets import BudgetSource
    from opencell.dashboard.metrics import ExporterStats, RecorderStatsLike
    from opencell.store import Store

log = logging.getLogger("opencell.dashboard")


def dashboard_token(config: DashboardConfig, env: Mapping[str, str] | None = None) -> str | None:
    """The token: ``OPENCELL_DASHBOARD_TOKEN`` wins over ``dashboard.token``; blank is none."""
    env = os.environ if env is None else env
    token = (env.get(TOKEN_VARIABLE) or config.token or "").strip()
    return token or None


class DashboardServer:
    """One dashboard on one socket; ``start``/``stop`` from a running event loop."""

    def __init__(self, store: Store, *, host: str = "127.0.0.1", port: int = 8321,
                 token: str | None = None,
                 recorder_stats: Callable[[], RecorderStatsLike] | None = None,
                 exporter_stats: ExporterStats | None = None,
                 poll_interval: float = 1.0, budgets: BudgetSource | None = None) -> None:
        """Check the bind rule now (``ConfigError`` naming ``OPENCELL_DASHBOARD_TOKEN``)."""
        check_bind(host, token)
        self.host = host
        self.port = port
        self.token = token
        self._store = store
        self._hooks: dict[str, Any] = {"recorder_stats": recorder_stats,
                                       "exporter_stats": exporter_stats,
                                       "poll_interval": poll_interval, "budgets": budgets}
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None
        self.app: Any = None

    @classmethod
    def from_config(cls, config: DashboardConfig, store: Store, *, host: str | None = None,
                    port: int | None = None, env: Mapping[str, str] | None = None,
                    **hooks: Any) -> DashboardServer:
        """A server as ``config/opencell.yaml`` and the environment say (options win)."""
        return cls(store, host=host or config.host,
                   port=config.port if port is None else port,
                   token=dashboard_token(config, env), **hooks)

    @property
    def url(self) -> str:
        """Where it listens (the real port once started, also when asked for port 0)."""
        host = self.host if ":" not in self.host else f"[{self.host}]"
        return f"http://{host}:{self.port}/"

    async def start(self) -> None:
        """Bind, then serve in a background task until :meth:`stop`."""
        import uvicorn

        from opencell.dashboard.app import create_app

        self._socket = _bind(self.host, self.port)
        self.port = self._socket.getsockname()[1]
        self.app = create_app(self._store, token=self.token, **self._hooks)
        install_log_redaction()
        config = uvicorn.Config(self.app, log_config=None, lifespan="off", access_log=True,
                                server_header=False, proxy_headers=False,
                                timeout_graceful_shutdown=3, ws="none")
        feed = self.app.state.feed

        class Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:  # the caller owns the signals
                yield

            async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
                await feed.close()  # live streams end first, or shutdown waits on them
                await super().shutdown(sockets)

        self._server = Server(config)
        self._task = asyncio.get_running_loop().create_task(
            self._server.serve(sockets=[self._socket]), name="opencell-dashboard")
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise OpenCellError(f"the dashboard did not start on {self.url}")
            await asyncio.sleep(0.01)
        log.info("dashboard listening url=%s auth=%s", self.url,
                 "token" if self.token else "loopback-only")

    async def stop(self) -> None:
        """Close live streams, finish requests in flight (3 s at most), release the port."""
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), 10)
        except (TimeoutError, asyncio.CancelledError):
            self._task.cancel()
        except Exception as exc:  # noqa: BLE001 - stopping must not fail the caller
            log.warning("dashboard stop error=%s: %s", type(exc).__name__, exc)
        if self._socket is not None:
            self._socket.close()
        self._server = self._task = None

    async def serve_until(self, stop: asyncio.Event) -> None:
        """Start, wait for ``stop``, stop."""
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.stop()

    def banner(self) -> str:
        """One line for people: where to open it, and how to pass the token (never the token)."""
        local = self.url
        where = f"dashboard on {local}"
        if self.host in ("0.0.0.0", "::"):
            # Listening on every interface: say so, and give a URL that opens on this machine.
            local = f"http://127.0.0.1:{self.port}/"
            where = (f"dashboard on all interfaces ({self.host}:{self.port}); on this "
                     f"machine {local}")
        if self.token:
            return (f"{where} — token required: open {local}?token=<your "
                    f"{TOKEN_VARIABLE}> once, or send 'Authorization: Bearer <token>'")
        note = "" if is_loopback(self.host) or self.host in ("0.0.0.0", "::") \
            else " (not loopback)"
        return f"{where}{note}"


def _bind(host: str, port: int) -> socket.socket:
    sock: socket.socket | None = None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(address)
        sock.listen(128)
        sock.setblocking(False)
    except OSError as exc:
        if sock is not None:
            sock.close()
        reason = exc.strerror or str(exc)
        raise OpenCellError(f"cannot serve the dashboard on {host}:{port}: {reason}; "
                            "pick another --port or stop what uses it") from None
    return sock
