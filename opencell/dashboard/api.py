"""The JSON API (DESIGN §3): sessions, one session's replay, analytics, costs, the live stream.

Every parameter is validated (a bad value is a 422 naming the parameter); the OpenAPI schema
is served at ``/api/openapi.json`` with docs at ``/api/docs``. ``/healthz`` and ``/metrics``
live here too.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

from annotated_types import Interval
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import PlainTextResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from opencell.calendar import CostDimension, Period, period_bounds
from opencell.dashboard import metrics, queries
from opencell.dashboard.live import event_stream, timeline_after
from opencell.dashboard.state import state_of
from opencell.dashboard.timeaxis import Asked, RangeTooLong, TimeAxis, time_axis
from opencell.dashboard.trends import trends
from opencell.dashboard.views import (
    FIRST_DAY,
    LAST_DAY,
    SessionFilters,
    session_detail,
    session_filters,
    session_seq,
)
from opencell.errors import StoreError

router = APIRouter()

MAX_RANGE_DAYS = 400

Text = Annotated[str | None, Query(max_length=200)]
Day = Annotated[Annotated[date, Interval(ge=FIRST_DAY, le=LAST_DAY)] | None,
               Query(description="A UTC day, YYYY-MM-DD.")]


class SessionOut(BaseModel):
    """A session with its running totals (timestamps ISO 8601 UTC)."""

    model_config = ConfigDict(extra="allow")
    id: str
    bot: str
    bot_type: str | None = None
    platform: str | None = None
    user_id: str | None = None
    user_name: str | None = None
    channel: str | None = None
    thread: str | None = None
    status: str = Field(description="open, success or failed")
    end_reason: str | None = None
    started_at: str
    ended_at: str | None = None
    duration_ms: float | None = None
    messages: int
    failed_turns: int = Field(0, description="Turns that failed (the user got no answer).")
    llm_calls: int
    tool_calls: int
    errors: int = Field(description="Error events, also those inside turns that were "
                                    "retried and answered (see failed_turns).")
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float
    unpriced_calls: int
    tags: list[str]
    metadata: dict[str, Any]


class SessionPage(BaseModel):
    """One page of sessions; pass ``next_cursor`` back as ``cursor`` for the next one, and
    ``prev_cursor`` as ``before`` for the one before."""

    sessions: list[SessionOut]
    next_cursor: str | None
    prev_cursor: str | None = None
    total: int | None = Field(None, description="Sessions matching the filters, all pages "
                                                "(counted up to a cap: see total_capped).")
    total_capped: bool = Field(False, description="There are more than ``total``.")


class TimelineEvent(BaseModel):
    """One recorded event; the fields of its kind come alongside (see DESIGN §3)."""

    model_config = ConfigDict(extra="allow")
    id: int
    ts: str
    kind: str
    name: str
    duration_ms: float | None = None
    success: bool | None = None


class ModelCost(BaseModel):
    provider: str | None
    model: str | None
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    unpriced_calls: int


class SessionDetail(BaseModel):
    """A session, its timeline in recorded order, and its cost per model."""

    session: SessionOut
    timeline: list[TimelineEvent]
    cost_by_model: list[ModelCost]
    truncated: bool = Field(description="True when the timeline was cut at `limit` events; "
                                        "ask again with `after` = the last event's id")


def _range(since: date | None, until: date | None) -> tuple[date, date]:
    last = until or queries.today()
    first = since or max(FIRST_DAY, last - timedelta(days=29))
    if first > last:
        raise HTTPException(422, [{"loc": ["query", "since"], "type": "value_error",
                                   "msg": "since must not be after until"}])
    if (last - first).days >= MAX_RANGE_DAYS:
        raise HTTPException(422, [{"loc": ["query", "since"], "type": "value_error",
                                   "msg": f"the range may span at most {MAX_RANGE_DAYS} days"}])
    return first, last


@router.get("/api/sessions", response_model=SessionPage, tags=["sessions"])
def list_sessions(request: Request,
                  filters: Annotated[SessionFilters, Query()]) -> dict[str, Any]:
    """Sessions, newest first by default, with filters and keyset pagination (never OFFSET)."""
    found = session_filters(filters)
    try:
        return state_of(request).store.session_page(**found)
    except StoreError as exc:
        if "cursor" in str(exc):
            raise HTTPException(422, [{"loc": ["query", "cursor"], "msg": str(exc),
                                       "type": "value_error"}]) from None
        raise


@router.get("/api/sessions/{session_id}", response_model=SessionDetail, tags=["sessions"],
            responses={404: {"description": "No such session"},
                       409: {"description": "The id prefix matches several sessions"}})
def get_session(request: Request,
                session_id: Annotated[str, PathParam(min_length=1, max_length=64)],
                after: Annotated[int | None, Query(ge=0, le=2**62)] = None,
                limit: Annotated[int, Query(ge=1, le=5000)] = 2000) -> dict[str, Any]:
    """One session (by id or a unique id prefix) with its timeline."""
    return session_detail(state_of(request), session_id, after=after, limit=limit)


Per = Annotated[Asked, Query(description="auto (per hour up to 2 days, else per day), day "
                                         "or hour (ranges up to 7 days).")]


def _axis(first: date, last: date, per: Asked) -> TimeAxis:
    try:
        return time_axis(first, last, per)
    except RangeTooLong as exc:
        raise HTTPException(422, [{"loc": ["query", "per"], "type": "value_error",
                                   "msg": str(exc)}]) from None


@router.get("/api/analytics", tags=["analytics"])
def get_analytics(request: Request, bot: Text = None, since: Day = None,
                  until: Day = None, per: Per = "auto") -> dict[str, Any]:
    """Per bot: sessions, success rate, turns and failed turns, error events, response time
    p50/p95; cost today/week/month; cost, sessions and error events per day or hour
    (``granularity``); most used tools; errors per type. Range: UTC days, default the last
    30."""
    first, last = _range(since, until)
    axis = _axis(first, last, per)
    return state_of(request).read(
        lambda conn: queries.analytics(conn, first=first, last=last, bot=bot or None,
                                       axis=axis))


@router.get("/api/trends", tags=["analytics"])
def get_trends(request: Request, bot: Text = None, since: Day = None, until: Day = None,
               per: Per = "auto") -> dict[str, Any]:
    """The analytics page's lines over time, per UTC day or hour: response time p50/p95
    (all bots, and p95 per bot), the share of failed turns, tokens and cost per model. Each
    chart: ``granularity``, ``days`` or ``hours``, ``unit``, ``series`` (``None`` where
    nothing was recorded)."""
    first, last = _range(since, until)
    axis = _axis(first, last, per)
    return state_of(request).read(lambda conn: trends(conn, axis, bot or None))


@router.get("/api/costs", tags=["costs"])
def get_costs(request: Request,
              by: Annotated[CostDimension, Query()] = "bot",
              period: Annotated[Period, Query()] = "day",
              at: Day = None) -> dict[str, Any]:
    """Cost per bot, user, platform, provider or model over the UTC day, ISO week or month
    holding ``at`` (default today); models without a price are listed in ``unpriced``, and
    those whose usage the provider did not credibly report (counted at their worst case) in
    ``estimated``."""
    day = at or queries.today()

    def read(conn: Any) -> dict[str, Any]:
        out = queries.cost_breakdown(conn, by, period, day)
        first, last = period_bounds(period, day)
        out["unpriced"] = queries.unpriced_models(conn, first, last)
        out["estimated"] = queries.estimated_usage(conn, first, last)
        out["daily"] = queries.daily_cost(conn, first, last,
                                          by="bot" if by == "user" else by)
        return out

    return state_of(request).read(read)


@router.get("/api/stream", tags=["live"], response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "Server-sent events: tick, sessions, timeline, "
                                            "resync, bye"}})
def stream(request: Request,
           session: Annotated[str | None, Query(max_length=64)] = None,
           after: Annotated[int | None, Query(ge=0, le=2**62)] = None) -> StreamingResponse:
    """Live updates as server-sent events. Without ``session``: ``tick`` (open sessions, cost
    today and this month) and ``sessions`` (started and ended ones). With ``session``: also
    ``timeline`` with that session's new events (those after event id ``after`` first)."""
    state = state_of(request)
    seq = session_seq(state, session) if session else None
    catch_up = None
    if seq is not None and after is not None:
        def catch_up() -> list[dict[str, Any]]:
            return state.read(lambda conn: timeline_after(conn, seq, after))
    return StreamingResponse(event_stream(state.feed, seq, catch_up=catch_up),
                             media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@router.get("/healthz", tags=["operations"])
def healthz(request: Request) -> dict[str, Any]:
    """``{"status": "ok"}`` when the store answers (503 otherwise)."""
    state = state_of(request)
    newest = state.read(queries.last_event_id)
    return {"status": "ok", "store": state.store.url, "last_event_id": newest,
            "time": datetime.now(UTC).isoformat(timespec="seconds")}


@router.get("/metrics", tags=["operations"], response_class=PlainTextResponse)
def get_metrics(request: Request) -> PlainTextResponse:
    """Prometheus text: sessions open, turns, model and tool calls, tokens, cost, errors,
    recorder queue and drops (in the recording process), exporter gauges (when hooked)."""
    state = state_of(request)
    recorder = state.recorder_stats() if state.recorder_stats else None
    exporters = state.exporter_stats() if state.exporter_stats else None
    text = state.read(lambda conn: metrics.render(conn, recorder=recorder, exporters=exporters))
    return PlainTextResponse(text, media_type=metrics.CONTENT_TYPE)

