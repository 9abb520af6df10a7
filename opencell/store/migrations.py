"""The forward migrations that build the store's tables (``tables.py``), and the upgrade.

Step *n* of ``MIGRATIONS`` takes version *n-1* to *n*, so a file written by an older OpenCell
is upgraded in place when opened, and one written by a newer OpenCell is refused with a clear
error. Each step keeps its own frozen copy of the tables it creates: add a step, never edit
one that has shipped.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy import Connection

from opencell.errors import StoreError
from opencell.store._activity import backfill
from opencell.store._cluster_migration import _v12_cluster
from opencell.store._clustered_keys_migration import _v16_clustered_keys
from opencell.store._handover_migration import _v15_hand_over
from opencell.store._hourly import _v14_hourly_rollups
from opencell.store.dialect import Dialect
from opencell.store.tables import ROLLUP_KEYS, Id, schema_version


def _v1_base_tables(conn: Connection, dialect: Dialect) -> None:
    """Sessions, events, daily cost rollups and the listing indexes (no cache tokens).

    Spelled out rather than derived from the current tables: a shipped step never changes.
    """
    md = sa.MetaData()
    text, num, big = sa.String, sa.Integer, sa.BigInteger

    def zero(name: str, kind: type[sa.Integer] = num) -> sa.Column[int]:
        return sa.Column(name, kind, nullable=False, server_default="0")

    s = sa.Table(
        "sessions", md,
        sa.Column("seq", Id, primary_key=True, autoincrement=True),
        sa.Column("id", text(64), nullable=False, unique=True),
        sa.Column("bot", text(200), nullable=False, server_default=""),
        sa.Column("bot_type", text(40)), sa.Column("platform", text(40)),
        sa.Column("workspace", text(200)), sa.Column("channel", text(200)),
        sa.Column("thread", text(200)), sa.Column("user_id", text(200)),
        sa.Column("user_name", text(200)), sa.Column("conversation_key", sa.Text),
        sa.Column("owner", text(300), nullable=False, server_default=""),
        sa.Column("status", text(16), nullable=False, server_default="open"),
        sa.Column("end_reason", text(40)),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("last_activity", sa.Float, nullable=False),
        sa.Column("ended_at", sa.Float), sa.Column("duration_ms", sa.Float),
        zero("messages"), zero("llm_calls"), zero("tool_calls"), zero("errors"),
        zero("input_tokens", big), zero("output_tokens", big),
        sa.Column("cost_usd", sa.Float, nullable=False, server_default="0"),
        zero("unpriced_calls"),
        sa.Column("last_turn_failed", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("tags", sa.Text, nullable=False, server_default="[]"),
        sa.Column("metadata", sa.Text, nullable=False, server_default="{}"),
    )
    e = sa.Table(
        "events", md,
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("session_seq", Id, nullable=False),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("kind", text(32), nullable=False),
        sa.Column("name", text(300), nullable=False, server_default=""),
        sa.Column("duration_ms", sa.Float), sa.Column("success", sa.Boolean),
        sa.Column("data", sa.Text, nullable=False, server_default="{}"),
    )
    sa.Table(
        "cost_rollups", md,
        *(sa.Column(key, text(200), primary_key=True) for key in ROLLUP_KEYS),
        zero("calls"), zero("input_tokens", big), zero("output_tokens", big),
        sa.Column("cost_usd", sa.Float, nullable=False, server_default="0"),
        zero("unpriced_calls"),
    )
    sa.Table(
        "opencell_schema", md,
        sa.Column("id", num, primary_key=True, autoincrement=False),
        sa.Column("version", num, nullable=False),
    )
    sa.Index("ix_sessions_started", s.c.started_at, s.c.id)
    sa.Index("ix_sessions_bot", s.c.bot, s.c.started_at, s.c.id)
    sa.Index("ix_sessions_user", s.c.user_id, s.c.started_at, s.c.id)
    sa.Index("ix_sessions_status", s.c.status, s.c.started_at, s.c.id)
    sa.Index("ix_events_session", e.c.session_seq, e.c.id)
    sa.Index("ix_events_kind_ts", e.c.kind, e.c.ts)
    md.create_all(conn)


def _v2_cache_tokens_and_sort_indexes(conn: Connection, dialect: Dialect) -> None:
    """Cache-read/write token totals; indexes to list sessions by cost and by duration."""
    for table in ("sessions", "cost_rollups"):
        for column in ("cache_read_tokens", "cache_write_tokens"):
            conn.execute(sa.text(
                f"ALTER TABLE {table} ADD COLUMN {column} BIGINT NOT NULL DEFAULT 0"))
    md = sa.MetaData()
    s = sa.Table("sessions", md, sa.Column("id"), sa.Column("cost_usd"), sa.Column("duration_ms"))
    sa.Index("ix_sessions_cost", s.c.cost_usd, s.c.id).create(conn)
    sa.Index("ix_sessions_duration",
             sa.func.coalesce(s.c.duration_ms, sa.literal_column("-1")), s.c.id).create(conn)


def _v3_export_cursors(conn: Connection, dialect: Dialect) -> None:
    """The exporters' outbox: one delivery cursor (and lease) per exporter."""
    md = sa.MetaData()
    sa.Table(
        "export_cursors", md,
        sa.Column("exporter", sa.String(64), primary_key=True),
        sa.Column("last_event_id", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("delivered_events", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("delivered_spans", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("updated_at", sa.Float),
        sa.Column("lease_owner", sa.String(300), nullable=False, server_default=""),
        sa.Column("lease_until", sa.Float, nullable=False, server_default="0"),
    )
    md.create_all(conn)


def _v4_activity_rollups(conn: Connection, dialect: Dialect) -> None:
    """Rollups for the dashboard (events, turn latency, costs without users, costs per user
    and week/month), filled from what is already stored; indexes to list sessions by user
    name and by platform."""

    md = sa.MetaData()

    def keys(*names: str) -> list[sa.Column[str]]:
        return [sa.Column(name, sa.String(200), primary_key=True) for name in names]

    def sums() -> list[sa.Column[object]]:
        return [sa.Column("calls", sa.Integer, nullable=False, server_default="0"),
                *(sa.Column(name, sa.BigInteger, nullable=False, server_default="0")
                  for name in ("input_tokens", "output_tokens", "cache_read_tokens",
                               "cache_write_tokens")),
                sa.Column("cost_usd", sa.Float, nullable=False, server_default="0"),
                sa.Column("unpriced_calls", sa.Integer, nullable=False, server_default="0")]

    sa.Table("event_rollups", md,
             sa.Column("day", sa.String(10), primary_key=True), *keys("bot"),
             sa.Column("kind", sa.String(32), primary_key=True),
             sa.Column("name", sa.String(300), primary_key=True),
             sa.Column("count", sa.BigInteger, nullable=False, server_default="0"),
             sa.Column("failures", sa.BigInteger, nullable=False, server_default="0"),
             sa.Column("duration_ms", sa.Float, nullable=False, server_default="0"))
    sa.Table("latency_rollups", md,
             sa.Column("day", sa.String(10), primary_key=True), *keys("bot"),
             sa.Column("bucket", sa.Integer, primary_key=True, autoincrement=False),
             sa.Column("count", sa.BigInteger, nullable=False, server_default="0"))
    sa.Table("cost_daily", md, *keys("day", "bot", "platform", "provider", "model"), *sums())
    sa.Table("user_cost_rollups", md,
             sa.Column("period", sa.String(8), primary_key=True),
             sa.Column("start", sa.String(10), primary_key=True), *keys("user_id"), *sums())
    s = sa.Table("sessions", md, sa.Column("id"), sa.Column("user_name"),
                 sa.Column("platform"), sa.Column("started_at"))
    md.create_all(conn, tables=[md.tables[name] for name in (
        "event_rollups", "latency_rollups", "cost_daily", "user_cost_rollups")])
    sa.Index("ix_sessions_user_name", s.c.user_name, s.c.started_at, s.c.id).create(conn)
    sa.Index("ix_sessions_platform", s.c.platform, s.c.started_at, s.c.id).create(conn)
    backfill(conn)


def _v5_budget_alerts(conn: Connection, dialect: Dialect) -> None:
    """Budget alerts already raised, so that none is raised twice (restarts included)."""
    md = sa.MetaData()
    alerts = sa.Table(
        "budget_alerts", md,
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("alert_key", sa.String(1000), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("scope", sa.String(400), nullable=False),
        sa.Column("period_key", sa.String(32), nullable=False),
        sa.Column("limit_id", sa.String(300), nullable=False, server_default=""),
        sa.Column("threshold", sa.Float),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("session_id", sa.String(64)),
        sa.Column("data", sa.Text, nullable=False, server_default="{}"),
    )
    sa.Index("ix_budget_alerts_ts", alerts.c.ts)
    md.create_all(conn)


def _v6_estimated_calls(conn: Connection, dialect: Dialect) -> None:
    """Per cost rollup, how many calls had missing or impossible usage from the provider
    (recorded at their worst case, ``usage_estimated`` in the llm_call's data)."""
    conn.execute(sa.text(
        "ALTER TABLE cost_rollups ADD COLUMN estimated_calls INTEGER NOT NULL DEFAULT 0"))


def _v7_quarantine(conn: Connection, dialect: Dialect) -> None:
    """Records the store could not write, kept apart instead of stopping the recorder; and
    how many records recorders dropped, by reason (so ``opencell doctor`` can tell)."""
    md = sa.MetaData()
    sa.Table(
        "record_drops", md,
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("owner", sa.String(300), nullable=False, server_default=""),
        sa.Column("reason", sa.String(40), nullable=False),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.Column("last_error", sa.Text),
    )
    sa.Table(
        "quarantine", md,
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("quarantined_at", sa.Float, nullable=False),
        sa.Column("ts", sa.Float),
        sa.Column("session_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("kind", sa.String(32), nullable=False, server_default=""),
        sa.Column("name", sa.String(300), nullable=False, server_default=""),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("record", sa.Text, nullable=False, server_default="{}"),
    )
    md.create_all(conn)


def _v8_texts(conn: Connection, dialect: Dialect) -> None:
    """Large texts stored once by digest; records refer to them (``texts.py``)."""
    md = sa.MetaData()
    sa.Table(
        "texts", md,
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("first_seen", sa.Float, nullable=False),
    )
    md.create_all(conn)


def _v9_bot_versions_and_replays(conn: Connection, dialect: Dialect) -> None:
    """Per session, the bot version it ran (a digest; the version's text is the ``texts``
    row of that digest, stored once) and, for a replay, the session it re-ran."""
    for column in ("bot_version", "replay_of"):
        conn.execute(sa.text(f"ALTER TABLE sessions ADD COLUMN {column} VARCHAR(64)"))
    md = sa.MetaData()
    s = sa.Table("sessions", md, sa.Column("bot"), sa.Column("bot_version"),
                 sa.Column("replay_of"), sa.Column("started_at"))
    sa.Index("ix_sessions_version", s.c.bot, s.c.bot_version, s.c.started_at).create(conn)
    sa.Index("ix_sessions_replay_of", s.c.replay_of).create(conn)


def _v10_lifecycle(conn: Connection, dialect: Dialect) -> None:
    """The pruner's progress (``retention_state``) and the erasure audit trail (``erasures``)."""
    md = sa.MetaData()
    sa.Table(
        "retention_state", md,
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Float, nullable=False, server_default="0"),
    )
    sa.Table(
        "erasures", md,
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("actor", sa.String(300), nullable=False, server_default=""),
        sa.Column("platform", sa.String(40)),
        sa.Column("pseudonym", sa.String(64), nullable=False),
        sa.Column("counts", sa.Text, nullable=False, server_default="{}"),
        sa.Column("exporters", sa.Text, nullable=False, server_default="{}"),
    )
    md.create_all(conn)


def _v11_search_terms(conn: Connection, dialect: Dialect) -> None:
    """Words said in each session and its short id, for the dashboard's search; what was
    recorded before is indexed now (``search.py``)."""
    md = sa.MetaData()
    table = sa.Table(
        "search_terms", md,
        sa.Column("term", sa.String(40), primary_key=True),
        sa.Column("session_seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  primary_key=True, autoincrement=False),
    )
    md.create_all(conn)
    if conn.dialect.name == "postgresql":
        # LIKE 'word%' seeks a B-tree only with pattern ops (any database collation).
        sa.Index("ix_search_terms_prefix", table.c.term,
                 postgresql_ops={"term": "text_pattern_ops"}).create(conn)
    from opencell.store.search import backfill

    backfill(conn, dialect)


def _v13_feedback(conn: Connection, dialect: Dialect) -> None:
    """Reply messages → turns, and the feedback standing on each turn (``feedback.py``)."""
    md = sa.MetaData()
    sa.Table(
        "reply_messages", md,
        sa.Column("bot", sa.String(200), primary_key=True),
        sa.Column("platform", sa.String(40), primary_key=True),
        sa.Column("channel", sa.String(200), primary_key=True),
        sa.Column("message_id", sa.String(200), primary_key=True),
        sa.Column("thread", sa.String(200), nullable=False, server_default=""),
        sa.Column("user_id", sa.String(200), nullable=False, server_default=""),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("turn", sa.String(200), nullable=False, server_default=""),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Index("reply_messages_thread", "bot", "platform", "channel", "thread", "user_id"),
    )
    sa.Table(
        "feedback", md,
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("bot", sa.String(200), nullable=False, server_default=""),
        sa.Column("turn", sa.String(200), nullable=False, server_default=""),
        sa.Column("user_id", sa.String(200), nullable=False, server_default=""),
        sa.Column("source", sa.String(100), nullable=False, server_default=""),
        sa.Column("score", sa.Integer, nullable=False),
        sa.Column("comment", sa.Text),
        sa.Column("ts", sa.Float, nullable=False),
        sa.UniqueConstraint("session_id", "turn", "user_id", "source", name="feedback_one"),
        sa.Index("feedback_session", "session_id"),
        sa.Index("feedback_bot_ts", "bot", "ts"),
    )
    md.create_all(conn)


def _v17_tag_index(conn: Connection, dialect: Dialect) -> None:
    """PostgreSQL: sessions found by tag through a GIN index on the tags as JSONB.

    A tag filter's page and its total count each read every session otherwise (100,000
    sessions: 27 ms apiece, 75 ms p95 for the listing); the index finds the tagged few. The
    expression is ``tag_listed``'s, so the planner matches it; ANALYZE gives it the
    expression's statistics at once, or a common tag ("support", 45 % of sessions) would be
    taken for a rare one and its page sorted from the index (57 ms) instead of walked in
    start order (0.1 ms). SQLite has no such index; its substring test before the JSON is
    read keeps the same listing at 38 ms.
    """
    del dialect
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS ix_sessions_tags ON sessions "
                             "USING gin ((tags::jsonb) jsonb_path_ops)")
        conn.exec_driver_sql("ANALYZE sessions")


Migration = Callable[[Connection, Dialect], None]

MIGRATIONS: list[Migration] = [_v1_base_tables, _v2_cache_tokens_and_sort_indexes,
                               _v3_export_cursors, _v4_activity_rollups, _v5_budget_alerts,
                               _v6_estimated_calls, _v7_quarantine, _v8_texts,
                               _v9_bot_versions_and_replays, _v10_lifecycle,
                               _v11_search_terms, _v12_cluster, _v13_feedback,
                               _v14_hourly_rollups, _v15_hand_over,
                               _v16_clustered_keys, _v17_tag_index]
"""Step *n* (1-based) upgrades a version *n-1* database to version *n*."""

LATEST = len(MIGRATIONS)


def current_version(conn: Connection) -> int:
    """The schema version stored in the database (0 for an empty database).

    The tables are listed in one query: a database is read as it was at one moment. Asked
    one table at a time, a process starting beside another that was creating the schema
    (three workers on a new PostgreSQL database) could see no version table, then — the
    other's migration committed in between — the sessions table, and refuse a healthy
    database as foreign."""
    tables = set(sa.inspect(conn).get_table_names())
    if "opencell_schema" not in tables:
        if "sessions" in tables or "events" in tables:
            raise StoreError("the database has OpenCell-like tables but no schema version; "
                             "point OPENCELL_DATABASE_URL at a new database")
        return 0
    version = conn.execute(sa.select(schema_version.c.version)).scalar()
    return int(version or 0)


def check_version(version: int) -> None:
    """Refuse a database written by a newer OpenCell."""
    if version > LATEST:
        raise StoreError(
            f"the database schema is version {version}, newer than this OpenCell knows "
            f"({LATEST}); upgrade OpenCell, or point OPENCELL_DATABASE_URL at another database")


def upgrade(conn: Connection, dialect: Dialect, target: int = LATEST) -> tuple[int, int]:
    """Apply the missing steps up to ``target`` inside the caller's transaction.

    Returns (version before, version after). Raises ``StoreError`` for a newer database.
    """
    dialect.lock_schema(conn)
    before = current_version(conn)
    check_version(before)
    for step in range(before, min(target, LATEST)):
        MIGRATIONS[step](conn, dialect)
        version = step + 1
        if step == 0:
            conn.execute(schema_version.insert().values(id=1, version=version))
        else:
            conn.execute(schema_version.update().values(version=version))
    return before, max(before, min(target, LATEST))
