"""Schema step 9: what several OpenCell processes on one database need (SCALE-OUT.md §B.3).

- ``events.tx``: on PostgreSQL the id of the transaction that wrote the event
  (``pg_current_xact_id()``). Exporters read in ``(tx, id)`` order below the snapshot's
  ``xmin``, so an event whose transaction commits late is read when it commits, never
  skipped, and no settle delay is needed (``exporters/outbox.py``). Rows written before this
  step, and every SQLite row, have ``tx = 0``: SQLite writers are serialised, ids suffice.
- ``export_cursors.last_tx`` (the cursor's transaction half) and ``export_cursors.fence``
  (raised by every take-over: a writer whose fence is stale cannot move the cursor).
- ``instances``: one row per running process (``cluster.py``); its liveness is an advisory
  lock on PostgreSQL and a file lock on SQLite, never a hostname, a PID or a clock.
- ``sessions(owner) WHERE status = 'open'``: the janitor's look at open sessions' owners.
- ``budget_tallies`` / ``budget_reservations``: budget limits enforced across processes
  (``budgets/shared.py``): spend and in-flight reservations per scope and window.
- ``session_history`` and ``sessions(conversation_key) WHERE status = 'open'``: any process
  finds a conversation's open session and continues its history (``conversations.py``).
- ``platform_events``: each platform message some process has taken on, so a Slack retry
  or duplicate delivery that reaches another worker is dropped there (pruned after a day).
- PostgreSQL: ``sessions(id text_pattern_ops)``, so id-prefix search uses an index in any
  collation (F4), and ``events(tx, id)`` for the outbox.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import Connection

from opencell.store.dialect import Dialect


def _v12_cluster(conn: Connection, dialect: Dialect) -> None:
    """Add the columns, table and indexes above (frozen as shipped)."""
    conn.execute(sa.text("ALTER TABLE events ADD COLUMN tx BIGINT NOT NULL DEFAULT 0"))
    conn.execute(sa.text(
        "ALTER TABLE export_cursors ADD COLUMN last_tx BIGINT NOT NULL DEFAULT 0"))
    conn.execute(sa.text("ALTER TABLE export_cursors ADD COLUMN fence BIGINT NOT NULL DEFAULT 0"))
    md = sa.MetaData()
    sa.Table(
        "instances", md,
        sa.Column("id", sa.String(300), primary_key=True),
        sa.Column("lock_key", sa.BigInteger, nullable=False),
        sa.Column("label", sa.String(300), nullable=False, server_default=""),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("stopped_at", sa.Float),
        sa.Column("stop_reason", sa.String(40)),
    )
    sa.Table(
        "budget_tallies", md,
        sa.Column("scope", sa.String(300), primary_key=True),
        sa.Column("window", sa.String(40), primary_key=True),
        sa.Column("spent", sa.Float, nullable=False, server_default="0"),
        sa.Column("reserved", sa.Float, nullable=False, server_default="0"),
    )
    sa.Table(
        "budget_reservations", md,
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("owner", sa.String(300), nullable=False),
        sa.Column("amount", sa.Float, nullable=False),
        sa.Column("tally_keys", sa.Text, nullable=False),
        sa.Column("ts", sa.Float, nullable=False),
    )
    sa.Table(
        "session_history", md,
        sa.Column("session_id", sa.String(64), primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("turns", sa.Text, nullable=False, server_default="[]"),
    )
    sa.Table(
        "platform_events", md,
        sa.Column("key", sa.String(1000), primary_key=True),
        sa.Column("ts", sa.Float, nullable=False, index=True),
    )
    md.create_all(conn)
    conn.execute(sa.text("CREATE INDEX ix_sessions_open_conversation ON sessions "
                         "(conversation_key) WHERE status = 'open'"))
    conn.execute(sa.text(
        "CREATE INDEX ix_sessions_open_owner ON sessions (owner) WHERE status = 'open'"))
    if dialect.name == "postgresql":
        # A constant default first (no table rewrite), then the per-transaction one.
        conn.execute(sa.text("ALTER TABLE events ALTER COLUMN tx "
                             "SET DEFAULT (pg_current_xact_id()::text::bigint)"))
        conn.execute(sa.text("CREATE INDEX ix_events_tx_id ON events (tx, id)"))
        conn.execute(sa.text(
            "CREATE INDEX ix_sessions_id_pattern ON sessions (id text_pattern_ops)"))
