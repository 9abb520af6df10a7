"""Search over what was said: an inverted index of words per session (``search_terms``).

Each message's words, the words of the user's id and name (lower-cased, 2–40 characters,
at most ``MAX_TERMS`` distinct per text) and each session's short id are stored once per
session as ``(term, session_seq)``.
A search word matches every term it starts ("ship" finds "shipped"), found with a range
seek on the primary key — the same plain B-tree on SQLite and PostgreSQL, no FTS extension,
and it stays one index probe per word at a million events. Several words must all occur in
the session (not necessarily in one message).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection

from opencell.records import short_session_id
from opencell.store.dialect import Dialect
from opencell.store.tables import events, search_terms, sessions

WORD = re.compile(r"\w+")
MIN_CHARS = 2
MAX_CHARS = 40
MAX_TERMS = 500
"""Distinct words indexed per text: a pasted log keeps its first 500, not 100,000 rows."""
MAX_QUERY_WORDS = 8


def terms_of(text: object) -> set[str]:
    """The indexable words of ``text`` (non-strings have none)."""
    if not isinstance(text, str) or not text:
        return set()
    found: set[str] = set()
    for match in WORD.finditer(text.lower()):
        word = match.group()
        if len(word) >= MIN_CHARS:
            found.add(word[:MAX_CHARS])
            if len(found) >= MAX_TERMS:
                break
    return found


def message_terms(data: Any) -> set[str]:
    """What a ``message`` record makes searchable: the user's text and the bot's reply."""
    if not isinstance(data, dict):
        return set()
    return terms_of(data.get("input")) | terms_of(data.get("output"))


def session_terms(session_id: str) -> set[str]:
    """The short id the lists show (its last 12 characters) is a term of its own."""
    return {short_session_id(session_id).lower()}


def query_words(q: str) -> list[str]:
    """The words of a search box (none when it has no indexable word)."""
    words = sorted({w[:MAX_CHARS] for w in WORD.findall(q.lower()) if len(w) >= MIN_CHARS},
                   key=len, reverse=True)
    return words[:MAX_QUERY_WORDS]


def matching_sessions(dialect: Dialect, words: list[str]) -> sa.Select[Any]:
    """``session_seq`` of the sessions holding a term starting with each of ``words``."""
    t = search_terms.c
    selects = [sa.select(t.session_seq).where(dialect.prefix_match(t.term, word))
               for word in words]
    if len(selects) == 1:
        return selects[0]
    return sa.select(sa.intersect(*selects).subquery().c.session_seq)


def term_rows(pairs: Iterable[tuple[int, str]]) -> list[dict[str, Any]]:
    return [{"term": term, "session_seq": seq} for seq, term in set(pairs)]


def backfill(conn: Connection, dialect: Dialect, chunk: int = 5000) -> None:
    """Index what a store recorded before search existed (run once, by the migration)."""
    insert = dialect.insert_missing(search_terms, ("term", "session_seq"))
    s, e = sessions.c, events.c
    for rows in _chunks(conn.execute(sa.select(s.seq, s.id, s.user_id, s.user_name)), chunk):
        conn.execute(insert, term_rows(
            (seq, term) for seq, sid, user_id, user_name in rows
            for term in session_terms(sid) | terms_of(user_id) | terms_of(user_name)))
    last = 0
    while True:
        found = conn.execute(sa.select(e.id, e.session_seq, e.data)
                             .where(e.kind == "message", e.id > last)
                             .order_by(e.id).limit(chunk)).all()
        if not found:
            return
        last = found[-1][0]
        pairs: list[tuple[int, str]] = []
        for _id, seq, raw in found:
            try:
                data = json.loads(raw)
            except ValueError:
                continue
            pairs.extend((seq, term) for term in message_terms(data))
        if pairs:
            conn.execute(insert, term_rows(pairs))


def _chunks(result: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for row in result:
        batch.append(tuple(row))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
