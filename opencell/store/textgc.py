"""Garbage collection of shared large texts (``texts`` table, see ``texts.py``).

A text is stored once and referred to by digest from any number of events, so it can only
go when no event that still holds content refers to it. Events whose content has expired
(ids up to the pruner's ``content_through``) refer to nothing, so a collection scans only
the events above that mark, in bounded chunks, for ``"$text"`` references.

Race (PostgreSQL only): a writer that re-sends a text already stored, in a transaction that
commits while the collection's delete runs, can leave one reference dangling; the timeline
then shows ``[text no longer stored]`` for that field. On SQLite the delete holds the write
lock and re-checks the events written since the scan, so it is exact.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager

import sqlalchemy as sa
from sqlalchemy import Connection

from opencell.store.scrub import TEXT_REF, digests_in
from opencell.store.tables import events, texts

SCAN_CHUNK = 20_000
"""Events read per query while looking for references."""


def referenced(conn_factory: Callable[[], AbstractContextManager[Connection]], after_id: int, *,
               exclude_seqs: frozenset[int] = frozenset(),
               pause: Callable[[], None] | None = None) -> tuple[set[str], int]:
    """Every digest referred to by an event with id above ``after_id`` (skipping the
    sessions in ``exclude_seqs``), and the highest event id scanned."""
    e = events.c
    found: set[str] = set()
    last = after_id
    while True:
        with conn_factory() as conn:
            rows = conn.execute(
                sa.select(e.id, e.session_seq, e.data)
                .where(e.id > last, e.data.contains(TEXT_REF, autoescape=True))
                .order_by(e.id).limit(SCAN_CHUNK)).all()
            if not rows:
                newest = conn.execute(sa.select(sa.func.max(e.id))).scalar()
                return found, max(last, int(newest or 0))
        for row in rows:
            if row.session_seq not in exclude_seqs:
                found |= digests_in(row.data)
        last = int(rows[-1].id)
        if pause is not None:
            pause()


def referenced_since(conn: Connection, after_id: int, candidates: set[str],
                     exclude_seqs: frozenset[int] = frozenset()) -> set[str]:
    """Of ``candidates``, those referred to by events above ``after_id`` (inside the
    deleting transaction: what was written since the scan)."""
    e = events.c
    found: set[str] = set()
    for row in conn.execute(sa.select(e.session_seq, e.data).where(
            e.id > after_id, e.data.contains(TEXT_REF, autoescape=True))):
        if row.session_seq not in exclude_seqs:
            found |= digests_in(row.data) & candidates
    return found


def delete(conn: Connection, digests: Iterable[str]) -> int:
    """Delete these texts; how many rows went."""
    wanted = sorted(digests)
    gone = 0
    for start in range(0, len(wanted), 500):
        result = conn.execute(texts.delete().where(texts.c.digest.in_(wanted[start:start + 500])))
        gone += int(result.rowcount or 0)
    return gone


def old_digests(conn: Connection, first_seen_before: float, after: str, limit: int) -> list[str]:
    """Up to ``limit`` digests of texts first stored before ``first_seen_before``, in digest
    order after ``after`` (keyset paging)."""
    t = texts.c
    return list(conn.execute(sa.select(t.digest).where(t.first_seen < first_seen_before,
                                                       t.digest > after)
                             .order_by(t.digest).limit(limit)).scalars())
