"""Search over what was said: an inverted index of words per session (``search_terms``).

Each message's words, the words of the user's id and name (lower-cased, 2–40 characters,
at most ``MAX_TERMS`` distinct per text) and each session's short id are stored once per
session as ``(term, session_seq)``. A search word matches every term it starts ("ship"
finds "shipped"; a short number only itself), found with a range seek on the primary key —
the same plain B-tree on SQLite and PostgreSQL, no FTS extension. Several words must all
occur in the session (not necessarily in one message). How each word is matched is planned
per search (``plan_words``) so that common words stay cheap at a million events.
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
_ONE_PASS_CHARS = 3 * MAX_TERMS - 1
"""A message's two texts shorter than this together hold fewer than ``MAX_TERMS`` words."""


_INDEXED = re.compile(r"\w{2,}")
"""A word long enough to index (``MIN_CHARS``)."""
_WORD_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"
_BYTE_WORDS = bytes(c if chr(c) in _WORD_CHARS else c + 32 if 65 <= c <= 90 else 32
                    for c in range(256))
"""ASCII bytes lower-cased, and every byte that is not a word character made a space."""
_ONE_BYTE = frozenset(c.encode() for c in _WORD_CHARS)
_UTF8_WORDS = _BYTE_WORDS[:128] + bytes(range(128, 256))
"""``_BYTE_WORDS`` for UTF-8: the bytes of other characters are kept, to be read by pattern."""


def terms_of(text: object) -> set[str]:
    """The indexable words of ``text`` (non-strings have none)."""
    if not isinstance(text, str) or not text:
        return set()
    if len(text) < 3 * MAX_TERMS:  # fewer than MAX_TERMS words fit: no order to keep
        return words_of([text])
    found: set[str] = set()
    for match in _INDEXED.finditer(text.lower()):
        found.add(match.group()[:MAX_CHARS])
        if len(found) >= MAX_TERMS:
            break
    return found


def message_terms(data: Any) -> set[str]:
    """What a ``message`` record makes searchable: the user's text and the bot's reply."""
    texts = message_texts(data)
    if texts is not None:  # both short: one pass, no cap
        return words_of(list(texts))
    if not isinstance(data, dict):
        return set()
    found = terms_of(data.get("input"))
    found |= terms_of(data.get("output"))
    return found


def message_texts(data: Any) -> tuple[str, str] | None:
    """A ``message`` record's two texts when :func:`words_of` may read them with the batch's
    other messages (both short: no cap on words applies); else None, and its words are
    :func:`message_terms`'."""
    if type(data) is not dict:
        return None
    said, reply = data.get("input"), data.get("output")
    if type(said) is str and type(reply) is str and len(said) + len(reply) < _ONE_PASS_CHARS:
        return said, reply
    return None


def words_of(texts: list[str]) -> set[str]:
    """The indexable words of short ``texts`` (each under ``3 * MAX_TERMS`` characters, so
    no cap applies), in one pass: one text, or a session's messages in a write batch.

    ASCII text (most of what is said) is a few hundred bytes a message translated and split
    in C, each distinct word decoded once per call, not once per message: the writer spent
    half its time per message finding words with the pattern, one text at a time.

    Other text (a model's curly quotes or dashes, an accent, an emoji) is lower-cased whole,
    as the pattern would read it, and split the same way at its ASCII characters; only the
    pieces holding another character are read with the pattern (the whole text by pattern
    cost about 8 µs a message)."""
    joined = "\n".join(texts)  # a separator: no word runs from one text into the next
    if joined.isascii():
        raw = set(joined.encode().translate(_BYTE_WORDS).split())
        if not raw.isdisjoint(_ONE_BYTE):
            raw -= _ONE_BYTE
        words = {word.decode() for word in raw}
    else:
        # A UTF-8 sequence holds no ASCII byte, so splitting there never cuts a character,
        # and an ASCII-only piece lies between ASCII non-word characters: it is a word. A
        # lone surrogate (text from the facade is not made valid before it is stored) goes
        # through as itself, which the pattern does not take for a word character.
        raw = set(joined.lower().encode(errors="surrogatepass").translate(_UTF8_WORDS).split())
        raw -= _ONE_BYTE
        words = set()
        for piece in raw:
            if piece.isascii():
                words.add(piece.decode())
            else:
                words.update(_INDEXED.findall(piece.decode(errors="surrogatepass")))
    if words and max(map(len, words)) > MAX_CHARS:
        words = {w[:MAX_CHARS] for w in words}
    return words


def session_terms(session_id: str) -> set[str]:
    """The short id the lists show (its last 12 characters) is a term of its own."""
    return {short_session_id(session_id).lower()}


def query_words(q: str) -> list[str]:
    """The words of a search box (none when it has no indexable word)."""
    words = sorted({w[:MAX_CHARS] for w in WORD.findall(q.lower()) if len(w) >= MIN_CHARS},
                   key=len, reverse=True)
    return words[:MAX_QUERY_WORDS]


def word_match(dialect: Dialect, word: str) -> sa.ColumnElement[bool]:
    """Terms a search word matches: those it starts, or — a number of up to six digits —
    itself only ("42" is order 42, not 420 or 4217)."""
    t = search_terms.c
    return t.term == word if exact_word(word) else dialect.prefix_match(t.term, word)


def exact_word(word: str) -> bool:
    return word.isdigit() and len(word) <= 6


