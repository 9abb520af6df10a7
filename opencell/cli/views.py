"""Rich renderings for the ``opencell sessions`` / ``session`` / ``costs`` commands."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

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


def sessions_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    table = Table(title=f"{len(rows)} session(s)", title_justify="left", pad_edge=False)
    table.add_column("id", no_wrap=True, min_width=12)
    table.add_column("bot@platform", min_width=12, overflow="ellipsis")
    table.add_column("user", min_width=6, overflow="ellipsis")
    table.add_column("status", min_width=10, overflow="ellipsis")
    table.add_column("started", no_wrap=True)
    for name in ("took", "msg", "llm", "tool", "err", "cost"):
        table.add_column(name, justify="right", no_wrap=True)
    for row in rows:
        status = str(row["status"])
        reason = END_LABELS.get(str(row.get("end_reason")), "")
        label = status if status == "open" else f"{status} {reason}".strip()
        cost = money(row.get("cost_usd"))
        if row.get("unpriced_calls"):
            cost += f" +{row['unpriced_calls']}?"
        errors = int(row["errors"])
        table.add_row(
            Text(short_session_id(row["id"])), Text(f"{row['bot']}@{row['platform']}"),
            Text(str(row.get("user_id") or "")),
            Text(label, style=STATUS_STYLE.get(status, "")), when(row.get("started_at"))[5:16],
            millis(row.get("duration_ms")), str(row["messages"]), str(row["llm_calls"]),
            str(row["tool_calls"]), Text(str(errors), style="red" if errors else ""), cost)
    return table


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


def _feedback_summary(ratings: Sequence[Mapping[str, Any]]) -> str:
    good = sum(1 for r in ratings if r["value"] == "good")
    bad = len(ratings) - good
    return f"👍 {good} / 👎 {bad}" if ratings else "-"


def costs_table(rows: Sequence[Mapping[str, Any]], *, by: str, period: str) -> Table:
    table = Table(title=f"cost by {by}, this {period}", title_justify="left",
                  show_footer=bool(rows))
    total = sum(r.get("cost_usd") or 0.0 for r in rows)
    unpriced = sum(r.get("unpriced_calls") or 0 for r in rows)
    estimated = sum(r.get("estimated_calls") or 0 for r in rows)
    if estimated:
        table.caption = (f"{estimated} call(s) had missing or impossible usage from the "
                         "provider and are counted at their worst case (estimated)")
        table.caption_justify = "left"
    table.add_column(by, footer="total", overflow="fold", min_width=12)
    table.add_column("calls", justify="right", footer=str(sum(r["calls"] for r in rows)))
    table.add_column("in tokens", justify="right")
    table.add_column("out tokens", justify="right")
    table.add_column("cache r/w", justify="right")
    table.add_column("cost", justify="right", footer=money(total))
    table.add_column("unpriced", justify="right", footer=str(unpriced))
    table.add_column("estimated", justify="right", footer=str(estimated))
    for row in rows:
        table.add_row(Text(str(row["key"])), str(row["calls"]), f"{row['input_tokens']:,}",
                      f"{row['output_tokens']:,}",
                      f"{row['cache_read_tokens']:,}/{row['cache_write_tokens']:,}",
                      money(row.get("cost_usd")),
                      Text(str(row.get("unpriced_calls") or 0),
                           style="yellow" if row.get("unpriced_calls") else ""),
                      Text(str(row.get("estimated_calls") or 0),
                           style="yellow" if row.get("estimated_calls") else ""))
    return table
