"""``opencell run`` and ``opencell chat``: the commands that run bots."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from opencell.cli._common import ConfigOption, console, fail, guarded, settle_heap


def run(
    bots: Annotated[list[Path], typer.Argument(help="Bot YAML files.", show_default=False)],
    dashboard: Annotated[bool, typer.Option(
        "--dashboard", help="Also serve the dashboard (dashboard.host/port in the config).")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Run bots on the platforms their YAML names. Ctrl-C or SIGTERM stops gracefully."""
    from rich.markup import escape

    from opencell.app import App
    from opencell.config import load_config
    from opencell.loading import load_bots

    def ready(application: App) -> None:
        settle_heap()
        running = ", ".join(f"{a.bot.name} on {a.platform}" for a in application.adapters)
        console(stderr=True).print(f"[green]●[/] running {running}. Ctrl-C stops.",
                                    soft_wrap=True)
        if application.dashboard is not None:
            console(stderr=True).print(f"[green]●[/] {escape(application.dashboard.banner())}",
                                        soft_wrap=True)

    async def main() -> None:
        cfg = load_config(config)
        loaded = load_bots(bots)
        talking = [b.name for b in loaded if b.platforms.console is not None]
        if len(talking) > 1:
            fail(f"bots {', '.join(talking)} all name platforms.console, and one terminal "
                 "can talk to one bot: keep console in one of them (or try each with "
                 "`opencell chat BOT.yaml`)", code=2)
        application = App(loaded, cfg, dashboard=dashboard)
        await application.run(on_ready=ready)

    guarded(main)


def chat(
    bot: Annotated[Path, typer.Argument(help="The bot's YAML file.", show_default=False)],
    user: Annotated[str | None, typer.Option(help="Your user name in this chat.")] = None,
    json_lines: Annotated[bool, typer.Option(
        "--json", help="Piped: print each reply as one JSON line {\"reply\", \"failed\"} "
                       "(a reply may span several lines).")] = False,
    config: ConfigOption = None,
) -> None:
    """Talk to a bot in the terminal (line editing, Markdown replies). Reads lines from
    stdin, so it also works piped: one reply per line, or one JSON object per reply with
    --json."""
    import sys

    from opencell.adapters.console import ConsoleAdapter, EarlyPrompt, greeting
    from opencell.config import BotConfig, load_config
    from opencell.loading import load_bot

    async def main() -> None:
        cfg = load_config(config)
        bot_config = load_bot(bot)
        early = None
        if sys.stdin.isatty() and sys.stdout.isatty():
            # The prompt now; the model SDK loads (App below) while the user types.
            settings = bot_config.platforms.console
            early = EarlyPrompt(settings.prompt if settings else "you> ",
                                greeting(bot_config.name))
            early.start()
        from opencell.app import App

        def console(b: BotConfig, _platform: str) -> ConsoleAdapter:
            return ConsoleAdapter(b, user=user, json_lines=json_lines, early=early)

        application = App([bot_config], cfg, platforms={bot_config.name: ["console"]},
                          adapter_factory=console)
        await application.run()

    guarded(main)
