"""Which search terms this process already wrote, so each batch sends only new ones.

A conversation repeats its words: every ``message`` record of a session yields mostly terms the
index already holds, and re-sending them (``INSERT … ON CONFLICT DO NOTHING``) was most of the
writer's cost per message. :class:`IndexedTerms` remembers, per session, the terms written by
committed batches, for the most recently written sessions only (bounded memory); a term it does
not remember is simply written again, which the index ignores. Nothing here is needed for
correctness: several processes, a restart or a forgotten session only cost a re-send.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from itertools import repeat

SESSIONS = 5_000
"""Sessions remembered (least recently written dropped first)."""
TERMS_PER_SESSION = 2_000
"""A session with more distinct terms stops being remembered past this (its terms are sent)."""


class IndexedTerms:
    """A bounded memory of (session seq, term) pairs already in the search index."""

    def __init__(self, sessions: int = SESSIONS, per_session: int = TERMS_PER_SESSION) -> None:
        self._known: OrderedDict[int, set[str]] = OrderedDict()
        self._sessions = sessions
        self._per_session = per_session

    def new(self, terms: Mapping[int, set[str]]) -> list[tuple[int, str]]:
        """The (session seq, term) pairs of ``terms`` (seq → terms) not known to be stored."""
        known = self._known
        pairs: list[tuple[int, str]] = []
        for seq, words in terms.items():
            stored = known.get(seq)
            fresh = words if stored is None else words - stored
            pairs.extend(zip(repeat(seq), fresh))
        return pairs

    def stored(self, pairs: Iterable[tuple[int, str]]) -> None:
        """Remember pairs a committed transaction wrote."""
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
        if seqs is None:
            self._known.clear()
            return
        for seq in seqs:
            self._known.pop(seq, None)
