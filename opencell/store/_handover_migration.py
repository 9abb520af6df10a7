"""Schema step 15: what a gracefully stopping process hands over to the others (PostgreSQL).

- ``session_history.idle_until``: a session a stopping process released (left open, its
  ``owner`` emptied) carries the database time after which it is idle; the janitor of any
  running process ends it then (``_orphans.py``), and whichever process gets the
  conversation's next message before that continues it (``conversations.py``).
- ``shard_sessions``: the Discord gateway session a stopping process left resumable, per bot
  and shard, so the process that claims the shard next replays the events Discord sent in
  between (``claims.py``).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import Connection

from opencell.store.dialect import Dialect


def _v15_hand_over(conn: Connection, dialect: Dialect) -> None:
    """Add the column and table above (frozen as shipped)."""
    del dialect
    conn.execute(sa.text("ALTER TABLE session_history ADD COLUMN idle_until FLOAT"))
    md = sa.MetaData()
    sa.Table(
        "shard_sessions", md,
        sa.Column("bot", sa.String(200), primary_key=True),
        sa.Column("shard", sa.Integer, primary_key=True),
        sa.Column("shard_count", sa.Integer, nullable=False),
        sa.Column("session_id", sa.String(200), nullable=False),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("resume_url", sa.String(1000), nullable=False),
        sa.Column("saved_at", sa.Float, nullable=False),
    )
    md.create_all(conn)
