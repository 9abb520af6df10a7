"""Terminal views of replays, bot versions and what-if costs (rich)."""

from __future__ import annotations

import difflib
import statistics
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from opencell.cli.views import millis, money

if TYPE_CHECKING:
    from opencell.replay import ReplayResult, Tally, ToolUse, TurnComparison


def diff_texts(old: str, new: str) -> tuple[Text, Text]:
    """The two replies with the words that differ highlighted (removed red, added green)."""
    a, b = old.split(" "), new.split(" ")
    left, right = Text(), Text()
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        old_part, new_part = " ".join(a[i1:i2]), " ".join(b[j1:j2])
        if tag == "equal":
            left.append(old_part + " ")
            right.append(new_part + " ")
            continue
        if old_part:
            left.append(old_part + " ", style="bold red")
        if new_part:
            right.append(new_part + " ", style="bold green")
    left.rstrip()
    right.rstrip()
    return left, right


def _usage(tally: Tally, latency: float | None) -> str:
    tokens = tally.input_tokens + tally.output_tokens + tally.cache_read_tokens \
        + tally.cache_write_tokens
    unpriced = f" +{tally.unpriced_calls} unpriced" if tally.unpriced_calls else ""
    return (f"{tally.llm_calls} call(s) · {tokens:,} tok · {money(tally.cost_usd)}{unpriced}"
            f" · {millis(latency)}")


def _tools(uses: Sequence[ToolUse]) -> str:
    return ", ".join(f"{u.name}({_short(u.arguments)})"
                     + ("" if u.served in ("recorded", "replayed", "live") else f" [{u.served}]")
                     for u in uses) or "—"


def _short(value: Any, limit: int = 60) -> str:
    import json

    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[:limit] + "…"


def turn_table(turn: TurnComparison) -> Table:
    marks = []
    if turn.changed:
        marks.append("reply changed")
    if turn.tools_changed:
        marks.append("tool calls changed")
    if turn.failed:
        marks.append("FAILED")
    title = Text(f"turn {turn.number}: ", style="bold")
    title.append(turn.text if len(turn.text) <= 200 else turn.text[:200] + "…")
    if marks:
        title.append(f"  [{', '.join(marks)}]", style="yellow" if not turn.failed else "red")
    table = Table(title=title, title_justify="left", expand=True, show_lines=True)
    table.add_column("recorded", ratio=1, overflow="fold")
    table.add_column("replayed", ratio=1, overflow="fold")
    old, new = diff_texts(turn.recorded_reply or "", turn.reply)
    table.add_row(old, new)
    table.add_row(Text(_usage(turn.recorded, turn.recorded_latency_ms), style="dim"),
                  Text(_usage(turn.new, turn.latency_ms), style="dim"))
    if turn.recorded_tools or turn.tools:
        table.add_row(Text("tools: " + _tools(turn.recorded_tools), style="cyan"),
                      Text("tools: " + _tools(turn.tools), style="cyan"))
    if turn.error:
        table.add_row("", Text(f"error: {turn.error}", style="red"))
    return table


def replay_view(result: ReplayResult) -> Group:
    head = Text.assemble(
        ("replay ", "bold"), (result.replay_id, "cyan"), " of ", (result.source_id, "cyan"),
        f"\nbot {result.bot} · {result.provider}:{result.model} · tools {result.tools_mode}"
        f" · version {result.version[:12]} (source ran {(result.source_version or '?')[:12]})")
    totals = Table(title="totals", title_justify="left")
    for column in ("", "turns", "changed", "failed", "calls", "tokens", "cost", "latency"):
        totals.add_column(column, justify="right" if column else "left")
    for name, tally, latency, changed, failed in (
            ("recorded", result.recorded, result.recorded_latency_ms, "", sum(
                1 for t in result.turns if t.recorded_failed)),
            ("replayed", result.new, result.latency_ms, result.changed_turns,
             result.failed_turns)):
        tokens = tally.input_tokens + tally.output_tokens + tally.cache_read_tokens \
            + tally.cache_write_tokens
        totals.add_row(name, str(len(result.turns)), str(changed), str(failed),
                       str(tally.llm_calls), f"{tokens:,}", money(tally.cost_usd),
                       millis(latency))
    parts: list[Any] = [head, *(turn_table(t) for t in result.turns), totals]
    if result.unanswered_tools:
        parts.append(Text(f"{result.unanswered_tools} tool call(s) had no recorded result "
                          "(the model got an error result)", style="yellow"))
    return Group(*parts)


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def batch_summary(results: Sequence[ReplayResult], errors: Sequence[str],
                  budget: str | None) -> Group:
    per_model: dict[tuple[str, str], dict[str, Any]] = {}
    for result in results:
        for turn in result.turns:
            for side, tally, latency in (("recorded", turn.recorded, turn.recorded_latency_ms),
                                         ("replayed", turn.new, turn.latency_ms)):
                model = ", ".join(tally.models) or (result.model if side == "replayed" else "?")
                row = per_model.setdefault((side, model), {"turns": 0, "cost": 0.0,
                                                           "tokens": 0, "latency": []})
                row["turns"] += 1
                row["cost"] += tally.cost_usd
                row["tokens"] += tally.input_tokens + tally.output_tokens
                if latency is not None:
                    row["latency"].append(latency)
    turns = sum(len(r.turns) for r in results)
    changed = sum(r.changed_turns for r in results)
    failed = sum(r.failed_turns for r in results)
    head = Text(f"{len(results)} session(s) replayed · {turns} turn(s) · {changed} "
                f"repl{'y' if changed == 1 else 'ies'} changed · {failed} failed turn(s) · "
                f"{len(errors)} replay error(s)", style="bold red" if failed or errors
                else "bold")
    table = Table(title="cost and latency per model", title_justify="left")
    for column in ("", "model", "turns", "tokens", "cost", "latency p50", "latency p95"):
        table.add_column(column, justify="right" if column not in ("", "model") else "left")
    for (side, model), row in sorted(per_model.items()):
        table.add_row(side, model, str(row["turns"]), f"{row['tokens']:,}",
                      money(row["cost"]), millis(percentile(row["latency"], 50)),
                      millis(percentile(row["latency"], 95)))
    parts: list[Any] = [head, table]
    parts += [Text(f"error: {e}", style="red") for e in errors]
    if budget:
        parts.append(Text(budget, style="yellow"))
    return Group(*parts)


