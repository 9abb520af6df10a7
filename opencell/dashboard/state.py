"""The dashboard's shared state: what every route reads (store, live feed, templates, hooks).

Routers import from here, never from ``app.py``, which only assembles them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from fastapi import Request
from fastapi.templating import Jinja2Templates
from sqlalchemy import Connection

from opencell.dashboard.live import LiveFeed
from opencell.dashboard.metrics import ExporterStats, RecorderStatsLike

if TYPE_CHECKING:
    from opencell.store import Store

T = TypeVar("T")

NAV: tuple[tuple[str, str], ...] = (("/sessions", "Sessions"), ("/analytics", "Analytics"),
                                    ("/costs", "Costs"), ("/versions", "Versions"),
                                    ("/budgets", "Budgets"))
"""The top navigation (path, label), in the order it is shown."""


def read_store(store: Store, query: Callable[[Connection], T]) -> T:
    """Run ``query`` on a pooled connection; database failures become ``StoreError``."""
    with store.reading() as conn:
        return query(conn)


@dataclass
class DashboardState:
    """What every handler needs: the store, the live feed and the optional process hooks."""

    store: Store
    feed: LiveFeed
    templates: Jinja2Templates
    recorder_stats: Callable[[], RecorderStatsLike] | None = None
    exporter_stats: ExporterStats | None = None

    def read(self, query: Callable[[Connection], T]) -> T:
        """Run ``query`` on a pooled connection (see :func:`read_store`)."""
        return read_store(self.store, query)


def state_of(request: Request) -> DashboardState:
    """The dashboard state of the app handling ``request``."""
    found: DashboardState = request.app.state.dashboard
    return found
