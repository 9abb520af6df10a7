"""Cost totals per dimension from the smallest rollup that answers them (for what-if prices).

``cost_daily`` (day × bot × platform × provider × model) answers every dimension but the user;
``user_cost_rollups`` (per ISO week or month × user) answers the user for a week or a month,
and ``cost_rollups`` for one day. Rows: ``key`` and the token and cost sums — the shape
``Store.costs`` returns, without reading the widest table for a month.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from opencell.store._activity import COST_SUMS
from opencell.store.reads import period_days
from opencell.store.tables import cost_daily, cost_rollups, user_cost_rollups

if TYPE_CHECKING:
    from opencell.store.store import Store

DIMENSIONS = ("bot", "user", "platform", "provider", "model")


def cost_totals(store: Store, by: str, period: str, now: float | None = None, *,
                limit: int | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Cost totals per ``by`` over the UTC day, ISO week or month holding ``now``, most
    expensive first (``key`` None for calls with no known user/provider/model), at most
    ``limit`` of them; and the sums over all keys (``keys``: how many there are)."""
    stmt = _grouped(by, period, time.time() if now is None else now)
    grouped = stmt.subquery()
    g = grouped.c
    top = sa.select(grouped).order_by(g.cost_usd.desc(), g.key)
    if limit is not None:
        top = top.limit(limit)
    sums = sa.select(*(sa.func.coalesce(sa.func.sum(g[n]), 0).label(n) for n in COST_SUMS),
                     sa.func.count().label("keys")).select_from(grouped)
    names = ("key", *COST_SUMS)
    with store.reading() as conn:
        found = conn.execute(top).all()
        summed = dict(conn.execute(sums).mappings().one())
    rows: list[dict[str, Any]] = []
    for values in found:  # sums of NOT NULL columns: ints and a float already
        row = dict(zip(names, values, strict=True))
        row["key"] = row["key"] or None
        row["cost_usd"] = float(row["cost_usd"] or 0.0)
        rows.append(row)
    summed["cost_usd"] = float(summed["cost_usd"] or 0.0)
    return rows, summed


def _grouped(by: str, period: str, now: float) -> sa.Select[Any]:
    first, last = period_days(period, now)
    if by == "user":
        if period == "day":
            r = cost_rollups.c
            stmt = (sa.select(r.user_id.label("key"), *_sums(cost_rollups))
                    .where(r.day == first).group_by(r.user_id))
        else:
            u = user_cost_rollups.c
            stmt = (sa.select(u.user_id.label("key"), *(u[n] for n in COST_SUMS))
                    .where(u.period == period, u.start == first))
    elif by in DIMENSIONS:
        d = cost_daily.c
        stmt = (sa.select(d[by].label("key"), *_sums(cost_daily))
                .where(d.day >= first, d.day <= last).group_by(d[by]))
    else:
        raise ValueError(f"cannot break costs down by '{by}'; use one of {', '.join(DIMENSIONS)}")
    return stmt


def _sums(table: sa.Table) -> list[sa.Label[Any]]:
    return [sa.func.coalesce(sa.func.sum(table.c[name]), 0).label(name) for name in COST_SUMS]
