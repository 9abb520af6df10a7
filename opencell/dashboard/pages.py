"""Server-rendered pages: sessions, a session's replay, analytics, costs (Jinja2, autoescaped).

Every value shown comes from the same functions the JSON API uses. Templates never mark data
safe; charts get their numbers as JSON inside ``<script type="application/json">`` (``tojson``
escapes ``<``, ``>`` and ``&``), and the small scripts in ``static/`` write text with
``textContent`` only.
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from opencell.calendar import DIMENSIONS, Period, period_bounds
from opencell.dashboard import quality, queries, sparklines
from opencell.dashboard.api import MAX_RANGE_DAYS
from opencell.dashboard.replays import add_what_if, session_extras, what_if_model
from opencell.dashboard.state import NAV, state_of
from opencell.dashboard.timeaxis import Asked, RangeTooLong, time_axis
from opencell.dashboard.trends import trends
from opencell.dashboard.views import (
    FIRST_DAY,
    LAST_DAY,
    SessionFilters,
    pretty,
    session_detail,
    session_filters,
)
from opencell.dashboard.waterfall import waterfalls
from opencell.records import short_session_id
from opencell.store.feedback import satisfaction, session_scores

router = APIRouter(include_in_schema=False)

HELP = {
    "failed_turns": "Turns whose user got no answer: the turn itself ended in an error.",
    "errors": "Error events recorded: a model or tool call that failed, an error the bot "
              "reported. A call that failed and was retried records one inside a turn that "
              "was then answered, so there can be errors without a failed turn.",
}
"""How the pages tell failed turns from error events (headers' titles and a note)."""

END_LABELS = {"idle_timeout": "idle timeout", "explicit": "explicit end", "end_command": "/end",
              "shutdown": "shutdown", "interrupted": "interrupted (crash)"}


# ------------------------------------------------------------------ formatting


def money(value: Any, digits: int | None = None) -> str:
    """``$1,234.56``, or more digits for sub-dollar amounts (``$0.0165``)."""
    if value is None:
        return "unpriced"
    if not isinstance(value, int | float):
        return "—"
    amount = float(value)
    if digits is None:
        digits = 2 if abs(amount) >= 1 or amount == 0 else 4
    return f"${amount:,.{digits}f}"


def millis(value: Any) -> str:
    if not isinstance(value, int | float):
        return "—"
    ms = float(value)
    if 0 < ms < 1:
        return "<1 ms"
    if ms >= 60_000:
        return f"{ms / 60_000:.1f} min"
    return f"{ms / 1000:.2f} s" if ms >= 1000 else f"{ms:.0f} ms"


def number(value: Any) -> str:
    if not isinstance(value, int | float):
        return "—"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


def percent(value: Any) -> str:
    return "—" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{float(value) * 100:.1f}%"


def when(iso: Any) -> str:
    """``2026-11-29 20:31:05`` (UTC); the page's script shows it in local time."""
    return "—" if not iso else str(iso).replace("T", " ")[:19]


def setup_templates(templates: Jinja2Templates) -> None:
    """Filters and globals the templates use."""
    env = templates.env
    env.filters.update(money=money, millis=millis, number=number, percent=percent, when=when,
                       short_id=short_session_id, pretty=pretty)
    env.globals.update(nav=NAV, end_labels=END_LABELS, help=HELP)


def render(request: Request, name: str, context: dict[str, Any],
           status: int = 200) -> Response:
    templates = state_of(request).templates
    return templates.TemplateResponse(request, name, {"path": request.url.path, **context},
                                      status_code=status)


def error_page(request: Request, status: int, title: str, message: str) -> Response:
    """An error as a page in the dashboard's frame."""
    return render(request, "error.html", {"status": status, "title": title,
                                          "message": message}, status=status)


def link(path: str, params: dict[str, Any], **changes: Any) -> str:
    """``path`` with ``params`` (blank ones dropped) updated by ``changes``."""
    merged = {**params, **changes}
    query = urlencode({k: v for k, v in merged.items() if v not in (None, "")})
    return f"{path}?{query}" if query else path


# ------------------------------------------------------------------ sessions


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/sessions", status_code=307)


@router.get("/sessions")
def sessions_page(request: Request,
                  filters: Annotated[SessionFilters, Query()]) -> Response:
    state = state_of(request)
    page = state.store.session_page(**session_filters(filters))
    facets = state.read(queries.facets)
    tick = state.read(queries.tick)
    params = {k: v for k, v in filters.model_dump(mode="json").items()
              if k not in ("cursor", "before") and v is not None}
    if params.get("limit") == SessionFilters.model_fields["limit"].default:
        params.pop("limit")  # links keep a page size the user chose, and only that
    if params.get("sort") == "started_at" and params.get("order") == "desc":
        params.pop("sort")
        params.pop("order")
    return render(request, "sessions.html", {
        "rows": page["sessions"], "total": page["total"],
        "scores": session_scores(state.store, [row["id"] for row in page["sessions"]]),
        "total_capped": page["total_capped"], "filters": filters,
        "facets": facets, "tick": tick,
        "next_link": link("/sessions", params, cursor=page["next_cursor"])
        if page["next_cursor"] else None,
        "prev_link": link("/sessions", params, before=page["prev_cursor"])
        if page["prev_cursor"] else None,
        "first_link": link("/sessions", params) if filters.cursor or filters.before else None,
        "sort_links": {key: link("/sessions", params, sort=key,
                                 order=_toggled(filters, key)) for key in SORT_LABELS},
        "filtered": bool({k for k in params if k not in ("sort", "order")}),
    })


SORT_LABELS = {"started_at": "Started", "duration": "Duration", "cost": "Cost",
               "feedback": "Rating"}


def _toggled(filters: SessionFilters, key: str) -> str:
    """A column header's link: the other direction when the list is sorted by it already."""
    if filters.sort == key:
        return "asc" if filters.order == "desc" else "desc"
    return "asc" if key == "feedback" else "desc"  # ratings: the worst first


@router.get("/sessions/{session_id}")
def session_page(request: Request,
                 session_id: Annotated[str, PathParam(min_length=1, max_length=64)],
                 what_if: Annotated[str | None, Query(max_length=200)] = None) -> Response:
    detail = session_detail(state_of(request), session_id)
    return render(request, "session.html", {
        **_session_context(detail), **session_extras(request, detail["session"], what_if),
        "turns": waterfalls(detail["timeline"])})


@router.get("/sessions/{session_id}/live")
def session_live(request: Request,
                 session_id: Annotated[str, PathParam(min_length=1, max_length=64)]) -> Response:
    """The part of the session page that changes while it is open (fetched on updates)."""
    detail = session_detail(state_of(request), session_id)
    return render(request, "_session_live.html", _session_context(detail))


def _session_context(detail: dict[str, Any]) -> dict[str, Any]:
    timeline = detail["timeline"]
    ratings: dict[str, dict[str, int]] = {}
    for rating in detail["session"].get("feedback") or []:
        counts = ratings.setdefault(str(rating["turn"]), {"good": 0, "bad": 0})
        counts[rating["value"]] += 1
    return {"s": detail["session"], "items": replay(timeline), "ratings": ratings,
            "cost_by_model": detail["cost_by_model"], "truncated": detail["truncated"],
            "last_event_id": timeline[-1]["id"] if timeline else 0}


def replay(timeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The timeline as the user saw it: each turn's message, then what the bot did, then its
    answer.

    A ``message`` event is recorded when its turn ends, after the model and tool calls it
    caused, and one conversation's turns never overlap. So, in recorded order, the events
    since the previous message belong to this turn — except those that started before the
    turn did (a custom event, the previous turn's error), which stay before the user's text.
    """
    items: list[dict[str, Any]] = []
    pending: list[dict[str, Any]] = []
    for event in timeline:
        if event["kind"] == "session_start":
            items.append({"type": "session_start", "event": event})
        elif event["kind"] == "message":
            began = event["ts"]
            items.extend({"type": e["kind"], "event": e} for e in pending if e["ts"] < began)
            items.append({"type": "user", "event": event})
            items.extend({"type": e["kind"], "event": e} for e in pending if e["ts"] >= began)
            items.append({"type": "bot", "event": event})
            pending = []
        else:
            pending.append(event)
    items.extend({"type": e["kind"], "event": e} for e in pending)
    return items


# ------------------------------------------------------------------ analytics and costs


@router.get("/analytics")
def analytics_page(request: Request,
                   bot: Annotated[str | None, Query(max_length=200)] = None,
                   since: Annotated[str | None, Query(max_length=40)] = None,
                   until: Annotated[str | None, Query(max_length=40)] = None,
                   per: Annotated[Asked, Query()] = "auto") -> Response:
    state = state_of(request)
    last = _day(until, "until") or queries.today()
    first = _day(since, "since") or max(FIRST_DAY, last - timedelta(days=29))
    if first > last or (last - first).days >= MAX_RANGE_DAYS:
        return error_page(request, 422, "That range is not valid",
                          f"since must not be after until, and the range may span at most "
                          f"{MAX_RANGE_DAYS} days")
    try:
        axis = time_axis(first, last, per)
    except RangeTooLong as exc:
        return error_page(request, 422, "That range is too long to show per hour", str(exc))
    name = bot or None
    data = state.read(lambda conn: queries.analytics(conn, first=first, last=last, bot=name,
                                                     axis=axis))
    over_time = state.read(lambda conn: trends(conn, axis, name))
    facets = state.read(queries.facets)
    ttft = state.read(lambda conn: quality.time_to_first_token(conn, first=first, last=last,
                                                               bot=name))
    daily = [row for row in satisfaction(state.store, since=quality.range_start(first),
                                         bot=name) if row["day"] <= last.isoformat()]
    params = {"bot": bot, "since": first.isoformat(), "until": last.isoformat(),
              "per": None if per == "auto" else per}
    return render(request, "analytics.html", {
        "a": data, "trends": over_time, "facets": facets, "bot": bot or "",
        "since": first.isoformat(), "until": last.isoformat(), "per": per,
        "granularity": axis.granularity, "ttft": ttft, "presets": _presets(params),
        "sparklines": state.read(lambda conn: sparklines.analytics_lines(conn, last, name)),
        "satisfaction": daily, "satisfaction_by_bot": quality.satisfaction_summary(daily)})


def _presets(params: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """Quick ranges ending today: (label, link, whether it is the range shown)."""
    day = queries.today()
    out = []
    for label, days in (("Today", 1), ("2 days", 2), ("7 days", 7), ("30 days", 30),
                        ("90 days", 90)):
        since = (day - timedelta(days=days - 1)).isoformat()
        out.append((label, link("/analytics", params, since=since, until=day.isoformat()),
                    params["since"] == since and params["until"] == day.isoformat()))
    return out


@router.get("/costs")
def costs_page(request: Request,
               period: Annotated[Period, Query()] = "month",
               at: Annotated[str | None, Query(max_length=40)] = None,
               what_if: Annotated[str | None, Query(max_length=200)] = None) -> Response:
    state = state_of(request)
    model, problem = what_if_model(what_if)
    day = _day(at, "at") or queries.today()
    first, last = period_bounds(period, day)

    def read(conn: Any) -> dict[str, Any]:
        return {"breakdowns": {by: queries.cost_breakdown(conn, by, period, day)
                               for by in DIMENSIONS},
                "unpriced": queries.unpriced_models(conn, first, last),
                "estimated": queries.estimated_usage(conn, first, last),
                "trend": queries.daily_cost(conn, day - timedelta(days=29), day,
                                            by="provider"),
                "tick": queries.tick(conn), "sparklines": sparklines.cost_lines(conn, day)}

    data = state.read(read)
    if model is not None:
        add_what_if(request, data["breakdowns"], model)
    return render(request, "costs.html", {
        "what_if": what_if or "", "what_if_model": str(model) if model else None,
        "what_if_error": problem,
        "period": period, "first": first.isoformat(), "last": last.isoformat(),
        "at": day.isoformat(), "total": data["breakdowns"]["bot"]["total"], **data,
        "period_links": {p: link("/costs", {"at": at, "what_if": what_if}, period=p)
                         for p in ("day", "week", "month")},
    })


def _day(text: str | None, name: str) -> date | None:
    if text is None or not text.strip():
        return None
    try:
        day = date.fromisoformat(text.strip()[:10])
    except ValueError:
        raise HTTPException(422, f"{name}: '{text}' is not a day (YYYY-MM-DD)") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise HTTPException(422, f"{name}: must be between {FIRST_DAY} and {LAST_DAY}")
    return day
