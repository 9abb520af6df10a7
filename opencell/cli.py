"""The ``opencell`` command: run and chat with bots, validate their YAML, inspect what they did.

Heavy modules (SDKs, the store) are imported inside the commands so ``--help`` stays fast.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

app = typer.Typer(
    name="opencell",
    help="LLM chat bots on Discord, Slack and the terminal, with observability built in.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Global config file (default: $OPENCELL_CONFIG, "
                 "then config/opencell.yaml if present)."),
]


@app.callback()
def _main(
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning, error",
                                           envvar="OPENCELL_LOG_LEVEL")] = "warning",
) -> None:
    """Load .env (the real environment wins) and set up one-line structured logs on stderr."""
    from dotenv import load_dotenv

    load_dotenv(Path.cwd() / ".env", override=False)
    level = getattr(logging, log_level.upper(), None)
    if not isinstance(level, int):
        _fail(f"--log-level: '{log_level}' is not one of debug, info, warning, error", code=2)
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")


def _fail(message: str, *, code: int = 1) -> NoReturn:
    err.print(message, markup=False)
    raise typer.Exit(code)


def _guarded(run: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a coroutine; OpenCell errors become one clear line and a non-zero exit."""
    from opencell.errors import ConfigError, OpenCellError

    try:
        asyncio.run(run())
    except ConfigError as exc:
        _fail(exc.located(), code=2)
    except OpenCellError as exc:
        _fail(f"error: {exc}")
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


@app.command()
def run(
    bots: Annotated[list[Path], typer.Argument(help="Bot YAML files.", show_default=False)],
    config: ConfigOption = None,
) -> None:
    """Run bots on the platforms their YAML names. Ctrl-C or SIGTERM stops gracefully."""
    from opencell.app import App
    from opencell.config import load_bots, load_config

    async def main() -> None:
        cfg = load_config(config)
        application = App(load_bots(bots), cfg)
        await application.run()

    _guarded(main)


@app.command()
def chat(
    bot: Annotated[Path, typer.Argument(help="The bot's YAML file.", show_default=False)],
    user: Annotated[str | None, typer.Option(help="Your user name in this chat.")] = None,
    config: ConfigOption = None,
) -> None:
    """Talk to a bot in the terminal. Reads lines from stdin, so it also works piped."""
    from opencell.adapters.console import ConsoleAdapter
    from opencell.app import App
    from opencell.config import BotConfig, load_bot, load_config

    async def main() -> None:
        cfg = load_config(config)
        bot_config = load_bot(bot)

        def console(b: BotConfig, _platform: str) -> ConsoleAdapter:
            return ConsoleAdapter(b, user=user)

        application = App([bot_config], cfg, platforms={bot_config.name: ["console"]},
                          adapter_factory=console)
        await application.run()

    _guarded(main)


@app.command()
def validate(
    paths: Annotated[list[Path], typer.Argument(help="Bot or config YAML files.",
                                                show_default=False)],
) -> None:
    """Check bot and config YAML. Exit 0 when all are valid, else 2 with file:line: field: why."""
    from opencell.config import BotConfig, validate_file
    from opencell.errors import ConfigError, ConfigErrors

    problems: list[ConfigError] = []
    names: dict[str, Path] = {}
    for path in paths:
        try:
            result = validate_file(path)
        except ConfigErrors as exc:
            problems.extend(exc.errors)
            continue
        except ConfigError as exc:
            problems.append(exc)
            continue
        if isinstance(result, BotConfig):
            if result.name in names:
                problems.append(result.locate(("name",), f"bot name '{result.name}' is already "
                                              f"used by {names[result.name]}; names must be "
                                              "unique"))
                continue
            names[result.name] = path
            out.print(f"[green]ok[/] {path}  bot [bold]{result.name}[/] "
                      f"({result.type}, {result.llm.provider}/{result.llm.model})")
        else:
            out.print(f"[green]ok[/] {path}  config")
    for problem in problems:
        err.print(problem.located(), markup=False, soft_wrap=True)
    if problems:
        raise typer.Exit(2)


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
