"""The store's write statements, built once per store (SQLAlchemy caches their compiled form).

Running totals are added in SQL (``messages = messages + :n``), never read-modify-written in
Python, so several writers (PostgreSQL: several bot processes) can share one session row.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from opencell.store._batch import BatchPlan, Usage, to_json
from opencell.store.dialect import Dialect
from opencell.store.tables import ROLLUP_KEYS, cost_rollups, events, search_terms, sessions

SessionInfo = tuple[int, str, str, str]
"""(seq, bot, user_id, platform) of a stored session: what events and rollups need."""

PLACEHOLDER_METADATA = to_json({"placeholder": True})
"""The metadata of a session row created for records that came without a session_start."""

_IN_CHUNK = 500
_DESCRIPTIVE = ("bot", "bot_type", "platform", "workspace", "channel", "thread", "user_id",
                "user_name", "conversation_key", "owner", "tags", "bot_version", "replay_of")
_COUNTERS = ("messages", "failed_turns", "llm_calls", "tool_calls", "errors", "input_tokens",
             "output_tokens", "cache_read_tokens", "cache_write_tokens", "unpriced_calls")
_ROLLUP_SUMS = ("calls", "input_tokens", "output_tokens", "cache_read_tokens",
                "cache_write_tokens", "cost_usd", "unpriced_calls", "estimated_calls")


EVENT_FIELDS = ("session_seq", "ts", "kind", "name", "duration_ms", "success", "data")
"""The order of the values in an event row tuple."""


class Statements:
    """Every statement ``write_batch`` and ``close_orphans`` execute."""

    def __init__(self, dialect: Dialect) -> None:
        s = sessions.c
        self._event_sql: dict[str, tuple[str, bool]] = {}

        def start(excluded: Any) -> Mapping[str, Any]:
            # A session_start for a row that exists (a placeholder, or a repeated start)
            # fills in who the session is; totals and status stay as they are.
            values: dict[str, Any] = {name: excluded[name] for name in _DESCRIPTIVE}
            values["started_at"] = sa.case((excluded.started_at < s.started_at,
                                            excluded.started_at), else_=s.started_at)
            values["metadata"] = sa.case((s.metadata.in_(("{}", PLACEHOLDER_METADATA)),
                                          excluded.metadata), else_=s.metadata)
            return values

        self.upsert_session = dialect.upsert(sessions, ["id"], start).returning(s.seq)
        self.placeholder_session = dialect.upsert(
            sessions, ["id"], lambda excluded: {"last_activity": s.last_activity},
        ).returning(s.seq)

        last = sa.bindparam("b_last_activity", type_=sa.Float)
        totals: dict[str, Any] = {
            name: s[name] + sa.bindparam(f"b_{name}", type_=sa.BigInteger) for name in _COUNTERS
        }
        totals["cost_usd"] = s.cost_usd + sa.bindparam("b_cost_usd", type_=sa.Float)
        totals["last_activity"] = sa.case((last > s.last_activity, last), else_=s.last_activity)
        totals["last_turn_failed"] = sa.func.coalesce(
            sa.bindparam("b_last_turn_failed", type_=sa.Boolean), s.last_turn_failed)
        self.add_totals = sessions.update().where(s.seq == sa.bindparam("b_seq")).values(totals)

        ended = sa.bindparam("b_ended_at", type_=sa.Float)
        derived_status = sa.case((s.last_turn_failed, "failed"), else_="success")
        self.end_session = sessions.update().where(
            s.seq == sa.bindparam("b_seq"), s.status == "open",
        ).values(
            status=sa.func.coalesce(sa.bindparam("b_status", type_=sa.String), derived_status),
            end_reason=sa.bindparam("b_reason", type_=sa.String),
            ended_at=ended,
            duration_ms=sa.case((ended > s.started_at, (ended - s.started_at) * 1000.0),
                                else_=0.0),
            metadata=sa.bindparam("b_metadata", type_=sa.Text),
        )
        self.close_orphan = sessions.update().where(
            s.seq == sa.bindparam("b_seq"), s.status == "open",
        ).values(
            status=sa.bindparam("b_status", type_=sa.String), end_reason="interrupted",
            ended_at=ended,
            duration_ms=sa.case((ended > s.started_at, (ended - s.started_at) * 1000.0),
                                else_=0.0),
        )

        self.insert_terms = dialect.insert_missing(search_terms, ("term", "session_seq"))
        r = cost_rollups.c
        self.add_rollups = dialect.upsert(
            cost_rollups, ROLLUP_KEYS,
            lambda excluded: {name: r[name] + excluded[name] for name in _ROLLUP_SUMS})


    def insert_events(self, conn: Connection, rows: list[tuple[Any, ...]]) -> None:
        """Insert event rows (tuples in ``EVENT_FIELDS`` order) with one DBAPI executemany.

        The statement is compiled by SQLAlchemy for the connection's dialect once; rows go to
        the driver as they are. SQLAlchemy's per-row parameter processing would cost about as
        much as SQLite's own insert, and these columns need no type conversion.
        """
        compiled = self._event_sql.get(conn.dialect.name)
        if compiled is None:
            statement = events.insert().compile(dialect=conn.dialect,
                                                column_keys=list(EVENT_FIELDS),
                                                for_executemany=True)
            positional = bool(statement.positional)
            if positional and tuple(statement.positiontup or ()) != EVENT_FIELDS:
                raise RuntimeError("unexpected parameter order for the events insert")
            compiled = self._event_sql[conn.dialect.name] = (statement.string, positional)
        sql, positional = compiled
        if conn.dialect.name == "postgresql":
            _copy_events(conn, rows)
            return
        if positional:
            conn.exec_driver_sql(sql, rows)
        else:
            conn.exec_driver_sql(sql, [dict(zip(EVENT_FIELDS, row, strict=True))
                                       for row in rows])


_COPY_EVENTS = f"COPY events ({', '.join(EVENT_FIELDS)}) FROM STDIN"


def _copy_events(conn: Connection, rows: list[tuple[Any, ...]]) -> None:
    """PostgreSQL: the rows in one ``COPY`` on the transaction's own connection (``tx`` and
    ``id`` take their defaults). An ``executemany`` sends one INSERT per row, and the
    driver's per-statement work was most of the writer's cost there."""
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(_COPY_EVENTS) as copy:
            for row in rows:
                copy.write_row(row)
    finally:
        cursor.close()


def resolve_sessions(conn: Connection, sql: Statements, plan: BatchPlan,
                     cache: Mapping[str, SessionInfo],
                     owner: str) -> tuple[dict[str, SessionInfo], list[str]]:
    """The stored session of every record in the plan, and the placeholders created for it.

    Rows come from the plan's ``session_start`` records (upserted), the cache, one SELECT
    for the rest, and a placeholder row for a session that has no row at all.
    """
    infos: dict[str, SessionInfo] = {}
    for session_id, row in plan.starts.items():
        seq = conn.execute(sql.upsert_session, row).scalar_one()
        infos[session_id] = (seq, row["bot"], row["user_id"] or "", row["platform"] or "")
    unknown = []
    for session_id in {event[0] for event in plan.events}.difference(infos):
        info = cache.get(session_id)
        if info is None:
            unknown.append(session_id)
        else:
            infos[session_id] = info
    s = sessions.c
    for start in range(0, len(unknown), _IN_CHUNK):
        rows = conn.execute(sa.select(s.id, s.seq, s.bot, s.user_id, s.platform)
                            .where(s.id.in_(unknown[start:start + _IN_CHUNK])))
        for found in rows:
            infos[found.id] = (found.seq, found.bot, found.user_id or "", found.platform or "")
    placeholders = []
    for session_id in unknown:
        if session_id not in infos:
            first = min(event[1] for event in plan.events if event[0] == session_id)
            seq = conn.execute(sql.placeholder_session, {
                "id": session_id, "bot": "", "owner": owner, "status": "open",
                "started_at": first, "last_activity": first,
                "metadata": PLACEHOLDER_METADATA}).scalar_one()
            infos[session_id] = (seq, "", "", "")
            placeholders.append(session_id)
    return infos, placeholders


def add_call(row: dict[str, Any], call: Usage) -> None:
    """Add one model call to a rollup row's calls, tokens, cost and unpriced count."""
    row["calls"] += 1
    row["input_tokens"] += call.input_tokens
    row["output_tokens"] += call.output_tokens
    row["cache_read_tokens"] += call.cache_read_tokens
    row["cache_write_tokens"] += call.cache_write_tokens
    if call.cost_usd is None:
        row["unpriced_calls"] += 1
    else:
        row["cost_usd"] += call.cost_usd


def rollup_rows(usage: Iterable[Usage],
                infos: Mapping[str, SessionInfo]) -> list[dict[str, Any]]:
    """The batch's LLM calls summed per (day, bot, user, platform, provider, model)."""
    rows: dict[tuple[str, ...], dict[str, Any]] = {}
    for call in usage:
        _, bot, user_id, platform = infos[call.session_id]
        key = (call.day, bot, user_id, platform, call.provider, call.model)
        row = rows.get(key)
        if row is None:
            row = rows[key] = dict(zip(ROLLUP_KEYS, key, strict=True))
            row.update({name: 0 for name in _ROLLUP_SUMS})
            row["cost_usd"] = 0.0
        add_call(row, call)
        row["estimated_calls"] += call.estimated
    return [rows[key] for key in sorted(rows)]  # key order: concurrent writers never deadlock
