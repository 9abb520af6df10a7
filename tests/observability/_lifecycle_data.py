"""Sessions with every kind of content, for the retention, erasure and export tests."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from opencell.records import Record, new_session_id
from opencell.store.store import Store
from opencell.store.tables import METADATA

LONG = 3000
"""Characters of the long texts: above ``texts.SHARED_MIN_CHARS``, so stored once by digest."""


def session_records(user: str, ts: float, marker: str, *, platform: str = "discord",
                    bot: str = "support", cost: float = 0.25,
                    speaker: str | None = None) -> tuple[str, list[Record]]:
    """One session of ``user`` whose every content field holds ``marker`` (a message by
    ``speaker`` when given: someone else talking in that user's session)."""
    sid = new_session_id(ts)
    long_text = f"{marker} " + "x" * LONG
    who = speaker or user
    records = [
        Record("session_start", sid, ts, bot, {
            "bot": bot, "bot_type": "conversational", "platform": platform, "workspace": "W1",
            "channel": "C1", "thread": None, "user_id": user, "user_name": f"{user}-name",
            "tags": ["prod"], "key": f"{bot}/{platform}/{user}"}),
        Record("message", sid, ts + 1, "turn", {
            "input": f"hello {marker}", "output": f"answer {marker}", "user_id": who,
            "input_chars": 30, "output_chars": 40}, 120.0, True),
        Record("message", sid, ts + 2, "turn", {
            "input": long_text, "output": "ok", "user_id": who,
            "input_chars": len(long_text), "output_chars": 2}, 90.0, True),
        Record("llm_call", sid, ts + 3, "claude:sonnet", {
            "provider": "claude", "model": "sonnet", "response_model": "sonnet",
            "input_tokens": 1000, "output_tokens": 200, "cache_read_tokens": 0,
            "cache_write_tokens": 0, "cost_usd": cost, "price_source": "genai-prices",
            "stop_reason": "end_turn", "request_id": "req_1", "tool_calls": ["lookup"],
            "completion": f"completion {marker}",
            "completion_calls": [{"id": "c1", "name": "lookup", "arguments": {"q": marker}}],
            "input": {"from": 0, "keep": 0, "n": 1, "call": 1,
                      "add": [{"role": "user", "content": long_text}]},
            "system": f"You help {marker}", "tools_offered": [{"name": "lookup"}]},
            400.0, True),
        Record("tool_call", sid, ts + 4, "lookup", {
            "tool": "lookup", "call_id": "c1", "args": {"q": marker},
            "result": f"result {marker}", "result_chars": 20, "truncated": False,
            "error": None, "error_type": None}, 5.0, True),
        Record("error", sid, ts + 5, "ValueError", {
            "type": "ValueError", "message": f"bad {marker}", "stack": f"stack {marker}",
            "context": {"input": marker}}, None, False),
        Record("custom", sid, ts + 6, "feedback", {"note": marker, "stars": 5}),
        Record("alert", sid, ts + 7, "budget_threshold", {
            "kind": "threshold", "level": "warning", "scope": f"user:{user}",
            "message": f"user:{user} spent $0.50 of its $1.00 daily budget"}),
        Record("session_end", sid, ts + 8, "explicit", {
            "reason": "explicit", "status": "success", "metadata": {"note": marker}}, None, True),
    ]
    return sid, records


def scan_tables(store: Store, needle: str) -> list[str]:
    """Every (table.column) in which some row's value, as text, contains ``needle``."""
    hits = []
    with store.reading() as conn:
        for table in METADATA.sorted_tables:
            for column in table.columns:
                text = sa.cast(column, sa.Text)
                found = conn.execute(sa.select(sa.func.count()).select_from(table)
                                     .where(text.contains(needle, autoescape=True))).scalar()
                if found:
                    hits.append(f"{table.name}.{column.name}")
    return hits


def snapshot(store: Store) -> dict[str, Any]:
    """Every row of every table (to show a dry run changed nothing)."""
    with store.reading() as conn:
        return {table.name: sorted(map(repr, conn.execute(sa.select(table)).all()))
                for table in METADATA.sorted_tables}
