"""Which search terms this process already wrote, so each batch sends only new ones.

A conversation repeats its words: every ``message`` record of a session yields mostly terms the
index already holds, and re-sending them (``INSERT … ON CONFLICT DO NOTHING``) was most of the
writer's cost per message. :class:`IndexedTerms` remembers, per session, the terms written by
committed batches, for the most recently written sessions only (bounded memory); a term it does
not remember is simply written again, which the index ignores.

The memory only ever suppresses inserts, so a stale entry can never keep a term in the index;
it can only keep a term *out*: when retention or erasure deletes a session's terms, a writer
that still remembers one would not send it again for a later message holding it. The process
that deletes tells its own store (``Store.forget_terms``); a writer in another process (several
bot processes on PostgreSQL, or ``opencell prune`` / ``opencell forget`` run beside a bot)
is not told. It forgets everything every ``max_age_s`` (an hour) instead, so such a session is
unfindable by that word for at most an hour — a missed search hit, never a kept word; and only
a session still active after its first messages expired (the content window is hours to days).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from itertools import repeat

SESSIONS = 5_000
"""Sessions remembered (least recently written dropped first)."""
TERMS_PER_SESSION = 2_000
"""A session with more distinct terms stops being remembered past this (its terms are sent)."""
MAX_AGE_S = 3600.0
"""Everything is forgotten this often: the bound on how long another process's deletions go
unnoticed (see the module docstring)."""


class IndexedTerms:
    """A bounded memory of (session seq, term) pairs already in the search index.

    Safe across threads: the writer calls :meth:`new` and :meth:`stored`, the pruner (its
    own thread) :meth:`forget`; a lock of its own, held for dictionary work only and never
    while waiting on the database, so it cannot deadlock with a transaction."""

    def __init__(self, sessions: int = SESSIONS, per_session: int = TERMS_PER_SESSION,
                 *, max_age_s: float = MAX_AGE_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._known: OrderedDict[int, set[str]] = OrderedDict()
        self._sessions = sessions
        self._per_session = per_session
        self._max_age_s = max_age_s
        self._clock = clock
        self._since = clock()
        self._lock = threading.Lock()

    def new(self, terms: Mapping[int, set[str]]) -> list[tuple[int, str]]:
        """The (session seq, term) pairs of ``terms`` (seq → terms) not known to be stored."""
        with self._lock:
            now = self._clock()
            if now - self._since >= self._max_age_s:
                self._known.clear()
                self._since = now
            known = self._known
            pairs: list[tuple[int, str]] = []
            for seq, words in terms.items():
                stored = known.get(seq)
                fresh = words if stored is None else words - stored
                pairs.extend(zip(repeat(seq), fresh))
            return pairs

    def stored(self, pairs: Iterable[tuple[int, str]]) -> None:
        """Remember pairs a committed transaction wrote."""
        with self._lock:
            known = self._known
            for seq, term in pairs:
                terms = known.get(seq)
                if terms is None:
                    terms = known[seq] = set()
                    if len(known) > self._sessions:
                        known.popitem(last=False)
                elif seq != next(reversed(known)):
                    known.move_to_end(seq)
                if len(terms) < self._per_session:
                    terms.add(term)

    def forget(self, seqs: Iterable[int] | None = None) -> None:
        """Forget these sessions (all, with None): their index was changed elsewhere."""
        with self._lock:
            if seqs is None:
                self._known.clear()
                return
            for seq in seqs:
                self._known.pop(seq, None)
