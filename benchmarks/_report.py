"""Shared output for the benchmarks: figures with targets, a rich table, and one JSON object."""

from __future__ import annotations

import json
import os
import platform
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class Figure:
    """One measured number, what it is compared with, and whether its target is met."""

    group: str
    name: str
    value: float | None
    unit: str
    target: str = ""
    met: bool | None = None
    baseline: str = ""
    note: str = ""


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def machine() -> dict[str, Any]:
    return {"cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "processor": platform.machine()}


def print_table(figures: Sequence[Figure], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in ("group", "figure", "value", "target", "met", "baseline (same run)", "note"):
        table.add_column(column, overflow="fold")
    for fig in figures:
        value = "n/a" if fig.value is None else f"{fig.value:,.3f} {fig.unit}".rstrip()
        met = {True: "[green]met[/]", False: "[red]not met[/]", None: "-"}[fig.met]
        table.add_row(fig.group, fig.name, value, fig.target, met, fig.baseline, fig.note)
    Console(width=160).print(table)


def as_json(figures: Sequence[Figure], **extra: Any) -> str:
    return json.dumps({"machine": machine(), **extra,
                       "figures": [asdict(f) for f in figures]}, indent=2)


def run_main(argv: Sequence[str] | None, doc: str, run: Callable[[bool], list[Figure]],
             title: str) -> list[Figure]:
    """The command line of a benchmark module: ``--quick``, run it, print its table."""
    import argparse

    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts")
    figures = run(parser.parse_args(argv).quick)
    print_table(figures, title)
    return figures
