"""What ``forget`` erases beyond events and sessions: the tables later features added.

- ``search_terms``: the words said in the user's sessions (the search index is rebuilt for
  those sessions with only their short id, so they stay findable by id);
- ``session_history``: the stored history of an open session (several processes);
- ``feedback``: the user's ratings keep their score but get the pseudonym and lose their
  comment; ratings on the user's sessions by others lose their comment too;
- ``reply_messages``: which reply answered whom: the user id becomes the pseudonym.

Every step runs in the caller's transaction, per chunk of sessions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy import Connection

from opencell.store.search import session_terms, term_rows
from opencell.store.tables import feedback, reply_messages, search_terms, session_history


def erase_side_tables(conn: Connection, insert_terms: sa.Insert,
                      sessions: Mapping[int, str], user_id: str, pseudonym: str) -> None:
    """Erase the user's traces in the side tables for ``sessions`` (seq → session id)."""
    seqs: Sequence[int] = sorted(sessions)
    ids = [sessions[seq] for seq in seqs]
    if seqs:
        conn.execute(sa.delete(search_terms).where(search_terms.c.session_seq.in_(seqs)))
        conn.execute(insert_terms, term_rows(
            (seq, term) for seq in seqs for term in session_terms(sessions[seq])))
        conn.execute(sa.delete(session_history).where(session_history.c.session_id.in_(ids)))
        conn.execute(sa.update(feedback).where(feedback.c.session_id.in_(ids))
                     .values(comment=None))
    conn.execute(sa.update(feedback).where(feedback.c.user_id == user_id)
                 .values(user_id=pseudonym, comment=None))
    conn.execute(sa.update(reply_messages).where(reply_messages.c.user_id == user_id)
                 .values(user_id=pseudonym))
