"""Retention's part in the search index: the words of expired messages leave ``search_terms``.

The index holds (term, session) pairs, not (term, event): a word is one row per session
however many messages said it. So when a step strips (or deletes) message events, the words
those messages made are *candidates*, and a candidate goes unless the session still has a
reason to hold it: its short id, its user's id and name (the session row keeps those), or a
message of the session that still holds content (a newer message of a long session). Every
word of the index came from one of these, so after the last message saying a word expires,
the word is gone. It runs in the step's own transaction.

A writer adding a message with the same word at the same moment must not lose it (its
``INSERT … ON CONFLICT DO NOTHING`` finding the row this step is about to delete). The step
locks the sessions' rows first (PostgreSQL ``FOR UPDATE``, in seq order like the writer;
SQLite serialises writers anyway): a writer updates its session's row before it inserts
terms, so it has either committed (its message is read below and keeps the word) or waits
for this step to commit. The writer's memory of what it wrote (``indexed_terms.py``) is
cleared for these sessions before the commit, so a writer that waited sends its words again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from opencell.store import texts
from opencell.store.scrub import loads
from opencell.store.search import message_terms, session_terms, terms_of
from opencell.store.tables import events, sessions

CHUNK = 500
"""Sessions per ``IN`` list."""


def message_words(conn: Connection, datas: Sequence[Any]) -> list[set[str]]:
    """The search terms each message's decoded data makes, as the writer made them: a long
    text stored once by digest (``texts.py``) is read back first."""
    probes: list[dict[str, Any]] = []
    refs = False
    for data in datas:
        probe: dict[str, Any] = {}
        if isinstance(data, dict):
            for key in ("input", "output"):
                value = data.get(key)
                if isinstance(value, str):
                    probe[key] = value
                elif _is_ref(value):
                    probe[key] = value  # replaced in the probe, not in data
                    refs = True
        probes.append(probe)
    if refs:
        texts.expand(conn, probes)
    return [message_terms(probe) for probe in probes]


def expire_terms(conn: Connection, words: Mapping[int, set[str]], content_through: int,
                 forget: Callable[[Iterable[int]], None]) -> int:
    """Delete the candidate ``words`` (session seq → terms of its messages this step
    stripped or deleted) that the session has no other reason to hold. Messages with an id
    above ``content_through`` may still hold content; none at or below it does. ``forget``
    clears the writer's memory of these sessions (``Store.forget_terms``). Returns the
    number of terms deleted."""
    seqs = sorted(seq for seq, found in words.items() if found)
    if not seqs:
        return 0
    s, e = sessions.c, events.c
    keep: dict[int, set[str]] = {}
    for start in range(0, len(seqs), CHUNK):
        chunk = seqs[start:start + CHUNK]
        for seq, sid, user_id, user_name in conn.execute(
                sa.select(s.seq, s.id, s.user_id, s.user_name).where(s.seq.in_(chunk))
                .order_by(s.seq).with_for_update()):
            keep[int(seq)] = session_terms(sid) | terms_of(user_id) | terms_of(user_name)
        # Kind is picked in the select list, not the WHERE: a kind condition there makes
        # SQLite walk ix_events_kind_ts over every message of the store (49 ms a chunk under
        # ingest) instead of this chunk's sessions by ix_events_session.
        live = [row for row in conn.execute(sa.select(
                    e.session_seq, sa.case((e.kind == "message", e.data), else_=None))
                    .where(e.session_seq.in_(chunk), e.id > content_through))
                if row[1] is not None]
        found = message_words(conn, [loads(data) for _, data in live])
        for (seq, _), terms in zip(live, found, strict=True):
            keep.setdefault(int(seq), set()).update(terms)
    gone = [(term, seq) for seq in seqs for term in words[seq] - keep.get(seq, set())]
    deleted = 0
    if gone:
        param = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        result = conn.exec_driver_sql(
            f"DELETE FROM search_terms WHERE term = {param} AND session_seq = {param}", gone)
        deleted = max(int(result.rowcount or 0), 0)
    forget(seqs)
    return deleted


def _is_ref(value: Any) -> bool:
    return type(value) is dict and len(value) == 1 and type(value.get("$text")) is str
