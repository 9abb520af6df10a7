"""The store: sessions with running totals, their events, cost rollups — every package's one
way to the database.

Public API (everything outside ``opencell.store`` uses only these):

- :class:`Store` — ``open(url)``, ``write_batch``, the reads the CLI and dashboard share
  (``list_sessions``, ``get_session``, ``timeline``, ``costs``), and ``reading()`` /
  ``writing()`` connections for packages that keep their own tables here (budgets, exporters).
- :mod:`opencell.store.tables` — the tables as they are now; :mod:`opencell.store.reads` —
  query builders and row shapes; :mod:`opencell.store.dialect` — SQLite/PostgreSQL seam.
- ``owner_is_alive`` / ``process_owner`` — which process wrote a session or holds a lease.
- ``count`` / ``money`` — how a stored token count or cost is read back (one reader for all).
- The data lifecycle: ``prune`` / ``RetentionPolicy`` (:mod:`opencell.store.retention`),
  ``forget`` (:mod:`opencell.store.erasure`), ``export_jsonl`` (:mod:`opencell.store.export`).

Names are loaded lazily: importing ``opencell.store.tables`` must not pull in the writer.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "Store": "opencell.store.store",
    "owner_is_alive": "opencell.store._owner",
    "process_owner": "opencell.store.cluster",
    "count": "opencell.store._batch",
    "money": "opencell.store._batch",
    "COST_SUMS": "opencell.store._activity",
    "bucket_ms": "opencell.store._activity",
    "forget": "opencell.store.erasure",
    "export_jsonl": "opencell.store.export",
    "prune": "opencell.store.retention",
    "RetentionPolicy": "opencell.store.retention",
}

__all__ = ["COST_SUMS", "RetentionPolicy", "Store", "bucket_ms", "count", "export_jsonl", "forget",
           "money", "owner_is_alive", "process_owner", "prune"]

if TYPE_CHECKING:
    from opencell.store._activity import COST_SUMS, bucket_ms
    from opencell.store._batch import count, money
    from opencell.store._owner import owner_is_alive
    from opencell.store.cluster import process_owner
    from opencell.store.erasure import forget
    from opencell.store.export import export_jsonl
    from opencell.store.retention import RetentionPolicy, prune
    from opencell.store.store import Store


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'opencell.store' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
