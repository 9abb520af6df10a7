"""Closing the sessions of processes that are gone (crash recovery, the janitor's round).

Open sessions are grouped by owner first (an index over ``owner`` of open sessions keeps this
cheap however many sessions are stored), each owner is judged once, and only dead owners'
sessions are read and closed: ``interrupted`` at their last activity, ``failed`` if the last
turn failed, with a ``session_end`` event. The UPDATE re-checks ``status = 'open'``, so several
janitors closing the same session at once close it once.

Sessions a process released at a graceful stop (open, no owner; ``conversations.release``)
are ended ``idle_timeout`` once the database's clock passes their ``idle_until``, at that
time — unless a process took the conversation on meanwhile (the UPDATE re-checks that the
owner is still empty), so idle expiry happens once across the cluster (PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from opencell.store._activity import ActivityStatements, add_session_end
from opencell.store._batch import to_json
from opencell.store._writes import Statements
from opencell.store.tables import events, session_history, sessions

Judge = Callable[[Iterable[str]], set[str]]
"""Given owners, the ones that are dead."""


def dead_owners(conn: Connection, judge: Judge) -> set[str]:
    """Owners of open sessions that are judged dead."""
    s = sessions.c
    owners = [row[0] for row in conn.execute(
        sa.select(s.owner).where(s.status == "open").distinct())]
    return judge(owners) if owners else set()


def close_sessions_of(reading: Callable[[], AbstractContextManager[Connection]],
                      writing: Callable[[], AbstractContextManager[Connection]],
                      sql: Statements, activity: ActivityStatements,
                      judge: Judge) -> list[str]:
    """Close every open session whose owner ``judge`` finds dead; their ids."""
    with reading() as conn:
        dead = dead_owners(conn, judge)
        if not dead:
            return []
        s = sessions.c
        rows = conn.execute(sa.select(s.seq, s.id, s.owner, s.last_activity,
                                      s.last_turn_failed, s.bot)
                            .where(s.status == "open", s.owner.in_(sorted(dead)))
                            .order_by(s.seq)).all()
    closed: list[str] = []
    with writing() as conn:
        for row in rows:
            if _close(conn, sql, activity, row):
                closed.append(row.id)
    return closed


def _close(conn: Connection, sql: Statements, activity: ActivityStatements, row: Any) -> bool:
    status = "failed" if row.last_turn_failed else "success"
    done = conn.execute(sql.close_orphan, {
        "b_seq": row.seq, "b_status": status, "b_ended_at": row.last_activity})
    if not done.rowcount:
        return False
    conn.execute(events.insert(), {
        "session_seq": row.seq, "ts": row.last_activity, "kind": "session_end",
        "name": "interrupted", "success": status == "success", "data": to_json({
            "reason": "interrupted", "status": status, "metadata": {"owner": row.owner}})})
    add_session_end(conn, activity, ts=row.last_activity, bot=row.bot, reason="interrupted",
                    failed=status != "success")
    return True


def close_orphans(reading: Callable[[], AbstractContextManager[Connection]],
                  writing: Callable[[], AbstractContextManager[Connection]],
                  sql: Statements, activity: ActivityStatements, judge: Judge, *,
                  released: bool) -> list[str]:
    """``Store.close_orphans``: the sessions of dead owners (``judge``; one that raises
    counts as alive) end ``interrupted`` at their last activity, ``failed`` if the last turn
    failed else ``success``, with a ``session_end``; with ``released`` (PostgreSQL), so do
    the sessions a graceful stop released once they are idle (``end_released``)."""
    closed = close_sessions_of(reading, writing, sql, activity, judge)
    if released:
        closed += end_released(reading, writing, activity)
    return closed


def end_released(reading: Callable[[], AbstractContextManager[Connection]],
                 writing: Callable[[], AbstractContextManager[Connection]],
                 activity: ActivityStatements) -> list[str]:
    """End every released session whose ``idle_until`` the database's clock has passed;
    their ids (PostgreSQL: only processes sharing one do release)."""
    s, h = sessions.c, session_history.c
    now = sa.cast(sa.extract("epoch", sa.func.now()), sa.Float)
    with reading() as conn:
        rows = conn.execute(
            sa.select(s.seq, s.id, s.bot, s.last_turn_failed, h.idle_until)
            .join_from(sessions, session_history, h.session_id == s.id)
            .where(s.status == "open", s.owner == "", h.idle_until.is_not(None),
                   h.idle_until <= now)
            .order_by(s.seq)).all()
    ended: list[str] = []
    if not rows:
        return ended
    with writing() as conn:
        for row in rows:
            status = "failed" if row.last_turn_failed else "success"
            at = float(row.idle_until)
            done = conn.execute(sessions.update().where(
                s.seq == row.seq, s.status == "open", s.owner == "",
            ).values(status=status, end_reason="idle_timeout", ended_at=at,
                     duration_ms=sa.case((s.started_at < at, (at - s.started_at) * 1000.0),
                                         else_=0.0)))
            if not done.rowcount:
                continue  # taken on by a process, or ended by another janitor
            conn.execute(events.insert(), {
                "session_seq": row.seq, "ts": at, "kind": "session_end",
                "name": "idle_timeout", "success": status == "success", "data": to_json({
                    "reason": "idle_timeout", "status": status,
                    "metadata": {"released": True}})})
            add_session_end(conn, activity, ts=at, bot=row.bot, reason="idle_timeout",
                            failed=status != "success")
            ended.append(row.id)
    return ended


def judge_each(is_alive: Callable[[str], bool]) -> Judge:
    """A bulk judge from a per-owner ``is_alive`` (one that raises counts as alive)."""
    def judge(owners: Iterable[str]) -> set[str]:
        dead = set()
        for owner in set(owners):
            try:
                alive = bool(is_alive(owner))
            except Exception:  # noqa: BLE001 - unknowable counts as alive
                alive = True
            if not alive:
                dead.add(owner)
        return dead
    return judge


__all__ = ["close_orphans", "close_sessions_of", "dead_owners", "end_released", "judge_each"]
