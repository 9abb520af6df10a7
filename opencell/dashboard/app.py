"""The dashboard's ASGI app: FastAPI with the JSON API, the pages, static files and the access gate.

``create_app(store)`` builds it over an open :class:`~opencell.store.store.Store`; the
same app serves ``opencell dashboard`` and ``opencell run --dashboard`` (see ``server.py``).
Handlers are plain ``def`` functions: FastAPI runs them in its thread pool, where blocking
database reads belong.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from opencell.dashboard.auth import AccessGate
from opencell.dashboard.live import LiveFeed
from opencell.dashboard.metrics import ExporterStats, RecorderStatsLike
from opencell.dashboard.security_headers import SecurityHeaders
from opencell.dashboard.state import DashboardState, read_store
from opencell.errors import StoreError

if TYPE_CHECKING:
    from opencell.dashboard.budgets import BudgetSource
    from opencell.store import Store

log = logging.getLogger("opencell.dashboard")

HERE = Path(__file__).resolve().parent
def create_app(store: Store, *, token: str | None = None,
               recorder_stats: Callable[[], RecorderStatsLike] | None = None,
               exporter_stats: ExporterStats | None = None,
               poll_interval: float = 1.0, budgets: BudgetSource | None = None) -> Any:
    """The dashboard as an ASGI app (the FastAPI app wrapped in the access gate).

    ``token``: require it on every request (see ``auth.py``). ``recorder_stats``: a callable
    returning the recorder's stats, for ``/metrics``. ``exporter_stats``: exporter gauges for
    ``/metrics`` (see ``metrics.ExporterStats``). ``budgets``: the budget ledger's source for
    the budgets page (see ``budgets.py``). The FastAPI app itself is ``.app``.
    """
    from opencell.dashboard import api, api_docs
    from opencell.dashboard.budgets import install as install_budgets
    from opencell.dashboard.pages import error_page, setup_templates
    from opencell.dashboard.pages import router as pages_router
    from opencell.dashboard.replays import router as replays_router

    templates = Jinja2Templates(directory=str(HERE / "templates"))
    setup_templates(templates)
    app = FastAPI(title="OpenCell dashboard", version="1",
                  description="Sessions, replay timelines, analytics and costs of OpenCell "
                              "bots, read from the local store.",
                  # /api/docs is our own page (api_docs.py): Swagger UI needs a CDN.
                  docs_url=None, redoc_url=None, openapi_url="/api/openapi.json")
    feed = LiveFeed(partial(read_store, store), interval=poll_interval)
    state = DashboardState(store=store, feed=feed, templates=templates,
                           recorder_stats=recorder_stats, exporter_stats=exporter_stats)
    app.state.dashboard = state
    app.include_router(api.router)
    app.include_router(api_docs.router)
    app.include_router(pages_router)
    app.include_router(replays_router)
    install_budgets(app, templates, budgets)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.exception_handler(StoreError)
    def store_error(request: Request, exc: StoreError) -> Response:
        log.warning("dashboard store error path=%s error=%s", request.url.path, exc)
        if _is_api(request):
            return JSONResponse({"detail": str(exc)}, status_code=503)
        return error_page(request, 503, "The store cannot be read", str(exc))

    @app.exception_handler(RequestValidationError)
    def invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = [{"loc": list(err.get("loc", ())), "msg": err.get("msg", "invalid"),
                   "type": err.get("type", "value_error")} for err in exc.errors()]
        if _is_api(request):
            return JSONResponse({"detail": errors}, status_code=422)
        return error_page(request, 422, "That filter is not valid", readable(errors))

    @app.exception_handler(StarletteHTTPException)
    def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if _is_api(request) or exc.status_code < 400:
            return JSONResponse({"detail": exc.detail}, status_code=exc.status_code,
                                headers=getattr(exc, "headers", None))
        title = {404: "Not found", 409: "That is ambiguous",
                 422: "That filter is not valid"}.get(exc.status_code, "Something went wrong")
        return error_page(request, exc.status_code, title, readable(exc.detail))

    return _Wrapped(SecurityHeaders(AccessGate(app, token)), app)


def readable(detail: Any) -> str:
    """An error detail for people: a list of validation errors as ``field: message; …``."""
    if not isinstance(detail, list):
        return str(detail)
    parts: dict[str, str] = {}
    for error in detail:
        if not isinstance(error, dict):
            parts.setdefault(str(error), "")
            continue
        loc = list(error.get("loc") or ())
        field = str(loc[1]) if len(loc) > 1 else ""
        message = str(error.get("msg"))
        if field in DAY_FIELDS and error.get("type") != "value_error":
            # pydantic tries a date, then a datetime: one plain sentence instead of both.
            message = "not a day (YYYY-MM-DD) or a time (YYYY-MM-DDTHH:MM)"
        parts.setdefault(field, message)  # the first problem of each field
    return "; ".join(f"{field}: {message}" if field else message
                     for field, message in parts.items())


DAY_FIELDS = frozenset(("since", "until", "at"))


def _is_api(request: Request) -> bool:
    return request.url.path.startswith(("/api", "/metrics", "/healthz", "/static"))


class _Wrapped:
    """The gated ASGI callable, still exposing the FastAPI app (``.app``) and its state."""

    def __init__(self, gate: SecurityHeaders, app: FastAPI) -> None:
        self._gate = gate
        self.app = app

    @property
    def state(self) -> DashboardState:
        found: DashboardState = self.app.state.dashboard
        return found

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._gate(scope, receive, send)

