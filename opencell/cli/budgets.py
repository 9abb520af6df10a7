"""``opencell budgets``: spend against every budget limit in its current period, and alerts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from opencell.cli._common import ConfigOption, console, fail, opened_store, print_json

if TYPE_CHECKING:  # rich's tables cost ~40 ms to import: only when this command runs
    from rich.console import Group
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

LEVEL_STYLE = {"warning": "yellow", "critical": "red"}


def budgets(
    bots: Annotated[list[Path] | None, typer.Argument(
        help="Bot YAML files whose own `budget:` to include (optional).",
        show_default=False)] = None,
    days: Annotated[float, typer.Option(help="Show alerts of the last DAYS days.", min=0)] = 7,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
    config: ConfigOption = None,
) -> None:
    """Budget usage per scope in the current day, week and month, and recent alerts."""
    from opencell.budgets import BudgetLedger
    from opencell.config import load_config
    from opencell.errors import ConfigError
    from opencell.loading import load_bots

    try:
        cfg = load_config(config)
        bot_configs = load_bots(bots or [])
    except ConfigError as exc:
        fail(exc.located(), code=2)
    with opened_store(config) as store:
        ledger = BudgetLedger(cfg.budgets, bot_configs, store=store, sync_interval=0,
                              watch_spikes=False)
        usage = ledger.usage()
        alerts = ledger.alerts(days=days)
    if as_json:
        print_json({"timezone": cfg.budgets.timezone, "usage": usage, "alerts": alerts})
        return
    console().print(budgets_view(usage, alerts, timezone=cfg.budgets.timezone))


def _bar(row: Mapping[str, Any]) -> ProgressBar:
    from rich.progress_bar import ProgressBar

    share = row["spent_usd"] / row["limit_usd"] if row["limit_usd"] else 0.0
    style = "red" if share >= 1.0 else "yellow" if share >= 0.8 else "green"
    return ProgressBar(total=row["limit_usd"], completed=min(row["spent_usd"], row["limit_usd"]),
                       width=24, complete_style=style, finished_style=style)


def budgets_view(usage: Sequence[Mapping[str, Any]], alerts: Sequence[Mapping[str, Any]], *,
                 timezone: str) -> Group | Text:
    """The usage table with bars, and the alerts table (``opencell budgets``)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    if not usage and not alerts:
        return Text("No budgets configured: add `budgets: {limits: [...]}` to "
                    "config/opencell.yaml, or `budget:` to a bot (pass its YAML here).")
    parts: list[Table | Text] = []
    if usage:
        table = Table(title=f"budgets ({timezone})", title_justify="left")
        table.add_column("scope", overflow="fold", min_width=10)
        table.add_column("period", no_wrap=True)
        table.add_column("spent", justify="right", no_wrap=True)
        table.add_column("limit", justify="right", no_wrap=True)
        table.add_column("usage", no_wrap=True)
        table.add_column("%", justify="right", no_wrap=True)
        table.add_column("enforced", no_wrap=True)
        table.add_column("resets", no_wrap=True)
        for row in usage:
            percent = float(row["percent"])
            style = "red" if percent >= 100 else "yellow" if percent >= 80 else ""
            spent = f"${row['spent_usd']:,.4f}"
            if row.get("reserved_usd"):
                spent += f" (+${row['reserved_usd']:,.4f})"
            if row.get("unpriced_calls"):
                spent += f" +{row['unpriced_calls']} unpriced"
            table.add_row(Text(str(row["scope"])), f"{row['period']} {row['period_start']}",
                          spent, f"${row['limit_usd']:,.2f}", _bar(row),
                          Text(f"{percent:.0f}%", style=style),
                          "yes" if row["enforce"] else "no",
                          str(row["resets_at"]).replace("T", " ")[:16])
        parts.append(table)
    else:
        parts.append(Text("No budget limits configured."))
    if alerts:
        listed = Table(title="alerts", title_justify="left")
        listed.add_column("when", no_wrap=True)
        listed.add_column("level", no_wrap=True)
        listed.add_column("kind", no_wrap=True)
        listed.add_column("scope", overflow="fold")
        listed.add_column("message", ratio=1)
        for alert in alerts:
            level = str(alert.get("level", ""))
            when = str(alert.get("ts", "")).replace("T", " ")[:16]
            mark = "● " if alert.get("active") else ""
            listed.add_row(when, Text(f"{mark}{level}", style=LEVEL_STYLE.get(level, "")),
                           str(alert.get("kind", "")), Text(str(alert.get("scope", ""))),
                           Text(str(alert.get("message", ""))))
        parts.append(listed)
    else:
        parts.append(Text("No alerts.", style="dim"))
    return Group(*parts)
