"""Schema step 16: SQLite keeps ``search_terms`` as a clustered ``WITHOUT ROWID`` table.

A (term, session) pair is the whole row, so an ordinary SQLite table stored it twice: once
in the rowid B-tree and once in the primary key's index, and every insert (the writer, per
message) and delete (retention and ``forget``) changed both. Clustered on its key, the table
is one B-tree: about half the pages, and each insert or delete one B-tree change instead of
two (1.8 → 1.0 µs per deleted term, measured with ``benchmarks.lifecycle``). The rows are
copied once, in this step. PostgreSQL tables have no rowid; nothing changes there.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import Connection

from opencell.store.dialect import Dialect


def _v16_clustered_search_terms(conn: Connection, dialect: Dialect) -> None:
    """Rebuild SQLite's ``search_terms`` clustered on its key (frozen as shipped)."""
    del dialect
    if conn.dialect.name != "sqlite":
        return
    for statement in (
            "CREATE TABLE search_terms_clustered (term VARCHAR(40) NOT NULL, "
            "session_seq INTEGER NOT NULL, PRIMARY KEY (term, session_seq)) WITHOUT ROWID",
            "INSERT INTO search_terms_clustered (term, session_seq) "
            "SELECT term, session_seq FROM search_terms ORDER BY term, session_seq",
            "DROP TABLE search_terms",
            "ALTER TABLE search_terms_clustered RENAME TO search_terms"):
        conn.execute(sa.text(statement))