def matching_sessions(dialect: Dialect, words: list[str]) -> sa.Select[Any]:
    """``session_seq`` of the sessions holding a term starting with each of ``words``."""
    t = search_terms.c
    selects = [sa.select(t.session_seq).where(word_match(dialect, word)) for word in words]
    if len(selects) == 1:
        return selects[0]
    return sa.select(sa.intersect(*selects).subquery().c.session_seq)


FEW = 1000
"""A word matching at most this many sessions is listed whole (see ``Dialect.among``)."""
COMMON = 2000
"""A word starting more than this many session terms is "common" (see ``plan_words``)."""
DRIVE = 20_000
"""The least common word of a search drives it (its matches are fetched, then sorted) when
it matches at most this many sessions; above, the listing walks its sort index."""
MAX_EXPANSION = 24
"""A common word is looked up as the exact terms it starts, if there are at most this many."""


WordPlan = tuple[str, str, list[str]]
"""(how, word, exact terms): how a search word is matched — ``rare``: by the list of its
matches, which drives the query; ``few``: the same, with at most ``FEW`` matches, so the
list is handed over whole; ``exact``: a common word, by a primary-key seek per exact
term it starts, session by session; ``wide``: a common word starting too many terms, by
its match list, built once and tested session by session."""


def plan_words(conn: Connection, dialect: Dialect, words: list[str]) -> list[WordPlan]:
    """How to match each search word (see ``WordPlan``): one capped index count per word;
    the least common word drives the query when it matches at most ``DRIVE`` sessions, as
    do all words under ``COMMON``; a common word is expanded (a few index seeks) into the
    exact terms it starts."""
    t = search_terms.c
    counts = {}
    for word in words:
        capped = dialect.limit(sa.select(sa.literal(1)).where(
            word_match(dialect, word)), DRIVE + 1).subquery()
        counts[word] = conn.execute(sa.select(sa.func.count()).select_from(capped)).scalar_one()
    rarest = min(words, key=lambda w: counts[w]) if words else None
    plans: list[WordPlan] = []
    for word in words:
        if counts[word] <= FEW:
            plans.append(("few", word, []))
            continue
        if counts[word] <= COMMON or (word == rarest and counts[word] <= DRIVE):
            plans.append(("rare", word, []))
            continue
        terms: list[str] = [word] if exact_word(word) else []
        last = ""
        while not exact_word(word) and len(terms) <= MAX_EXPANSION:
            found = conn.execute(dialect.limit(sa.select(t.term).where(
                *_next_term(dialect, word, last)).order_by(t.term), 1)).scalar()
            if found is None:
                break
            terms.append(found)
            last = found
        plans.append(("exact", word, terms) if len(terms) <= MAX_EXPANSION
                     else ("wide", word, []))
    return plans


def _next_term(dialect: Dialect, word: str, last: str) -> list[sa.ColumnElement[bool]]:
    """The terms after ``last`` that start with ``word``, as one index range on SQLite (a
    second lower bound would make it scan from ``word``: "137" has 70,000 rows)."""
    t = search_terms.c
    if dialect.name != "sqlite":
        return [dialect.prefix_match(t.term, word), t.term > last]
    return [t.term > last if last else t.term >= word, t.term < word + "\U0010ffff"]


def words_condition(dialect: Dialect, session_seq: Any,
                    plans: list[WordPlan]) -> sa.ColumnElement[bool]:
    """Sessions holding every planned word. Only ``rare`` words may drive the query; the
    others are written so that the planner tests them per session ("seq + 0" is not
    indexable) while it walks the listing's sort index."""
    rare = [word for how, word, _ in plans if how in ("rare", "few")]
    parts: list[sa.ColumnElement[bool]] = []
    if any(how == "few" for how, _, _ in plans):  # their intersection is a short list
        parts.append(dialect.among(session_seq, matching_sessions(dialect, rare)))
    elif rare:
        parts.append(session_seq.in_(matching_sessions(dialect, rare)))
    for how, word, terms in plans:
        if how == "exact":
            parts.append(holds_terms(dialect, session_seq, terms))
        elif how == "wide":
            parts.append((session_seq + 0).in_(matching_sessions(dialect, [word])))
    return sa.and_(*parts)


def holds_terms(dialect: Dialect, session_seq: Any, terms: list[str]) -> sa.ColumnElement[bool]:
    """True where the session has one of ``terms`` (a primary-key seek per term).

    Written as "the first such row exists", not ``EXISTS``: inside the search's ``OR`` (the
    id prefix, the user) PostgreSQL turns an ``EXISTS`` into a hash of every session holding
    the term — three common words of a 1M-event store, 73,000 sessions each: 85 ms — where
    the listing needs a few dozen seeks (0.5 ms); a subquery with a ``LIMIT`` stays a seek."""
    t = search_terms.c
    first = dialect.limit(sa.select(sa.literal(1)).where(t.session_seq == session_seq,
                                                         t.term.in_(terms)), 1)
    return first.scalar_subquery().is_not(None)


def term_rows(pairs: Iterable[tuple[int, str]]) -> list[dict[str, Any]]:
    """Rows for ``search_terms``, once each, in (session, term) order: writers that insert
    in one order cannot deadlock each other."""
    return [{"term": term, "session_seq": seq} for seq, term in sorted(set(pairs))]


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
