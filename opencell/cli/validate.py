"""``opencell validate``: check bot, config and pricing YAML without running anything."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from opencell.cli._common import console


def validate(
    paths: Annotated[list[Path], typer.Argument(help="Bot or config YAML files.",
                                                show_default=False)],
) -> None:
    """Check bot and config YAML. Exit 0 when all are valid, else 2 with file:line: field: why."""
    from opencell.config import BotConfig
    from opencell.loading import validate_files

    results, problems = validate_files(paths)
    for path, result in results:
        if isinstance(result, BotConfig):
            console().print(f"[green]ok[/] {path}  bot [bold]{result.name}[/] "
                             f"({result.type}, {result.llm.provider}/{result.llm.model})")
        elif isinstance(result, int):
            console().print(f"[green]ok[/] {path}  pricing ({result} override(s))")
        else:
            console().print(f"[green]ok[/] {path}  config")
    for problem in problems:
        console(stderr=True).print(problem.located(), markup=False, soft_wrap=True)
    if problems:
        raise typer.Exit(2)
