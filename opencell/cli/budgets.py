"""``opencell budgets``: spend against every budget limit in its current period, and alerts."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from opencell.cli._common import ConfigOption, console, fail, opened_store, print_json
from opencell.cli.fit import Column, Shown, piped, show

if TYPE_CHECKING:  # rich's tables cost ~40 ms to import: only when this command runs
    from rich.progress_bar import ProgressBar

LEVEL_STYLE = {"warning": "yellow", "critical": "red"}


def budgets(
    bots: Annotated[list[Path] | None, typer.Argument(
        help="Bot YAML files whose own `budget:` to include (optional).",
        show_default=False)] = None,
    days: Annotated[float, typer.Option(help="Show alerts of the last DAYS days.", min=0)] = 7,
    top: Annotated[int, typer.Option(min=1, help="Scopes to list per limit (most spent "
                                     "first); how many more there are is always said.")] = 50,
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
        usage, hidden = top_per_limit(ledger.usage(per_limit=1_000_000), top)
        alerts = ledger.alerts(days=days)
    if as_json:
        print_json({"timezone": cfg.budgets.timezone, "usage": usage, "alerts": alerts,
                    "hidden": hidden})
        return
    show_budgets(usage, alerts, hidden, timezone=cfg.budgets.timezone)


def top_per_limit(usage: Sequence[Mapping[str, Any]], top: int
                  ) -> tuple[list[Mapping[str, Any]], list[dict[str, Any]]]:
    """The ``top`` rows of each limit (the ledger lists them most spent first), and per limit
    cut short: how many scopes and how much spend were left out — never silently."""
    kept: list[Mapping[str, Any]] = []
    counts: dict[str, int] = {}
    hidden: dict[str, dict[str, Any]] = {}
    for row in usage:
        limit = str(row["limit"])
        counts[limit] = counts.get(limit, 0) + 1
        if counts[limit] <= top:
            kept.append(row)
            continue
        out = hidden.setdefault(limit, {"limit": limit, "period": row["period"],
                                        "scopes": 0, "spent_usd": 0.0, "over_limit": 0})
        out["scopes"] += 1
        out["spent_usd"] = round(out["spent_usd"] + float(row["spent_usd"]), 6)
        out["over_limit"] += int(float(row["percent"]) >= 100)
    return kept, list(hidden.values())


def _bar(row: Mapping[str, Any]) -> ProgressBar:
    from rich.progress_bar import ProgressBar

    share = row["spent_usd"] / row["limit_usd"] if row["limit_usd"] else 0.0
    style = "red" if share >= 1.0 else "yellow" if share >= 0.8 else "green"
    return ProgressBar(total=row["limit_usd"], completed=min(row["spent_usd"], row["limit_usd"]),
                       width=BAR, complete_style=style, finished_style=style)


BAR = 20
USAGE_COLUMNS = (
    Column("scope", keep=True, fold=True), Column("period", drop=4),
    Column("spent", keep=True, justify="right"), Column("limit", keep=True, justify="right"),
    Column("usage", drop=9, width=BAR), Column("%", keep=True, justify="right"),
    Column("enforced", drop=6), Column("resets", drop=5),
)
ALERT_COLUMNS = (
    Column("when", drop=3), Column("level", keep=True), Column("kind", drop=4),
    Column("scope", keep=True, fold=True), Column("message", keep=True, fold=True),
)


def show_budgets(usage: Sequence[Mapping[str, Any]], alerts: Sequence[Mapping[str, Any]],
                 hidden: Sequence[Mapping[str, Any]], *, timezone: str) -> None:
    """The usage table with bars and the alerts table (``opencell budgets``); TSV piped."""
    from rich.text import Text

    out = console()
    if not usage and not alerts:
        out.print("No budgets configured: add `budgets: {limits: [...]}` to "
                  "config/opencell.yaml, or `budget:` to a bot (pass its YAML here).",
                  markup=False)
        return
    notes = [f"{h['scopes']} more scope(s) under limit {h['limit']} not shown "
             f"(${h['spent_usd']:,.4f} spent, {h['over_limit']} over the limit); "
             "--top N shows more" for h in hidden]
    if usage:
        rows = []
        for row in usage:
            percent = float(row["percent"])
            style = "red" if percent >= 100 else "yellow" if percent >= 80 else ""
            spent = f"${row['spent_usd']:,.4f}"
            if row.get("reserved_usd"):
                spent += f" (+${row['reserved_usd']:,.4f})"
            if row.get("unpriced_calls"):
                spent += f" +{row['unpriced_calls']} unpriced"
            rows.append([Text(str(row["scope"])), f"{row['period']} {row['period_start']}",
                         spent, _usd(row["limit_usd"]), Shown(_bar(row), ""),
                         Text(f"{percent:.0f}%", style=style),
                         "yes" if row["enforce"] else "no",
                         str(row["resets_at"]).replace("T", " ")[:16]])
        columns = USAGE_COLUMNS if not piped() else tuple(
            c for c in USAGE_COLUMNS if c.name != "usage")
        if piped():
            rows = [[cell for i, cell in enumerate(r) if i != 4] for r in rows]
        show(columns, rows, title=f"budgets ({timezone})", caption="\n".join(notes))
    else:
        out.print("No budget limits configured.")
    if piped():
        if alerts:
            sys.stdout.write("\n")
            show(ALERT_COLUMNS, _alert_rows(alerts), title="alerts")
        return
    if alerts:
        show(ALERT_COLUMNS, _alert_rows(alerts), title="alerts")
    else:
        out.print("No alerts.", style="dim")


def _usd(amount: float) -> str:
    """``$12.50``; sub-cent limits keep their digits (``$0.0010``, not ``$0.00``)."""
    return f"${amount:,.2f}" if amount >= 0.01 or amount == 0 else f"${amount:,.4f}"


def _alert_rows(alerts: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
    from rich.text import Text

    rows = []
    for alert in alerts:
        level = str(alert.get("level", ""))
        when = str(alert.get("ts", "")).replace("T", " ")[:16]
        mark = "● " if alert.get("active") else ""
        rows.append([when, Shown(Text(f"{mark}{level}", style=LEVEL_STYLE.get(level, "")),
                                 level + (" active" if mark else "")),
                     str(alert.get("kind", "")), Text(str(alert.get("scope", ""))),
                     Text(str(alert.get("message", "")))])
    return rows
