"""The ``opencell`` command: run and chat with bots, validate their YAML, inspect what they did.

Heavy modules (SDKs, the store) are imported inside the commands so ``--help`` stays fast.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:
    from rich.console import Console

app = typer.Typer(
    name="opencell",
    help="LLM chat bots on Discord, Slack and the terminal, with observability built in.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@cache
def _console(stderr: bool = False) -> Console:
    from rich.console import Console

    if stderr:
        return Console(stderr=True, highlight=False)
    # Piped output is for files and pipes, not an 80-column screen: let tables be wide there.
    return Console(highlight=False, width=None if sys.stdout.isatty() else 160)


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
    # `python: pkg.mod:obj` in bot YAML names the user's code, usually beside the bots.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    level = getattr(logging, log_level.upper(), None)
    if not isinstance(level, int):
        _fail(f"--log-level: '{log_level}' is not one of debug, info, warning, error", code=2)
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    from opencell.observability.redact import Redactor, install_log_redaction

    # On the handler, so third-party records (httpx, SDKs, discord.py) are redacted too; the
    # App later hands the filter a redactor that also knows the secrets in the bots' YAML.
    install_log_redaction(Redactor.from_env(os.environ))
    if level > logging.INFO:
        # Users should always see whether AgentOps initialised and where a session went.
        logging.getLogger("opencell.exporters.agentops").setLevel(logging.INFO)


def _fail(message: str, *, code: int = 1) -> NoReturn:
    from opencell.observability.redact import LOG_FILTER

    # One line per error, never re-wrapped; an error may quote a credential (e.g. a 401 body).
    _console(stderr=True).print(LOG_FILTER.redactor.redact(message), markup=False,
                                soft_wrap=True)
    raise typer.Exit(code)


def _guarded(run: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a coroutine; OpenCell errors become one clear line and a non-zero exit."""
    from opencell.errors import ConfigError, OpenCellError

    try:
        import asyncio

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
    dashboard: Annotated[bool, typer.Option(
        "--dashboard", help="Also serve the dashboard (dashboard.host/port in the config).")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Run bots on the platforms their YAML names. Ctrl-C or SIGTERM stops gracefully."""
    from rich.markup import escape

    from opencell.app import App
    from opencell.config import load_bots, load_config

    def ready(application: App) -> None:
        running = ", ".join(f"{a.bot.name} on {a.platform}" for a in application.adapters)
        _console(stderr=True).print(f"[green]●[/] running {running}. Ctrl-C stops.",
                                    soft_wrap=True)
        if application.dashboard is not None:
            _console(stderr=True).print(f"[green]●[/] {escape(application.dashboard.banner())}",
                                        soft_wrap=True)

    async def main() -> None:
        cfg = load_config(config)
        application = App(load_bots(bots), cfg, dashboard=dashboard)
        await application.run(on_ready=ready)

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
    from opencell.config import BotConfig, validate_files

    results, problems = validate_files(paths)
    for path, result in results:
        if isinstance(result, BotConfig):
            _console().print(f"[green]ok[/] {path}  bot [bold]{result.name}[/] "
                             f"({result.type}, {result.llm.provider}/{result.llm.model})")
        elif isinstance(result, int):
            _console().print(f"[green]ok[/] {path}  pricing ({result} override(s))")
        else:
            _console().print(f"[green]ok[/] {path}  config")
    for problem in problems:
        _console(stderr=True).print(problem.located(), markup=False, soft_wrap=True)
    if problems:
        raise typer.Exit(2)


@contextmanager
def _opened_store(config: Path | None) -> Iterator[Any]:
    """The configured store, closed afterwards; sessions a crashed process left open are
    closed first. A broken or locked store is one line and exit 1, never a traceback."""
    from sqlalchemy.exc import SQLAlchemyError

    from opencell.config import load_config
    from opencell.errors import ConfigError, OpenCellError, StoreError
    from opencell.observability.store import Store, owner_is_alive

    try:
        store = Store.open(load_config(config).store.url)
    except ConfigError as exc:
        _fail(exc.located(), code=2)
    except OpenCellError as exc:
        _fail(f"error: {exc}")
    try:
        store.close_orphans(owner_is_alive)
        yield store
    except (StoreError, SQLAlchemyError) as exc:
        _fail(f"error: the store at {store.url} failed: {type(exc).__name__}: "
              f"{str(exc).splitlines()[0]}")
    finally:
        store.close()


def _since(text: str | None) -> float | None:
    """``2h``, ``7d`` (ago) or an ISO date/time → epoch seconds."""
    if not text:
        return None
    import time
    from datetime import UTC, datetime

    from opencell.config import parse_duration

    try:
        return time.time() - parse_duration(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        _fail(f"--since: '{text}' is neither a duration (2h, 7d) nor an ISO date", code=2)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _print_json(document: Any) -> None:
    import json

    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")


@app.command()
def sessions(
    bot: Annotated[str | None, typer.Option(help="Only this bot.")] = None,
    user: Annotated[str | None, typer.Option(help="Only this user id.")] = None,
    platform: Annotated[str | None, typer.Option(help="console, discord, slack, api …")] = None,
    status: Annotated[str | None, typer.Option(help="open, success or failed.")] = None,
    since: Annotated[str | None, typer.Option(help="e.g. 2h, 7d or 2026-11-01.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    config: ConfigOption = None,
) -> None:
    """List sessions, newest first."""
    from opencell._cli_views import sessions_table

    if status not in (None, "open", "success", "failed"):
        _fail(f"--status: '{status}' is not one of open, success, failed", code=2)
    with _opened_store(config) as store:
        rows, cursor = store.list_sessions(bot=bot, user=user, platform=platform,
                                           status=status, since=_since(since), limit=limit)
    if as_json:
        _print_json({"sessions": rows, "next_cursor": cursor})
    else:
        _console().print(sessions_table(rows))


@app.command()
def session(
    session_id: Annotated[str, typer.Argument(metavar="ID", help="Session id (or a unique "
                                              "prefix).", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    config: ConfigOption = None,
) -> None:
    """Show one session with its timeline."""
    from opencell._cli_views import session_view

    with _opened_store(config) as store:
        found = store.get_session(session_id)
        events = store.timeline(found["id"]) if found is not None else []
    if found is None:
        _fail(f"no session '{session_id}'; list them with `opencell sessions`")
    if as_json:
        _print_json({**found, "timeline": events})
    else:
        _console().print(session_view(found, events))


@app.command()
def costs(
    by: Annotated[str, typer.Option(help="bot, user, platform, provider or model.")] = "bot",
    period: Annotated[str, typer.Option(help="day, week or month.")] = "day",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    config: ConfigOption = None,
) -> None:
    """Cost breakdown for the current day, week or month (UTC)."""
    from opencell._cli_views import costs_table

    if by not in ("bot", "user", "platform", "provider", "model"):
        _fail(f"--by: '{by}' is not one of bot, user, platform, provider, model", code=2)
    if period not in ("day", "week", "month"):
        _fail(f"--period: '{period}' is not one of day, week, month", code=2)
    with _opened_store(config) as store:
        rows = store.costs(by=by, period=period)
    if as_json:
        total = sum(r.get("cost_usd") or 0.0 for r in rows)
        # Calls whose usage the provider did not credibly report, counted at their worst case.
        estimated = sum(r.get("estimated_calls") or 0 for r in rows)
        _print_json({"by": by, "period": period, "total_usd": total,
                     "estimated_calls": estimated, "rows": rows})
    else:
        _console().print(costs_table(rows, by=by, period=period))


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()


if __name__ == "__main__":  # pragma: no cover
    main()


# Commands in their own modules
from opencell import _cli_budgets, _cli_dashboard, _cli_doctor  # noqa: E402,F401
