"""``opencell doctor``: the troubleshooting list as one command (config, secrets, store, export)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from opencell.cli._common import ConfigOption, console


def doctor(
    bots: Annotated[list[Path] | None, typer.Argument(
        help="Bot YAML files whose secrets to check (optional).", show_default=False)] = None,
    config: ConfigOption = None,
    timeout: Annotated[float, typer.Option(help="Seconds per network check.", min=0.1)] = 5.0,
) -> None:
    """Check the config, each bot's secrets (with one cheap authenticated call to the model
    API and each chat platform), the store and each enabled exporter.

    Prints ✓ or ✗ per check with what to fix; exits 1 when anything failed.
    """
    from rich.markup import escape

    from opencell.cli.checks import run_checks

    out = console()
    waiting = console(stderr=True)

    def progress(what: str) -> None:
        # On stderr, so the verdict lines on stdout stay one per check.
        waiting.print(f"[dim]… checking {escape(what)} (up to {timeout:g}s)[/]", soft_wrap=True)

    failed = 0
    for check in run_checks(config, bots or [], timeout=timeout, progress=progress):
        if check.ok is None:
            mark = "[dim]·[/]"
        elif check.ok:
            mark = "[green]✓[/]"
        else:
            mark = "[red]✗[/]"
            failed += 1
        fix = f" [yellow]→ {escape(check.fix)}[/]" if check.fix and not check.ok else ""
        out.print(f"{mark} [bold]{escape(check.name)}[/]: {escape(check.detail)}{fix}",
                      soft_wrap=True)
    if failed:
        out.print(f"[red]{failed} check(s) failed[/]", soft_wrap=True)
        raise typer.Exit(1)
    out.print("[green]all checks passed[/]", soft_wrap=True)
