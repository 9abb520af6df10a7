"""Erasure (GDPR Art. 17, CCPA): forget one user — ``opencell forget`` and :func:`forget`.

What goes, in every session the user took part in (sessions they started, and sessions
where a message of theirs was recorded): message text, prompts and completions, tool
arguments and results, error messages, stacks and context, session-end metadata and
custom-event data (the events stay, with ``content_expired`` and ``erased`` set); the
large shared texts only those events used; the quarantined records of those sessions.
What is replaced: the user's id and name in the sessions, their events and the cost
rollups, and in per-user budget alerts, by one random pseudonym (``erased-…``), so costs and
token totals stay exact and anonymous. Sessions are marked ``metadata.erased``.

An audit row (``erasures``) keeps who ran it, when, how many rows of what changed and which
exporters had already sent the data — never the user's id, name or text.

The steps are separate short transactions, ordered so that running ``forget`` again after an
interruption finishes the job: texts first, then events, then the sessions (until the last
step the sessions still carry the user id, so they are found again).
"""

from __future__ import annotations

import getpass
import json
import secrets
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from opencell.errors import StoreError
from opencell.store import textgc
from opencell.store._prune import read_state
from opencell.store.erasure_extra import erase_side_tables
from opencell.store.scrub import ERASED, anonymise, digests_in, dumps, erase, in_text, loads
from opencell.store.store import Store
from opencell.store.tables import (
    budget_alerts,
    cost_rollups,
    erasures,
    events,
    export_cursors,
    quarantine,
    search_terms,
    sessions,
    user_cost_rollups,
)

CHUNK = 500
"""Sessions per transaction while events are rewritten."""


@dataclass(slots=True)
class ErasureReport:
    """What :func:`forget` removed (or, with ``dry_run``, would remove)."""

    dry_run: bool
    sessions: int = 0
    events: int = 0
    texts: int = 0
    quarantined: int = 0
    cost_rows: int = 0
    alerts: int = 0
    exporters: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Exporter → ``{"events": n, "sessions": [ids]}`` it had already delivered."""
    session_ids: list[str] = field(default_factory=list)
    audit_id: int | None = None
    pseudonym: str | None = None
    checkpointed: bool = False
    """SQLite: the write-ahead log was emptied (no old copy of the text left in it)."""

    def counts(self) -> dict[str, int]:
        return {"sessions": self.sessions, "events": self.events, "texts": self.texts,
                "quarantined": self.quarantined, "cost_rows": self.cost_rows,
                "alerts": self.alerts}


def forget(store: Store, user_id: str, *, platform: str | None = None, dry_run: bool = False,
           actor: str | None = None, now: float | None = None) -> ErasureReport:
    """Erase everything the store holds of ``user_id`` (on ``platform`` only, if given)."""
    user_id = (user_id or "").strip()
    if not user_id:
        raise StoreError("forget needs a user id")
    report = ErasureReport(dry_run=dry_run)
    found = _sessions(store, user_id, platform)
    seqs = frozenset(found)
    report.sessions = len(found)
    report.session_ids = sorted(row["id"] for row in found.values())
    needles = {user_id, *(row["user_name"] for row in found.values()
                          if row["owned"] and row["user_name"])}
    candidates, report.events = _digests(store, seqs)
    report.exporters = _delivered(store, found)
    with store.reading() as conn:
        report.cost_rows = _rollup_rows(conn, user_id, platform)
        report.alerts = len(_alert_rows(conn, user_id))
        report.quarantined = len(_quarantined(conn, report.session_ids, user_id))
        mark = int(read_state(conn).get("content_through", 0))
    used, scanned = textgc.referenced(store.reading, mark, exclude_seqs=seqs)
    unused = candidates - used
    report.texts = len(unused)
    if dry_run or not found and not report.cost_rows and not report.alerts:
        return report
    report.pseudonym = "erased-" + secrets.token_hex(6)
    if unused:
        with _writing(store) as conn:
            unused -= textgc.referenced_since(conn, scanned, unused, seqs)
            report.texts = textgc.delete(conn, unused)
    insert_terms = store.insert_missing(search_terms, ("term", "session_seq"))
    for chunk in _chunks(sorted(seqs)):
        with _writing(store) as conn:
            _rewrite_events(conn, chunk, needles, report.pseudonym)
            erase_side_tables(conn, insert_terms, {seq: found[seq]["id"] for seq in chunk},
                              user_id, report.pseudonym)
            store.forget_terms(chunk)  # this process's writer sends those sessions' words again
    if not seqs:
        with _writing(store) as conn:
            erase_side_tables(conn, insert_terms, {}, user_id, report.pseudonym)
    with _writing(store) as conn:
        report.audit_id = _finish(conn, report, found, user_id, platform,
                                  actor or _actor(), time.time() if now is None else now)
    report.checkpointed = _checkpoint(store)
    return report


@contextmanager
def _writing(store: Store) -> Iterator[Connection]:
    """A write transaction that (SQLite) overwrites what it deletes with zeros, so the old
    text does not linger in free pages of the file."""
    with store.writing() as conn:
        if store.dialect_name == "sqlite":
            conn.exec_driver_sql("PRAGMA secure_delete = ON")
        yield conn


def _checkpoint(store: Store) -> bool:
    """SQLite: copy the WAL into the file and empty it, so the old page images holding the
    text are gone too. False when a reader (a running bot) kept it from finishing; the WAL
    is then overwritten as the store goes on."""
    if store.dialect_name != "sqlite":
        return True
    raw = store.engine.raw_connection()  # outside any transaction of its own
    try:
        busy = raw.driver_connection.execute(  # type: ignore[union-attr]
            "PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
    finally:
        raw.close()
    return not busy


def _sessions(store: Store, user_id: str, platform: str | None) -> dict[int, dict[str, Any]]:
    """seq → session (id, user_name, owned) for every session the user took part in."""
    s, e = sessions.c, events.c
    owned = sa.select(s.seq, s.id, s.user_name).where(s.user_id == user_id)
    if platform is not None:
        owned = owned.where(s.platform == platform)
    needle = _user_needle(user_id)
    took_part = (sa.select(s.seq, s.id, s.user_name).distinct()
                 .join_from(events, sessions, e.session_seq == s.seq)
                 .where(e.kind == "message", e.data.contains(needle, autoescape=True)))
    if platform is not None:
        took_part = took_part.where(s.platform == platform)
    out: dict[int, dict[str, Any]] = {}
    with store.reading() as conn:
        for row in conn.execute(owned):
            out[int(row.seq)] = {"id": row.id, "user_name": row.user_name, "owned": True}
        for row in conn.execute(took_part):
            if int(row.seq) not in out and _message_by(conn, int(row.seq), user_id):
                out[int(row.seq)] = {"id": row.id, "user_name": None, "owned": False}
    return out


def _message_by(conn: Connection, seq: int, user_id: str) -> bool:
    """Whether a message event of the session really has this user id (not just text
    that looks like it)."""
    e = events.c
    for data in conn.execute(sa.select(e.data).where(e.session_seq == seq,
                                                     e.kind == "message")).scalars():
        parsed = loads(data)
        if isinstance(parsed, dict) and parsed.get("user_id") == user_id:
            return True
    return False


def _digests(store: Store, seqs: frozenset[int]) -> tuple[set[str], int]:
    """The shared texts the sessions' events use, and how many events they have."""
    e = events.c
    found: set[str] = set()
    count = 0
    for chunk in _chunks(sorted(seqs)):
        with store.reading() as conn:
            for data in conn.execute(sa.select(e.data).where(e.session_seq.in_(chunk))).scalars():
                count += 1
                found |= digests_in(data)
    return found, count


