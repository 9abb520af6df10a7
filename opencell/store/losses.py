"""What recording lost or set apart: quarantine rows for records the store refused, notes of
records recorders dropped, and the summary ``opencell doctor`` and ``/metrics`` show."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from opencell.records import valid_text
from opencell.store._json import to_json
from opencell.store.tables import quarantine, record_drops


def quarantine_row(record: object, reason: str) -> dict[str, Any]:
    """A row of the ``quarantine`` table for a record the store cannot take as it is.

    Never raises: every field is made storable (valid text, cut to its column, a finite
    ``ts`` or None), and the whole record is kept as JSON with ``str`` for what JSON cannot hold.
    """
    fields = ("kind", "session_id", "ts", "name", "data", "duration_ms", "success")
    values = {f: getattr(record, f, None) for f in fields}
    if not isinstance(record, tuple) or not hasattr(record, "_fields"):
        values = {"record": _safe_str(record)}
    ts = values.get("ts")
    finite = type(ts) in (int, float) and math.isfinite(ts)  # type: ignore[arg-type]
    return {"quarantined_at": time.time(), "ts": float(ts) if finite else None,  # type: ignore[arg-type]
            "session_id": _safe_str(values.get("session_id") or "")[:64],
            "kind": _safe_str(values.get("kind") or "")[:32],
            "name": _safe_str(values.get("name") or "")[:300],
            "reason": _safe_str(reason)[:2000], "record": _record_json(values)}


def _record_json(values: dict[str, Any]) -> str:
    try:
        return to_json(values)
    except Exception:  # noqa: BLE001 - the JSON fallback itself failed (a broken __str__)
        return to_json({"record": _safe_str(values)})


def _safe_str(value: object) -> str:
    try:
        return valid_text(value if type(value) is str else str(value))
    except Exception:  # noqa: BLE001 - a value whose __str__ raises
        return f"<unprintable {type(value).__name__}>"


def drop_rows(counts: Mapping[str, int], last_error: str | None,
              owner: str) -> list[dict[str, Any]]:
    """Rows of ``record_drops`` noting that a recorder dropped ``counts`` records per reason."""
    now = time.time()
    return [{"ts": now, "owner": owner, "reason": reason[:40], "count": n,
             "last_error": last_error} for reason, n in counts.items() if n > 0]


def losses(conn: Connection) -> dict[str, Any]:
    """``{"quarantined": n, "dropped": {reason: n}, "last_quarantined": {kind, session_id,
    reason, at (epoch s)} | None}`` over every process sharing the store."""
    q, d = quarantine.c, record_drops.c
    n = conn.execute(sa.select(sa.func.count()).select_from(quarantine)).scalar()
    last = conn.execute(sa.select(q.kind, q.session_id, q.reason, q.quarantined_at)
                        .order_by(q.id.desc()).limit(1)).first()
    dropped = {str(row.reason): int(row.n or 0) for row in conn.execute(
        sa.select(d.reason, sa.func.sum(d.count).label("n")).group_by(d.reason))}
    return {"quarantined": int(n or 0), "dropped": dropped,
            "last_quarantined": None if last is None else {
                "kind": last.kind, "session_id": last.session_id, "reason": last.reason,
                "at": last.quarantined_at}}


