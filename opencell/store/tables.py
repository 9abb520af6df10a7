"""The store's tables as they are now: what every query (and every package) reads.

``METADATA`` describes the current schema for queries; it is never ``create_all``-ed. The
database is built and upgraded only by ``migrations.py`` (each step frozen as it shipped).
Adding a column: add it here and add a migration step there.

Sessions have an integer surrogate key ``seq`` that events point at: an integer index over
``(session_seq, id)`` takes events about twice as fast as one over 36-character UUID text
(measured on raw SQLite with 1,000 open sessions: ~158k vs ~88k rows/s).
"""

from __future__ import annotations

import sqlalchemy as sa

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
"""64-bit keys; plain INTEGER on SQLite so the column is the rowid."""

METADATA = sa.MetaData()

sessions = sa.Table(
    "sessions", METADATA,
    sa.Column("seq", Id, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(64), nullable=False, unique=True),
    sa.Column("bot", sa.String(200), nullable=False, server_default=""),
    sa.Column("bot_type", sa.String(40)),
    sa.Column("platform", sa.String(40)),
    sa.Column("workspace", sa.String(200)),
    sa.Column("channel", sa.String(200)),
    sa.Column("thread", sa.String(200)),
    sa.Column("user_id", sa.String(200)),
    sa.Column("user_name", sa.String(200)),
    sa.Column("conversation_key", sa.Text),
    sa.Column("owner", sa.String(300), nullable=False, server_default=""),
    sa.Column("status", sa.String(16), nullable=False, server_default="open"),
    sa.Column("end_reason", sa.String(40)),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("last_activity", sa.Float, nullable=False),
    sa.Column("ended_at", sa.Float),
    sa.Column("duration_ms", sa.Float),
    sa.Column("messages", sa.Integer, nullable=False, server_default="0"),
    sa.Column("llm_calls", sa.Integer, nullable=False, server_default="0"),
    sa.Column("tool_calls", sa.Integer, nullable=False, server_default="0"),
    sa.Column("errors", sa.Integer, nullable=False, server_default="0"),
    sa.Column("input_tokens", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("output_tokens", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("cost_usd", sa.Float, nullable=False, server_default="0"),
    sa.Column("unpriced_calls", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_turn_failed", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("tags", sa.Text, nullable=False, server_default="[]"),
    sa.Column("metadata", sa.Text, nullable=False, server_default="{}"),
    # v2
    sa.Column("cache_read_tokens", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("cache_write_tokens", sa.BigInteger, nullable=False, server_default="0"),
    # v9: the bot version the session ran (its definition is the ``texts`` row of that
    # digest), and the session a replay re-ran (see opencell/replay/)
    sa.Column("bot_version", sa.String(64)),
    sa.Column("replay_of", sa.String(64)),
    # v14: turns that failed (``message`` events with success false); ``errors`` counts
    # error events, which a turn that was retried and answered can have too
    sa.Column("failed_turns", sa.Integer, nullable=False, server_default="0"),
)

events = sa.Table(
    "events", METADATA,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("session_seq", Id, nullable=False),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("name", sa.String(300), nullable=False, server_default=""),
    sa.Column("duration_ms", sa.Float),
    sa.Column("success", sa.Boolean),
    sa.Column("data", sa.Text, nullable=False, server_default="{}"),
    # v12: PostgreSQL: the writing transaction's id (the outbox's order); 0 on SQLite
    sa.Column("tx", sa.BigInteger, nullable=False, server_default="0"),
)
"""``id`` grows with every insert (SQLite: the rowid, max + 1; no AUTOINCREMENT keyword, which
costs ~10% of insert speed). Ids are not reused as long as the newest events are never
deleted: retention removes the oldest, so "the last id an exporter sent" stays meaningful."""

ROLLUP_KEYS = ("day", "bot", "user_id", "platform", "provider", "model")

cost_rollups = sa.Table(
    "cost_rollups", METADATA,
    *(sa.Column(key, sa.String(200), primary_key=True) for key in ROLLUP_KEYS),
    sa.Column("calls", sa.Integer, nullable=False, server_default="0"),
    sa.Column("input_tokens", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("output_tokens", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("cost_usd", sa.Float, nullable=False, server_default="0"),
    sa.Column("unpriced_calls", sa.Integer, nullable=False, server_default="0"),
    # v2
    sa.Column("cache_read_tokens", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("cache_write_tokens", sa.BigInteger, nullable=False, server_default="0"),
    # v6: calls whose usage the provider did not (credibly) report, counted at worst case
    sa.Column("estimated_calls", sa.Integer, nullable=False, server_default="0"),
    sqlite_with_rowid=False,  # v16: clustered on its key in SQLite
)

schema_version = sa.Table(
    "opencell_schema", METADATA,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("version", sa.Integer, nullable=False),
)

export_cursors = sa.Table(
    "export_cursors", METADATA,
    sa.Column("exporter", sa.String(64), primary_key=True),
    sa.Column("last_event_id", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("delivered_events", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("delivered_spans", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("updated_at", sa.Float),
    sa.Column("lease_owner", sa.String(300), nullable=False, server_default=""),
    sa.Column("lease_until", sa.Float, nullable=False, server_default="0"),
    # v12: the cursor is (last_tx, last_event_id); fence grows with every take-over
    sa.Column("last_tx", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("fence", sa.BigInteger, nullable=False, server_default="0"),
)
"""One row per exporter (``agentops``, ``otlp``): the outbox. Every event with an id above
``last_event_id`` is pending for that exporter (see ``exporters/outbox.py``). The lease lets
one process at a time drain it when several share the store."""

def _cost_sums() -> list[sa.Column[object]]:
    return [sa.Column("calls", sa.Integer, nullable=False, server_default="0"),
            *(sa.Column(name, sa.BigInteger, nullable=False, server_default="0")
              for name in ("input_tokens", "output_tokens", "cache_read_tokens",
                           "cache_write_tokens")),
            sa.Column("cost_usd", sa.Float, nullable=False, server_default="0"),
            sa.Column("unpriced_calls", sa.Integer, nullable=False, server_default="0")]


# v4: activity rollups (see _activity.py), what the dashboard reads instead of raw events.
event_rollups = sa.Table(
    "event_rollups", METADATA,
    sa.Column("day", sa.String(10), primary_key=True),
    sa.Column("bot", sa.String(200), primary_key=True),
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(300), primary_key=True),
    sa.Column("count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("failures", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("duration_ms", sa.Float, nullable=False, server_default="0"),
    sqlite_with_rowid=False,  # v16: clustered on its key in SQLite
)
latency_rollups = sa.Table(
    "latency_rollups", METADATA,
    sa.Column("day", sa.String(10), primary_key=True),
    sa.Column("bot", sa.String(200), primary_key=True),
    sa.Column("bucket", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("count", sa.BigInteger, nullable=False, server_default="0"),
    sqlite_with_rowid=False,  # v16: clustered on its key in SQLite
)
cost_daily = sa.Table(
    "cost_daily", METADATA,
    *(sa.Column(key, sa.String(200), primary_key=True)
      for key in ("day", "bot", "platform", "provider", "model")),
    *_cost_sums(),
    sqlite_with_rowid=False,  # v16: clustered on its key in SQLite
)
user_cost_rollups = sa.Table(
    "user_cost_rollups", METADATA,
    sa.Column("period", sa.String(8), primary_key=True),
    sa.Column("start", sa.String(10), primary_key=True),
    sa.Column("user_id", sa.String(200), primary_key=True),
    *_cost_sums(),
    sqlite_with_rowid=False,  # v16: clustered on its key in SQLite
)

# v14: the same per UTC hour (``YYYY-MM-DDTHH``) for the analytics page's short ranges
# (see _hourly.py): events per kind (no name), turn latency, and cost per bot and model.
event_hourly = sa.Table(
    "event_hourly", METADATA,
    sa.Column("hour", sa.String(13), primary_key=True),
    sa.Column("bot", sa.String(200), primary_key=True),
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("failures", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("duration_ms", sa.Float, nullable=False, server_default="0"),
    sqlite_with_rowid=False,  # v16: clustered on its key in SQLite
)
latency_hourly = sa.Table(
    "latency_hourly", METADATA,
    sa.Column("hour", sa.String(13), primary_key=True),
    sa.Column("bot", sa.String(200), primary_key=True),
    sa.Column("bucket", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("count", sa.BigInteger, nullable=False, server_default="0"),
    sqlite_with_rowid=False,  # v16: clustered on its key in SQLite
)
cost_hourly = sa.Table(
    "cost_hourly", METADATA,
    sa.Column("hour", sa.String(13), primary_key=True),
    *(sa.Column(key, sa.String(200), primary_key=True)
      for key in ("bot", "provider", "model")),
    *_cost_sums(),
    sqlite_with_rowid=False,  # v16: clustered on its key in SQLite
)

# v14: streamed model calls' time to first token per UTC day, bot and model answering, as a
# latency histogram (the buckets of latency_rollups), for the analytics page's quality section.
ttft_rollups = sa.Table(
    "ttft_rollups", METADATA,
    sa.Column("day", sa.String(10), primary_key=True),
    sa.Column("bot", sa.String(200), primary_key=True),
    sa.Column("model", sa.String(200), primary_key=True),
    sa.Column("bucket", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("count", sa.BigInteger, nullable=False, server_default="0"),
    sqlite_with_rowid=False,  # v16: clustered on its key in SQLite
)

# v5: budget alerts raised, one row per alert key (see opencell/budgets/_store.py).
budget_alerts = sa.Table(
    "budget_alerts", METADATA,
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
"""A budget alert is raised once per key (threshold × scope × period); the unique key is
what stops a restarted process, or a second one sharing the store, from raising it again."""

# v7: records the store rejected (see Store.quarantine); the recorder goes on without them.
quarantine = sa.Table(
    "quarantine", METADATA,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("quarantined_at", sa.Float, nullable=False),
    sa.Column("ts", sa.Float),
    sa.Column("session_id", sa.String(64), nullable=False, server_default=""),
    sa.Column("kind", sa.String(32), nullable=False, server_default=""),
    sa.Column("name", sa.String(300), nullable=False, server_default=""),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    sa.Column("record", sa.Text, nullable=False, server_default="{}"),
)
"""``record`` is the rejected record as JSON (``kind, session_id, ts, name, data,
duration_ms, success``), made storable; ``reason`` is why the store refused it."""
record_drops = sa.Table(
    "record_drops", METADATA,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("owner", sa.String(300), nullable=False, server_default=""),
    sa.Column("reason", sa.String(40), nullable=False),
    sa.Column("count", sa.BigInteger, nullable=False),
    sa.Column("last_error", sa.Text),
)
"""Records a recorder dropped (see ``recorder.DROP_REASONS``), noted by its writer thread."""

texts = sa.Table(
    "texts", METADATA,
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("first_seen", sa.Float, nullable=False),
)
"""Large texts, once each by SHA-256 (see ``texts.py``); records refer to them."""

# v10: the data lifecycle (see retention.py, erasure.py).
retention_state = sa.Table(
    "retention_state", METADATA,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Float, nullable=False, server_default="0"),
)
"""Progress of the background pruner: e.g. ``content_through`` (the last event id whose
content has been expired), ``last_run``, running counts of what was pruned."""
erasures = sa.Table(
    "erasures", METADATA,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("ts", sa.Float, nullable=False),
    sa.Column("actor", sa.String(300), nullable=False, server_default=""),
    sa.Column("platform", sa.String(40)),
    sa.Column("pseudonym", sa.String(64), nullable=False),
    sa.Column("counts", sa.Text, nullable=False, server_default="{}"),
    sa.Column("exporters", sa.Text, nullable=False, server_default="{}"),
)
"""The audit trail of ``forget``: who ran it, when, how many rows of what it changed, which
exporters had already sent the data; never the user's id, name or text. ``pseudonym`` is
the id the user's cost rows now carry (random, not derived from the user id)."""
# v11: words said in each session, and its short id (see search.py).
search_terms = sa.Table(
    "search_terms", METADATA,
    sa.Column("term", sa.String(40), primary_key=True),
    sa.Column("session_seq", Id, primary_key=True, autoincrement=False),
    sqlite_with_rowid=False,  # v16: clustered on its key in SQLite
)
# v13: feedback on the bot's replies (see feedback.py).
reply_messages = sa.Table(
    "reply_messages", METADATA,
    sa.Column("bot", sa.String(200), primary_key=True),
    sa.Column("platform", sa.String(40), primary_key=True),
    sa.Column("channel", sa.String(200), primary_key=True),
    sa.Column("message_id", sa.String(200), primary_key=True),
    sa.Column("thread", sa.String(200), nullable=False, server_default=""),
    sa.Column("user_id", sa.String(200), nullable=False, server_default=""),
    sa.Column("session_id", sa.String(64), nullable=False),
    sa.Column("turn", sa.String(200), nullable=False, server_default=""),
    sa.Column("ts", sa.Float, nullable=False),
)
"""Which turn each platform message the bot posted answered (``turn``: the id of the user's
message), so a reaction on it finds its turn after a restart; and which threads the bot
took part in, with whom (``follow_threads``)."""
feedback = sa.Table(
    "feedback", METADATA,
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
)
"""The feedback standing now: one row per (turn, person, reaction or ``command``/``api``),
``score`` +1 (good) or -1 (bad); a retracted reaction's row is deleted. Each change is also
a ``feedback`` event in the session (the history, and what exporters send)."""

DURATION_SORT = sa.func.coalesce(sessions.c.duration_ms, sa.literal_column("-1"))
"""How sessions sort by duration: open sessions (no duration yet) come last when descending."""

# v12: the running processes (cluster.py)
instances = sa.Table(
    "instances", METADATA,
    sa.Column("id", sa.String(300), primary_key=True),
    sa.Column("lock_key", sa.BigInteger, nullable=False),
    sa.Column("label", sa.String(300), nullable=False, server_default=""),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("stopped_at", sa.Float),
    sa.Column("stop_reason", sa.String(40)),
)

# v12: budgets shared by every process (budgets/shared.py; PostgreSQL)
budget_tallies = sa.Table(
    "budget_tallies", METADATA,
    sa.Column("scope", sa.String(300), primary_key=True),
    sa.Column("window", sa.String(40), primary_key=True),
    sa.Column("spent", sa.Float, nullable=False, server_default="0"),
    sa.Column("reserved", sa.Float, nullable=False, server_default="0"),
)
budget_reservations = sa.Table(
    "budget_reservations", METADATA,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("owner", sa.String(300), nullable=False),
    sa.Column("amount", sa.Float, nullable=False),
    sa.Column("tally_keys", sa.Text, nullable=False),
    sa.Column("ts", sa.Float, nullable=False),
)
"""A reservation in flight (its instance, amount and tally keys), so the janitor can give
back what a process that died had reserved."""

# v12: the bounded history of open sessions, so any process can continue a conversation
session_history = sa.Table(
    "session_history", METADATA,
    sa.Column("session_id", sa.String(64), primary_key=True),
    sa.Column("version", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("turns", sa.Text, nullable=False, server_default="[]"),
    # v15: set when a stopping process released the session: the database time (epoch
    # seconds) after which it is idle and the janitor ends it
    sa.Column("idle_until", sa.Float),
)

# v12: messages some process has taken on (platform retries and duplicates answered once)
platform_events = sa.Table(
    "platform_events", METADATA,
    sa.Column("key", sa.String(1000), primary_key=True),
    sa.Column("ts", sa.Float, nullable=False),
)

# v15: Discord gateway sessions a stopping process left resumable (claims.py)
shard_sessions = sa.Table(
    "shard_sessions", METADATA,
    sa.Column("bot", sa.String(200), primary_key=True),
    sa.Column("shard", sa.Integer, primary_key=True),
    sa.Column("shard_count", sa.Integer, nullable=False),
    sa.Column("session_id", sa.String(200), nullable=False),
    sa.Column("sequence", sa.BigInteger, nullable=False),
    sa.Column("resume_url", sa.String(1000), nullable=False),
    sa.Column("saved_at", sa.Float, nullable=False),
)
