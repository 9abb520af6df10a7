"""Rich renderings for the ``opencell sessions`` / ``session`` / ``costs`` commands."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from opencell.cli.fit import Column, Shown, piped, show
from opencell.records import short_session_id

STATUS_STYLE = {"open": "yellow", "success": "green", "failed": "red"}
END_LABELS = {"idle_timeout": "idle", "shutdown": "shutdown", "end_command": "/end",
              "explicit": "ended", "interrupted": "crash"}


def money(value: float | None) -> str:
    return "unpriced" if value is None else f"${value:,.4f}"


def millis(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.1f}s" if value >= 1000 else f"{value:.0f}ms"


def when(iso: str | None) -> str:
    return (iso or "-").replace("T", " ")[:19]


SESSION_COLUMNS = (
    Column("id", keep=True), Column("bot@platform", keep=True, fold=True),
    Column("user", drop=5, fold=True), Column("status", keep=True),
    Column("started", drop=4), Column("took", justify="right", drop=6),
    Column("msg", justify="right", drop=7), Column("llm", justify="right", drop=8),
    Column("tool", justify="right", drop=9), Column("fail", justify="right", drop=2),
    Column("err", justify="right", drop=3), Column("cost", keep=True, justify="right"),
)
"""What ``opencell sessions`` shows; in a narrow terminal the counts go first, never the id,
bot, status or cost."""

COUNTS_NOTE = ("fail: failed turns (no answer); err: error events, also those inside turns "
               "that were retried and answered")
"""Failed turns and errors are different counts (the dashboard says the same)."""


def show_sessions(rows: Sequence[Mapping[str, Any]]) -> None:
    """``opencell sessions``: a fitted table in a terminal, TSV (full ids) when piped."""
    cells = []
    for row in rows:
        status = str(row["status"])
        reason = END_LABELS.get(str(row.get("end_reason")), "")
        label = status if status == "open" else f"{status} {reason}".strip()
        cost = money(row.get("cost_usd"))
        if row.get("unpriced_calls"):
            cost += f" +{row['unpriced_calls']}?"
        errors, failed = int(row["errors"]), int(row.get("failed_turns") or 0)
        cells.append([
            Shown(Text(short_session_id(row["id"])), str(row["id"])),
            Text(f"{row['bot']}@{row['platform']}"), Text(str(row.get("user_id") or "")),
            Text(label, style=STATUS_STYLE.get(status, "")),
            Shown(when(row.get("started_at"))[5:16], str(row.get("started_at") or "")),
            millis(row.get("duration_ms")), str(row["messages"]), str(row["llm_calls"]),
            str(row["tool_calls"]), Text(str(failed), style="red" if failed else ""),
            Text(str(errors), style="yellow" if errors else ""), cost])
    show(SESSION_COLUMNS, cells, title=f"{len(rows)} session(s)",
         caption="" if piped() else COUNTS_NOTE)


RATING = {"good": "👍", "bad": "👎"}


def _detail(event: Mapping[str, Any], ratings: Mapping[str, list[str]] | None = None) -> str:
    kind = event["kind"]
    if kind == "message":
        rated = (ratings or {}).get(str(event.get("message_id") or ""), [])
        marks = f"\n  rated {' '.join(rated)}" if rated else ""
        return f"» {event.get('input') or ''}\n« {event.get('output') or ''}{marks}"
    if kind == "custom" and event.get("name") == "feedback":
        data = event.get("data") or {}
        value = data.get("value")
        said = f"{RATING.get(value, value)} {value}" if value else "retracted"
        comment = f" “{data['comment']}”" if data.get("comment") else ""
        return (f"{said} on turn {data.get('turn')} by {data.get('user_id')} "
                f"({data.get('source')}){comment}")
    if kind == "llm_call":
        if event.get("error"):
            return f"{event.get('model')} failed: {event['error']}"
        estimated = " (usage estimated: worst case)" if event.get("usage_estimated") else ""
        return (f"{event.get('response_model') or event.get('model')} "
                f"in {event.get('input_tokens', 0)} out {event.get('output_tokens', 0)} "
                f"cache r/w {event.get('cache_read_tokens', 0)}/"
                f"{event.get('cache_write_tokens', 0)} {money(event.get('cost_usd'))}"
                f"{estimated}")
    if kind == "tool_call":
        args = json.dumps(event.get("args"), default=str)
        outcome = event.get("error") or event.get("result") or ""
        return f"{event.get('tool')}({args}) → {outcome}"
    if kind == "error":
        return f"{event.get('type')}: {event.get('message')}"
    if kind == "alert":
        return _alert(event)
    if kind in ("session_start", "session_end"):
        keys = ("platform", "user_id", "channel") if kind == "session_start" else (
            "reason", "status")
        return " ".join(f"{k}={event.get(k)}" for k in keys)
    payload = {k: v for k, v in event.items()
               if k not in {"id", "ts", "kind", "name", "duration_ms", "success"}}
    return json.dumps(payload, default=str)


def session_view(session: Mapping[str, Any], events: Sequence[Mapping[str, Any]]) -> Group:
    summary = Table.grid(padding=(0, 2))
    summary.add_column(style="bold")
    summary.add_column()
    for label, value in [
        ("bot", f"{session['bot']} ({session['bot_type']})"),
        ("platform", session["platform"]), ("user", session.get("user_id")),
        ("channel", f"{session.get('channel') or '-'} thread {session.get('thread') or '-'}"),
        ("status", f"{session['status']} ({session.get('end_reason') or 'open'})"),
        ("started", when(session.get("started_at"))),
        ("ended", when(session.get("ended_at"))),
        ("duration", millis(session.get("duration_ms"))),
        ("turns", _turns(session)),
        ("tokens", f"{session['input_tokens']:,} in / {session['output_tokens']:,} out"),
        ("cost", money(session.get("cost_usd"))), ("tags", ", ".join(session.get("tags") or [])),
        ("feedback", _feedback_summary(session.get("feedback") or [])),
    ]:
        summary.add_row(label, Text(str(value)))
    timeline = Table(title="timeline", title_justify="left", expand=True)
    timeline.add_column("time", no_wrap=True)
    timeline.add_column("kind", no_wrap=True)
    timeline.add_column("name")
    timeline.add_column("took", justify="right", no_wrap=True)
    timeline.add_column("ok", no_wrap=True)
    timeline.add_column("details", ratio=1)
    ratings: dict[str, list[str]] = {}
    for rating in session.get("feedback") or []:
        ratings.setdefault(str(rating["turn"]), []).append(RATING[rating["value"]])
    for event in events:
        ok = event.get("success")
        mark = Text("-" if ok is None else ("yes" if ok else "no"),
                    style="" if ok is None else ("green" if ok else "red"))
        timeline.add_row(when(event.get("ts"))[11:], event["kind"], Text(str(event["name"])),
                         millis(event.get("duration_ms")), mark,
                         Text(_detail(event, ratings)))
    return Group(Panel(summary, title=f"session {session['id']}", title_align="left"),
                 timeline)


def _turns(session: Mapping[str, Any]) -> str:
    """Turns, failed turns and error events, each named (they are different counts)."""
    turns, failed = int(session.get("messages") or 0), int(session.get("failed_turns") or 0)
    errors = int(session.get("errors") or 0)
    answered = " (every turn answered)" if errors and not failed and turns else ""
    return (f"{turns} · {failed} failed · {errors} error event{'' if errors == 1 else 's'}"
            f"{answered}")


def _feedback_summary(ratings: Sequence[Mapping[str, Any]]) -> str:
    good = sum(1 for r in ratings if r["value"] == "good")
    bad = len(ratings) - good
    return f"👍 {good} / 👎 {bad}" if ratings else "-"


def _alert(event: Mapping[str, Any]) -> str:
    """A budget alert in one line: level, scope, what happened, spend against the limit."""
    raw = event.get("data")
    data: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
    kind = data.get("kind") or event.get("name")
    spent, limit = event.get("spent_usd"), event.get("limit_usd")
    against = ""
    if isinstance(spent, int | float):
        against = f" (${spent:,.4f}" + (f" of ${limit:,.2f}" if isinstance(
            limit, int | float) else "") + ")"
    return (f"{event.get('level') or 'alert'} {kind} {event.get('scope') or ''}: "
            f"{event.get('message') or ''}{against}").replace("  ", " ")


COST_TOP = 20
"""``costs --by user`` (and every breakdown) lists this many rows, then one "others" row."""


def show_costs(rows: Sequence[Mapping[str, Any]], *, by: str, period: str,
               top: int = COST_TOP) -> None:
    """``opencell costs``: the ``top`` most expensive keys, one "others" row, and a total."""
    total = sum(r.get("cost_usd") or 0.0 for r in rows)
    unpriced = sum(r.get("unpriced_calls") or 0 for r in rows)
    estimated = sum(r.get("estimated_calls") or 0 for r in rows)
    caption = ""
    if estimated:
        caption = (f"{estimated} call(s) had missing or impossible usage from the "
                   "provider and are counted at their worst case (estimated)")
    shown = list(rows[:top])
    rest = rows[top:]
    if rest:
        others: dict[str, Any] = {"key": f"others ({len(rest)} {by}s)"}
        for name in ("calls", "input_tokens", "output_tokens", "cache_read_tokens",
                     "cache_write_tokens", "unpriced_calls", "estimated_calls"):
            others[name] = sum(int(r.get(name) or 0) for r in rest)
        others["cost_usd"] = sum(r.get("cost_usd") or 0.0 for r in rest)
        shown.append(others)
    columns = (
        Column(by, keep=True, fold=True, footer="total"),
        Column("calls", justify="right", drop=2, footer=str(sum(r["calls"] for r in rows))),
        Column("in tokens", justify="right", drop=4),
        Column("out tokens", justify="right", drop=3),
        Column("cache r/w", justify="right", drop=5),
        Column("cost", keep=True, justify="right", footer=money(total)),
        Column("unpriced", justify="right", drop=6, footer=str(unpriced)),
        Column("estimated", justify="right", drop=7, footer=str(estimated)),
    )
    cells = [[Text(str(row["key"])), str(row["calls"]), f"{row['input_tokens']:,}",
              f"{row['output_tokens']:,}",
              f"{row['cache_read_tokens']:,}/{row['cache_write_tokens']:,}",
              money(row.get("cost_usd")),
              Text(str(row.get("unpriced_calls") or 0),
                   style="yellow" if row.get("unpriced_calls") else ""),
              Text(str(row.get("estimated_calls") or 0),
                   style="yellow" if row.get("estimated_calls") else "")] for row in shown]
    show(columns, cells, title=f"cost by {by}, this {period}", caption=caption,
         footer=bool(rows))
