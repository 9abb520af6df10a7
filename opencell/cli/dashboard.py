"""The ``opencell dashboard`` command: serve the web dashboard over the configured store."""

from __future__ import annotations

from typing import Annotated

import typer

from opencell.cli._common import ConfigOption, console, guarded, opened_store, settle_heap


def dashboard(
    host: Annotated[str | None, typer.Option(
        help="Address to listen on (default dashboard.host, i.e. 127.0.0.1). Any address "
             "beyond this machine requires OPENCELL_DASHBOARD_TOKEN.")] = None,
    port: Annotated[int | None, typer.Option(
        min=0, max=65535, help="Port (default dashboard.port, i.e. 8321; 0 = any free).")] = None,
    config: ConfigOption = None,
) -> None:
    """Serve the dashboard: sessions, replay timelines, analytics and costs. Ctrl-C stops."""
    import asyncio
    import signal

    from rich.markup import escape

    from opencell.config import load_config
    from opencell.dashboard.server import DashboardServer

    async def main() -> None:
        cfg = load_config(config)
        # Checked before the store is opened: a refused bind must not touch the database.
        from opencell.dashboard.auth import check_bind
        from opencell.dashboard.server import dashboard_token

        check_bind(host or cfg.dashboard.host, dashboard_token(cfg.dashboard))
        with opened_store(config) as store:
            from opencell.dashboard.budgets import store_budgets

            server = DashboardServer.from_config(cfg.dashboard, store, host=host, port=port,
                                                 budgets=store_budgets(cfg.budgets, store))
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                try:
                    loop.add_signal_handler(sig, stop.set)
                except (NotImplementedError, RuntimeError):
                    pass
            await server.start()
            settle_heap()
            console(stderr=True).print(f"[green]●[/] {escape(server.banner())}. Ctrl-C stops.",
                                        soft_wrap=True)
            try:
                await stop.wait()
            finally:
                await server.stop()

    guarded(main)
