"""The ``opencell`` command: run and chat with bots, validate their YAML, inspect what they did.

Heavy modules (SDKs, the store) are imported inside the commands so ``--help`` stays fast.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from opencell.cli._common import fail

app = typer.Typer(
    name="opencell",
    help="LLM chat bots on Discord, Slack and the terminal, with observability built in.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        from opencell import __version__

        sys.stdout.write(f"opencell {__version__}\n")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_print_version,
                                          help="Print the version and exit.")] = False,
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
        fail(f"--log-level: '{log_level}' is not one of debug, info, warning, error", code=2)
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    from opencell.observability.redact import Redactor, install_log_redaction

    # On the handler, so third-party records (httpx, SDKs, discord.py) are redacted too; the
    # App later hands the filter a redactor that also knows the secrets in the bots' YAML.
    install_log_redaction(Redactor.from_env(os.environ))
    if level > logging.INFO:
        # Users should always see whether AgentOps initialised and where a session went.
        logging.getLogger("opencell.exporters.agentops").setLevel(logging.INFO)


def main() -> None:
    """Console-script entry point. Usage errors (an unknown option, a value out of range) are
    one ``error:`` line like every other failure, not a box."""
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    try:
        code = app(standalone_mode=False)
    except typer.Abort:
        sys.stderr.write("\n")
        code = 130
    except typer.Exit as exc:
        code = exc.exit_code
    except Exception as exc:
        # Click's own errors (typer vendors click and exports only some of its classes):
        # each has format_message() and exit_code.
        describe = getattr(exc, "format_message", None)
        if not callable(describe):
            raise
        code = int(getattr(exc, "exit_code", 2))
        ctx = getattr(exc, "ctx", None)
        if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
            sys.stdout.write(ctx.get_help() + "\n")
        else:
            hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
            try:
                fail(f"{describe()}{hint}", code=code)
            except typer.Exit:
                pass
    sys.exit(code if isinstance(code, int) else 0)


def _register() -> None:
    """Every command, in the order ``--help`` lists them. Explicit: importing a module never
    adds a command as a side effect."""
    from opencell.cli import (
        bots,
        budgets,
        dashboard,
        doctor,
        inspect,
        lifecycle,
        replay,
        validate,
        versions,
    )

    for command in (bots.run, bots.chat, validate.validate, inspect.sessions, inspect.session,
                    inspect.costs, replay.replay, versions.versions, budgets.budgets,
                    dashboard.dashboard, doctor.doctor, lifecycle.forget, lifecycle.export,
                    lifecycle.prune):
        app.command()(command)


_register()

if __name__ == "__main__":  # pragma: no cover
    main()
