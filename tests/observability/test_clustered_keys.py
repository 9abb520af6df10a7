"""Schema step 16: SQLite's rollups and search index become ``WITHOUT ROWID`` tables keyed as
before, every row kept; PostgreSQL is left as it was. Both stores answer the same after it."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from opencell.records import Record, new_session_id
from opencell.store import migrations
from opencell.store._clustered_keys_migration import CLUSTERED
from opencell.store.store import Store

T0 = 1_764_000_000.0


def _recorded(store: Store) -> str:
    sid = new_session_id(T0)
    store.write_batch([
        Record("session_start", sid, T0, "support", {
            "bot": "support", "platform": "slack", "user_id": "u1", "user_name": "Ann",
            "tags": ["vip"]}),
        Record("message", sid, T0 + 1, "turn", {"input": "where is my parcel",
                                                 "output": "on its way"}, 840.0, True),
        Record("llm_call", sid, T0 + 2, "chat", {
            "provider": "anthropic", "model": "claude-haiku-4-5", "input_tokens": 120,
            "output_tokens": 30, "cost_usd": 0.0004}, 500.0, True),
        Record("session_end", sid, T0 + 3, "end", {"status": "success"}),
    ])
    return sid


def _rows(store: Store) -> dict[str, set[tuple[Any, ...]]]:
    with store.reading() as conn:
        return {table: {tuple(row) for row in conn.execute(sa.text(f"SELECT * FROM {table}"))}
                for table in CLUSTERED}


def _ddl(store: Store, table: str) -> str:
    with store.reading() as conn:
        return str(conn.execute(sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' "
                                        "AND name = :t"), {"t": table}).scalar())


def test_an_upgrade_clusters_each_table_and_keeps_every_row(store_url: str) -> None:
    store = Store.open(store_url)
    _recorded(store)
    before = _rows(store)
    assert all(before[t] for t in ("search_terms", "cost_daily", "latency_hourly"))
    sqlite = store.dialect_name == "sqlite"
    if sqlite:  # the tables as version 15 made them: ordinary rowid tables
        plain = {t: _ddl(store, t).replace("WITHOUT ROWID", "") for t in CLUSTERED}
        with store.writing() as conn:
            for table, ddl in plain.items():
                conn.exec_driver_sql(f"ALTER TABLE {table} RENAME TO old_{table}")
                conn.exec_driver_sql(ddl)
                conn.exec_driver_sql(f"INSERT INTO {table} SELECT * FROM old_{table}")
                conn.exec_driver_sql(f"DROP TABLE old_{table}")
        assert all("WITHOUT ROWID" not in _ddl(store, t).upper() for t in CLUSTERED)
    with store.writing() as conn:
        conn.execute(sa.text("UPDATE opencell_schema SET version = 15"))
    store.close()

    upgraded = Store.open(store_url)
    try:
        assert upgraded.schema_version() == migrations.LATEST
        assert _rows(upgraded) == before
        if sqlite:
            assert all("WITHOUT ROWID" in _ddl(upgraded, t).upper() for t in CLUSTERED)
        # Writes keep landing in the rebuilt tables, and reads find them.
        second = _recorded(upgraded)
        assert [r["id"] for r in upgraded.session_page(q="parcel")["sessions"]][0] == second
        after = _rows(upgraded)
        assert after["search_terms"] > before["search_terms"]
        assert sum(row[-1] for row in after["latency_hourly"]) == 2
    finally:
        upgraded.close()