def _delivered(store: Store, found: dict[int, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per exporter, the sessions' events it had already delivered (id ≤ its cursor)."""
    e, c = events.c, export_cursors.c
    out: dict[str, dict[str, Any]] = {}
    with store.reading() as conn:
        cursors = conn.execute(sa.select(c.exporter, c.last_event_id)).all()
        for exporter, last in cursors:
            n, sent = 0, set()
            for chunk in _chunks(sorted(found)):
                for seq, count in conn.execute(
                        sa.select(e.session_seq, sa.func.count()).where(
                            e.session_seq.in_(chunk), e.id <= int(last))
                        .group_by(e.session_seq)):
                    n += int(count)
                    sent.add(found[int(seq)]["id"])
            if n:
                out[exporter] = {"events": n, "sessions": sorted(sent)}
    return out


def _rollup_rows(conn: Connection, user_id: str, platform: str | None) -> int:
    r, u = cost_rollups.c, user_cost_rollups.c
    by_user = sa.select(sa.func.count()).select_from(cost_rollups).where(r.user_id == user_id)
    if platform is not None:
        by_user = by_user.where(r.platform == platform)
    per_period = sa.select(sa.func.count()).select_from(user_cost_rollups).where(
        u.user_id == user_id)
    return int(conn.execute(by_user).scalar() or 0) + int(conn.execute(per_period).scalar() or 0)


def _rewrite_events(conn: Connection, seqs: list[int], names: set[str],
                    pseudonym: str) -> None:
    """Erase the events of these sessions; rows are read and written through the driver's
    cursor (in the same transaction): per-row overhead was most of a large erasure."""
    needles = tuple(sorted((n for n in names if n), key=len, reverse=True))
    param = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    cursor = conn.connection.cursor()
    try:
        cursor.execute(f"SELECT id, kind, data FROM events WHERE session_seq IN "
                       f"({','.join([param] * len(seqs))})", list(seqs))
        changes: list[tuple[str, int]] = []
        for event_id, kind, text in cursor.fetchall():
            data = loads(text)
            if isinstance(data, dict) and data.get(ERASED) is True:
                continue
            changes.append((dumps(erase(kind, data, needles, pseudonym)), int(event_id)))
        if changes:
            cursor.executemany(f"UPDATE events SET data = {param} WHERE id = {param}", changes)
    finally:
        cursor.close()


def _finish(conn: Connection, report: ErasureReport, found: dict[int, dict[str, Any]],
            user_id: str, platform: str | None, actor: str, now: float) -> int:
    """Sessions, rollups, alerts, quarantine and the audit row, in one transaction."""
    assert report.pseudonym is not None
    pseudonym = report.pseudonym
    audit = conn.execute(erasures.insert().values(
        ts=now, actor=actor[:300], platform=platform, pseudonym=pseudonym,
        counts=json.dumps(report.counts()),
        exporters=json.dumps({name: {"events": sent["events"],
                                     "sessions": len(sent["sessions"])}
                              for name, sent in report.exporters.items()})))
    key = audit.inserted_primary_key
    assert key is not None
    audit_id = int(key[0])
    s = sessions.c
    marker = json.dumps({ERASED: True, "erasure": audit_id})
    owned = sorted(seq for seq, row in found.items() if row["owned"])
    others = sorted(seq for seq, row in found.items() if not row["owned"])
    for chunk in _chunks(owned):
        conn.execute(sessions.update().where(s.seq.in_(chunk)).values(
            user_id=pseudonym, user_name=pseudonym, conversation_key=None, metadata=marker))
    for chunk in _chunks(others):
        conn.execute(sessions.update().where(s.seq.in_(chunk)).values(metadata=marker))
    r = cost_rollups.c
    moved = cost_rollups.update().where(r.user_id == user_id).values(user_id=pseudonym)
    if platform is not None:
        moved = moved.where(r.platform == platform)
    conn.execute(moved)
    conn.execute(user_cost_rollups.update().where(user_cost_rollups.c.user_id == user_id)
                 .values(user_id=pseudonym))
    _alerts(conn, user_id, pseudonym)
    for ids in _chunks(_quarantined(conn, report.session_ids, user_id)):
        conn.execute(quarantine.delete().where(quarantine.c.id.in_(ids)))
    return audit_id


def _quarantined(conn: Connection, session_ids: list[str], user_id: str) -> list[int]:
    """Quarantined records of these sessions, or whose record names the user (one refused
    before its session had a row)."""
    q = quarantine.c
    found = {int(i) for i in conn.execute(sa.select(q.id).where(
        q.record.contains(_user_needle(user_id), autoescape=True))).scalars()}
    for ids in _chunks(session_ids):
        found.update(int(i) for i in conn.execute(
            sa.select(q.id).where(q.session_id.in_(ids))).scalars())
    return sorted(found)


def _user_needle(user_id: str) -> str:
    """How a record's data names its user in stored JSON: ``"user_id":"…"``."""
    return '"user_id":' + json.dumps(user_id, ensure_ascii=False)


def _alert_rows(conn: Connection, user_id: str) -> list[Any]:
    """Budget alerts about this user: scope ``user:ID`` or ``bot:B/user:ID``."""
    a = budget_alerts.c
    scope = f"user:{user_id}"
    return list(conn.execute(sa.select(a.id, a.scope, a.alert_key, a.data).where(
        sa.or_(a.scope == scope, a.scope.endswith("/" + scope, autoescape=True)))).all())


def _alerts(conn: Connection, user_id: str, pseudonym: str) -> None:
    a = budget_alerts.c
    needles = (user_id,)
    for row in _alert_rows(conn, user_id):
        data = loads(row.data)
        if isinstance(data, dict):
            data = {key: in_text(value, needles, pseudonym) if isinstance(value, str)
                    else anonymise(value, needles, pseudonym) for key, value in data.items()}
        conn.execute(budget_alerts.update().where(a.id == row.id).values(
            scope=in_text(row.scope, needles, pseudonym),
            alert_key=in_text(row.alert_key, needles, pseudonym),
            data=dumps(data)))


def _actor() -> str:
    """Who ran the erasure: the operating-system account and host."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _chunks(items: list[Any]) -> list[list[Any]]:
    return [items[start:start + CHUNK] for start in range(0, len(items), CHUNK)]


def audit_log(store: Store, limit: int = 100) -> list[dict[str, Any]]:
    """The latest erasures, newest first (what ``doctor`` and an auditor read)."""
    x = erasures.c
    with store.reading() as conn:
        rows = conn.execute(sa.select(erasures).order_by(x.id.desc()).limit(limit)).mappings()
        return [{**row, "counts": json.loads(row["counts"] or "{}"),
                 "exporters": json.loads(row["exporters"] or "{}")} for row in rows]
