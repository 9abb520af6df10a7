"""The writer sends each session's search terms once, and never forgets one it did not store."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from opencell.records import Record, new_session_id
from opencell.store.indexed_terms import IndexedTerms
from opencell.store.store import Store
from opencell.store.tables import search_terms


def test_only_pairs_not_yet_stored_are_new_and_memory_is_bounded() -> None:
    known = IndexedTerms(sessions=2, per_session=2)
    assert sorted(known.new({1: {"refund", "order"}})) == [(1, "order"), (1, "refund")]
    known.stored([(1, "refund"), (1, "order"), (1, "parcel")])  # past per_session: not kept
    assert known.new({1: {"refund", "parcel"}}) == [(1, "parcel")]
    known.stored([(2, "a1"), (3, "b1")])  # a third session pushes out the oldest (1)
    assert known.new({1: {"refund"}, 2: {"a1"}, 3: {"b1"}}) == [(1, "refund")]
    known.forget([2])
    assert known.new({2: {"a1"}}) == [(2, "a1")]


def test_everything_is_forgotten_after_max_age() -> None:
    """Another process may have deleted a remembered term: the memory never outlives
    ``max_age_s``, so such a term is sent again within that time."""
    now = [0.0]
    known = IndexedTerms(max_age_s=3600.0, clock=lambda: now[0])
    known.stored([(1, "refund")])
    now[0] = 3599.0
    assert known.new({1: {"refund"}}) == []
    now[0] = 3600.0
    assert known.new({1: {"refund"}}) == [(1, "refund")]
    known.stored([(1, "refund")])
    assert known.new({1: {"refund"}}) == []  # remembered afresh from here


def _turn(sid: str, ts: float, text: str) -> list[Record]:
    return [Record("message", sid, ts, "turn", {"input": text, "output": "noted",
                                                "user_id": "u1", "input_chars": len(text),
                                                "output_chars": 5}, 1.0, True)]


def test_a_repeated_word_is_sent_once_and_a_failed_batch_is_not_remembered(
        store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store.open(store_url)
    sid, now = new_session_id(time.time()), time.time()
    store.write_batch([Record("session_start", sid, now, "bot", {"bot": "bot",
                                                                 "user_id": "u1"})])
    sent: list[int] = []
    real = store._write_plan

    def counting(conn, plan, infos):  # type: ignore[no-untyped-def]
        real(conn, plan, infos)
        sent.append(len(store._indexing))

    monkeypatch.setattr(store, "_write_plan", counting)
    store.write_batch(_turn(sid, now + 1, "where is my parcel"))
    store.write_batch(_turn(sid, now + 2, "my parcel again"))
    assert sent[0] > 0 and sent[1] == 1  # only "again" is new

    def failing(conn, plan, infos):  # type: ignore[no-untyped-def]
        real(conn, plan, infos)
        raise sa.exc.OperationalError("INSERT", {}, Exception("disk I/O error"))

    monkeypatch.setattr(store, "_write_plan", failing)
    with pytest.raises(sa.exc.OperationalError):
        store.write_batch(_turn(sid, now + 3, "zeppelin"))  # rolled back
    monkeypatch.setattr(store, "_write_plan", counting)
    store.write_batch(_turn(sid, now + 4, "zeppelin"))
    assert sent[-1] == 1  # sent again: the failed batch's terms were never remembered
    with store.reading() as conn:
        terms = set(conn.execute(sa.select(search_terms.c.term)).scalars())
    assert {"parcel", "again", "zeppelin"} <= terms
    assert [s["id"] for s in store.session_page(q="zeppelin")["sessions"]] == [sid]
    store.close()
