"""Retention and the search index, on both stores: the words of expired messages stop finding
their session (and leave ``search_terms``); its short id, its user, and the words of its
messages that still hold content go on finding it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from opencell.records import Record, new_session_id, short_session_id
from opencell.store.retention import PruneReport, RetentionPolicy, prune
from opencell.store.store import Store
from opencell.store.tables import search_terms
from tests.fakes.waiting import poll
from tests.observability._lifecycle_data import scan_tables

DAY = 86400.0
T0 = 1_764_000_000.0
POLICY = RetentionPolicy(events_s=90 * DAY, content_s=30 * DAY, exporter_grace_s=30 * DAY,
                         batch_rows=3, duty=1.0)
"""Small batches: a session's messages expire over several steps."""


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = Store.open(store_url)
    yield opened
    opened.close()


def start(sid: str, ts: float, user: str, name: str) -> Record:
    return Record("session_start", sid, ts, "support", {
        "bot": "support", "platform": "discord", "user_id": user, "user_name": name,
        "tags": []})


def said(sid: str, ts: float, text: str, answer: str = "noted") -> Record:
    return Record("message", sid, ts, "turn", {"input": text, "output": answer,
                                               "user_id": "ualpha7"}, 20.0, True)


def found(store: Store, q: str) -> list[str]:
    """What the dashboard's search box finds."""
    return [row["id"] for row in store.session_page(q=q)["sessions"]]


def terms_holding(store: Store, word: str) -> list[tuple[str, int]]:
    """Every row of ``search_terms`` whose term contains ``word`` (the whole table read)."""
    with store.reading() as conn:
        rows = conn.execute(sa.select(search_terms.c.term, search_terms.c.session_seq)).all()
    return [(term, seq) for term, seq in rows if word in term]


def test_expired_words_stop_finding_the_session_and_leave_the_index(store: Store) -> None:
    sid = new_session_id(T0)
    store.write_batch([
        start(sid, T0, "ualpha7", "Zed Quill"),
        said(sid, T0 + 1, "my zebrafish markold is ill", "try the vet markold"),
        said(sid, T0 + 2, "longword " + "y" * 3000),  # stored once by digest (texts.py)
        said(sid, T0 + 3, "shared freshword said early too"),
        said(sid, T0 + 35 * DAY, "a later freshword, still kept"),
    ])
    assert found(store, "markold") == found(store, "longword") == [sid]

    report = prune(store, POLICY, now=T0 + 40 * DAY)

    assert report.content_expired == 3 and report.terms_deleted > 0
    assert found(store, "markold") == found(store, "zebrafish") == []
    assert found(store, "longword") == [] and found(store, "vet") == []
    assert found(store, short_session_id(sid)) == [sid]
    assert found(store, "ualpha7") == found(store, "quill") == [sid]
    assert found(store, "freshword") == found(store, "kept") == [sid]
    assert found(store, "early") == []  # only the expired message said it
    assert terms_holding(store, "markold") == [] and scan_tables(store, "markold") == []
    assert terms_holding(store, "longword") == []

    # The writer does not trust its memory of the deleted words: said again, found again.
    store.write_batch([said(sid, T0 + 41 * DAY, "markold is back")])
    assert found(store, "markold") == [sid]
    again = prune(store, POLICY, now=T0 + 40 * DAY)  # nothing more expires
    assert (again.content_expired, again.terms_deleted) == (0, 0)


def test_words_of_deleted_events_go_too(store: Store) -> None:
    """Past the events window the pruner deletes before it strips: a message deleted with its
    content still in it takes its words along."""
    old, new = new_session_id(T0), new_session_id(T0 + 80 * DAY)
    store.write_batch([start(old, T0, "ualpha7", "Zed Quill"),
                       said(old, T0 + 1, "gonewordz forever")])
    store.write_batch([start(new, T0 + 80 * DAY, "ubeta", "Beta"),
                       said(new, T0 + 80 * DAY + 1, "stayword here")])

    report: PruneReport = prune(store, POLICY, now=T0 + 100 * DAY)

    assert report.events_deleted == 2 and report.content_expired == 0
    assert found(store, "gonewordz") == [] and terms_holding(store, "gonewordz") == []
    assert found(store, short_session_id(old)) == [old] and found(store, "quill") == [old]
    assert found(store, "stayword") == [new]


@pytest.mark.postgres
def test_a_word_written_while_its_old_message_expires_is_kept(postgres_url: str) -> None:
    """PostgreSQL, a writer in the middle of a batch (its session row updated, its new
    message inserted, the word's row already there so its insert does nothing): the pruner
    waits for it, reads its message, and keeps the word."""
    store = Store.open(postgres_url)
    sid = new_session_id(T0)
    store.write_batch([start(sid, T0, "ualpha7", "Zed Quill"), said(sid, T0 + 1, "raceword")])
    with store.reading() as conn:
        seq = conn.exec_driver_sql("SELECT seq FROM sessions").scalar_one()
    writer = store.engine.connect()
    began = writer.begin()
    writer.exec_driver_sql("UPDATE sessions SET messages = messages + 1 WHERE seq = %s", (seq,))
    writer.exec_driver_sql(
        "INSERT INTO events (session_seq, ts, kind, name, data) VALUES (%s, %s, 'message', "
        "'turn', '{\"input\": \"raceword again\"}')", (seq, T0 + 40 * DAY))
    result: dict[str, Any] = {}
    pruner = threading.Thread(target=lambda: result.update(
        r=prune(store, POLICY, now=T0 + 40 * DAY)))
    pruner.start()
    try:
        assert poll(lambda: _waiting_on_a_lock(store)), "the pruner never waited for the writer"
    finally:
        began.commit()
        writer.close()
        pruner.join()
    assert result["r"].content_expired == 1
    assert found(store, "raceword") == [sid]
    store.close()


def _waiting_on_a_lock(store: Store) -> bool:
    with store.reading() as conn:
        return bool(conn.exec_driver_sql(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query LIKE '%%FOR UPDATE%%'").scalar())