def what_if_table(rows: Sequence[Mapping[str, Any]], *, by: str, period: str,
                  model: str, sums: Mapping[str, Any], what_if_total: float | None) -> Table:
    table = Table(title=f"cost by {by}, this {period}, and as if {model} had answered",
                  title_justify="left", show_footer=bool(rows))
    keys = int(sums.get("keys") or 0)
    if keys > len(rows):
        table.caption = f"the {len(rows)} most expensive of {keys:,}; totals cover all"
        table.caption_justify = "left"
    table.add_column(by, footer=f"total ({keys:,})", overflow="fold", min_width=12)
    table.add_column("calls", justify="right", footer=f"{int(sums.get('calls') or 0):,}")
    table.add_column("tokens in/out", justify="right")
    table.add_column("cache r/w", justify="right")
    table.add_column("cost", justify="right", footer=money(float(sums.get("cost_usd") or 0)))
    table.add_column(f"what-if {model}", justify="right", footer=money(what_if_total))
    for row in rows:
        what_if = row.get("what_if_usd")
        table.add_row(Text(str(row["key"])), str(row["calls"]),
                      f"{row['input_tokens']:,}/{row['output_tokens']:,}",
                      f"{row['cache_read_tokens']:,}/{row['cache_write_tokens']:,}",
                      money(row.get("cost_usd")),
                      money(what_if) if what_if is not None else Text("unpriced",
                                                                      style="yellow"))
    return table


def versions_table(bot: str, rows: Sequence[Mapping[str, Any]]) -> Table:
    table = Table(title=f"versions of {bot}", title_justify="left")
    for column in ("version", "origin", "model", "sessions", "turns", "cost/turn",
                   "tokens/turn", "p50", "p95", "failed turns", "tool errors", "👎",
                   "last seen"):
        table.add_column(column, justify="left" if column in (
            "version", "origin", "model", "last seen") else "right")
    for row in rows:
        per_turn = row.get("tokens_per_turn")
        thumbs = row.get("thumbs_down_rate")
        table.add_row(
            Text((row.get("version") or "(unknown)")[:12], style="cyan"), row["origin"],
            row.get("model") or "-", str(row["sessions"]), str(row["turns"]),
            money(row.get("cost_per_turn")) if row.get("cost_per_turn") is not None else "-",
            f"{per_turn:,.0f}" if per_turn is not None else "-",
            millis(row.get("latency_p50_ms")), millis(row.get("latency_p95_ms")),
            Text(str(row["failed_turns"]), style="red" if row["failed_turns"] else ""),
            Text(str(row["tool_errors"]), style="yellow" if row["tool_errors"] else ""),
            f"{thumbs:.0%}" if thumbs is not None else "-",
            (row.get("last_seen") or "-").replace("T", " ")[:19])
    if not rows:
        table.caption = "no sessions of this bot"
    return table


def version_diff(a: str, a_text: str, b: str, b_text: str) -> Group:
    lines = difflib.unified_diff(a_text.splitlines(), b_text.splitlines(),
                                 fromfile=f"version {a[:12]}", tofile=f"version {b[:12]}",
                                 lineterm="")
    out = []
    for line in lines:
        style = ("bold" if line.startswith(("---", "+++")) else "red" if line.startswith("-")
                 else "green" if line.startswith("+") else "cyan" if line.startswith("@@")
                 else "")
        out.append(Text(line, style=style))
    return Group(*(out or [Text("the two versions are the same")]))
