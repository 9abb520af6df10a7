"""What the API and the pages both compute: validated session filters, one session's replay.

The pages render exactly what the API returns, so a page and its JSON never disagree.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa
from fastapi import HTTPException
from pydantic import BaseModel, ConfigDict, Field, field_validator

from opencell.errors import AmbiguousSessionError
from opencell.store import reads as store_queries
from opencell.store.feedback import session_feedback
from opencell.store.tables import events, sessions
from opencell.transcript import ModelInput, step

if TYPE_CHECKING:
    from opencell.dashboard.state import DashboardState

FIRST_DAY = date(1970, 1, 2)
LAST_DAY = date(2999, 12, 31)
"""Days outside this range are refused (422): nothing is recorded there, and date arithmetic
near ``date.min``/``date.max`` would overflow."""

Status = Literal["open", "success", "failed"]
SortKey = Literal["started_at", "duration", "cost", "feedback"]


class SessionFilters(BaseModel):
    """Filters, sort and page of the session list. Blank values mean "no filter"."""

    model_config = ConfigDict(extra="ignore")

    bot: str | None = Field(None, max_length=200, description="Only this bot.")
    user: str | None = Field(None, max_length=200, description="User id or user name.")
    platform: str | None = Field(None, max_length=40, description="discord, slack, console …")
    status: Status | None = Field(None, description="open, success or failed.")
    tag: str | None = Field(None, max_length=200, description="Sessions carrying this tag.")
    q: str | None = Field(None, max_length=200,
                          description="Words said in the session (each a word's start), a "
                                      "session id or its start, the short id shown in lists, "
                                      "or a user.")
    since: date | datetime | None = Field(
        None, description="Started at or after: a UTC day (YYYY-MM-DD) or an ISO time.")
    until: date | datetime | None = Field(
        None, description="Started before: a UTC day (that whole day included) or an ISO time.")
    feedback: Literal["good", "bad", "rated", "unrated"] | None = Field(
        None, description="By the ratings people gave the replies (net 👍 − 👎).")
    sort: SortKey = Field("started_at",
                          description="started_at, duration, cost or feedback (net 👍 − 👎).")
    order: Literal["desc", "asc"] = "desc"
    limit: int = Field(50, ge=1, le=200)
    cursor: str | None = Field(None, max_length=500,
                               description="next_cursor of the previous page.")
    before: str | None = Field(None, max_length=500,
                               description="prev_cursor of a page: the page before it.")

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("since", "until")
    @classmethod
    def _plausible(cls, value: date | datetime | None) -> date | datetime | None:
        if value is not None and not FIRST_DAY.year <= value.year <= LAST_DAY.year:
            raise ValueError(f"must be between {FIRST_DAY} and {LAST_DAY}")
        return value


def _epoch(value: date | datetime | None, *, end: bool) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.timestamp()
    day = value + timedelta(days=1) if end else value
    return datetime.combine(day, time(), UTC).timestamp()


def session_filters(filters: SessionFilters) -> dict[str, Any]:
    """``Store.list_sessions`` keyword arguments for ``filters`` (422 for an empty range)."""
    since = _epoch(filters.since, end=False)
    until = _epoch(filters.until, end=True)
    if since is not None and until is not None and since >= until:
        raise HTTPException(422, [{"loc": ["query", "since"], "type": "value_error",
                                   "msg": "since must be before until"}])
    return {"bot": filters.bot, "user": filters.user, "platform": filters.platform,
            "status": filters.status, "tag": filters.tag, "q": filters.q, "since": since,
            "until": until, "sort": filters.sort, "descending": filters.order == "desc",
            "limit": filters.limit, "cursor": filters.cursor, "before": filters.before,
            "feedback": filters.feedback}


def session_seq(state: DashboardState, session_id: str) -> int:
    """The stored ``seq`` of a session id (404 when unknown)."""
    s = sessions.c
    seq = state.read(lambda conn: conn.execute(
        sa.select(s.seq).where(s.id == session_id.strip().lower())).scalar())
    if seq is None:
        raise HTTPException(404, f"no session '{session_id}'")
    return int(seq)


def session_detail(state: DashboardState, id_or_prefix: str, *, after: int | None = None,
                   limit: int = 2000) -> dict[str, Any]:
    """A session, up to ``limit`` timeline events (after event id ``after``), cost per model."""
    try:
        found = state.store.get_session(id_or_prefix)
    except AmbiguousSessionError as exc:
        raise HTTPException(409, str(exc)) from None
    if found is None:
        raise HTTPException(404, f"no session '{id_or_prefix}'")
    seq = session_seq(state, found["id"])
    e = events.c

    def read(conn: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
        stmt = sa.select(*store_queries.EVENT_COLUMNS).where(e.session_seq == seq)
        if after is not None:
            stmt = stmt.where(e.id > after)
        rows = conn.execute(stmt.order_by(e.id).limit(limit + 1)).mappings().all()
        timeline = store_queries.event_dicts(conn, rows)
        calls = None
        if len(timeline) > limit or after is not None:
            calls = store_queries.event_dicts(conn, conn.execute(
                sa.select(*store_queries.EVENT_COLUMNS)
                .where(e.session_seq == seq, e.kind == "llm_call")).mappings())
        return timeline, calls

    timeline, calls = state.read(read)
    found["feedback"] = session_feedback(state.store, found["id"])
    truncated = len(timeline) > limit
    timeline = timeline[:limit]
    source = calls if calls is not None else [ev for ev in timeline if ev["kind"] == "llm_call"]
    attach_model_inputs(timeline, source)
    return {"session": found, "timeline": timeline, "cost_by_model": cost_by_model(source),
            "truncated": truncated}


def attach_model_inputs(timeline: list[dict[str, Any]], calls: list[dict[str, Any]]) -> None:
    """Give each model call of ``timeline`` its whole input as ``model_input`` (``system``,
    ``tools``, ``messages``, ``missing`` earlier messages unknown, ``new``: how many of the
    last messages are new since the session's previous call), rebuilt from the deltas the
    records keep over every call of the session (``calls``, in order)."""
    if not any(ev.get("kind") == "llm_call" for ev in timeline):
        return
    ordered = sorted(calls, key=lambda ev: ev.get("id") or 0)
    by_id = {ev.get("id"): ev for ev in timeline if ev.get("kind") == "llm_call"}
    before: ModelInput | None = None
    for call in ordered:
        if not isinstance(call.get("input"), dict) and "prompt_last" not in call:
            continue
        current = step(before, call)
        if isinstance(call.get("input"), dict):
            before = current
        target = by_id.get(call.get("id"))
        if target is None or not current.known:
            continue
        delta = call.get("input")
        added = len(delta.get("add") or ()) if isinstance(delta, dict) else 1
        target["model_input"] = {"system": current.system, "tools": list(current.tools),
                                 "messages": list(current.messages),
                                 "missing": current.missing, "new": added}


def cost_by_model(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Model calls summed per (provider, model that answered), most expensive first."""
    out: dict[tuple[str | None, str | None], dict[str, Any]] = {}
    for call in calls:
        model = call.get("response_model") or call.get("model")
        key = (call.get("provider"), model)
        row = out.setdefault(key, {"provider": key[0], "model": key[1], "calls": 0,
                                   "input_tokens": 0, "output_tokens": 0, "cost_usd": 0.0,
                                   "unpriced_calls": 0})
        row["calls"] += 1
        row["input_tokens"] += _int(call.get("input_tokens"))
        row["output_tokens"] += _int(call.get("output_tokens"))
        cost = call.get("cost_usd")
        if isinstance(cost, int | float):
            row["cost_usd"] += float(cost)
        elif "cost_usd" in call:
            row["unpriced_calls"] += 1
    return sorted(out.values(), key=lambda r: (-r["cost_usd"], -r["calls"]))


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def pretty(value: Any) -> str:
    """JSON for people: indented, unicode kept (templates escape it)."""
    if isinstance(value, str):
        return value
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)
