"""What ``opencell doctor`` says about the store's data: its size, the oldest event, what the
pruner did last, and (SQLite) whether freed space can be handed back."""

from __future__ import annotations

import os
from typing import Any

import sqlalchemy as sa

from opencell.records import KINDS
from opencell.store._prune import read_state
from opencell.store.store import Store
from opencell.store.tables import METADATA, events


def facts(store: Store) -> dict[str, Any]:
    """``{size_bytes, oldest_event_ts, events, auto_vacuum, free_pages, state}``.

    The oldest event is found through the (kind, ts) index, one probe per kind; the size is
    the file with its WAL (SQLite) or the store's tables with their indexes (PostgreSQL).
    """
    e = events.c
    out: dict[str, Any] = {"size_bytes": None, "auto_vacuum": None, "free_pages": None}
    with store.reading() as conn:
        oldest = [conn.execute(sa.select(sa.func.min(e.ts)).where(e.kind == kind)).scalar()
                  for kind in KINDS]
        found = [float(ts) for ts in oldest if ts is not None]
        out["oldest_event_ts"] = min(found) if found else None
        out["state"] = read_state(conn)
        if store.dialect_name == "sqlite":
            mode = int(conn.exec_driver_sql("PRAGMA auto_vacuum").scalar() or 0)
            out["auto_vacuum"] = {0: "none", 1: "full", 2: "incremental"}.get(mode, str(mode))
            out["free_pages"] = int(conn.exec_driver_sql("PRAGMA freelist_count").scalar() or 0)
        elif store.dialect_name == "postgresql":
            names = [name for name in METADATA.tables]
            out["size_bytes"] = int(conn.execute(sa.text(
                "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relname = ANY(:names) AND c.relkind = 'r' "
                "AND n.nspname = ANY(current_schemas(false))"), {"names": names}).scalar() or 0)
    path = store._dialect.file_path()
    if path is not None:
        out["size_bytes"] = sum(os.path.getsize(f"{path}{suffix}") for suffix in ("", "-wal")
                                if os.path.exists(f"{path}{suffix}"))
    return out
