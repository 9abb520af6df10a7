"""The conversation lock's contract with the history it guards (``store/conversations.py``):
whoever takes the lock next reads what its previous holder stored.

A turn's statements go to the server pipelined, and a pipeline's statements are one
transaction up to its end unless they say otherwise: a history stored in the same round trip
that lets the lock go could still be uncommitted when the next holder read it (seen once as a
turn that missed the one before it). Here the round trip that lets go is made slow on the
server, so a history committed only at its end is missed every time.
"""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
import sqlalchemy as sa

from opencell.store import conversations
from opencell.store.cluster import lock_key
from opencell.store.conversations import ConversationStore
from opencell.store.store import Store
from tests.fakes.waiting import WAIT, until_sync

pytestmark = pytest.mark.postgres


def test_the_next_holder_of_a_conversation_reads_the_history_its_last_holder_saved(
        postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conversations, "_UNLOCK",
                        "SELECT pg_advisory_unlock(%(k)s), pg_sleep(0.5)")
    store = Store.open(postgres_url)
    turns = ConversationStore(store)
    holding, finish = threading.Event(), threading.Event()

    def first_turn() -> None:
        with turns.turn("c1") as turn:
            turn.begin("c1", None, time.time())
            turn.save("s1", 1, [[{"role": "user", "content": "hi"}]])
            holding.set()
            finish.wait(WAIT)

    first = threading.Thread(target=first_turn)
    first.start()
    assert holding.wait(WAIT)
    with store.engine.connect() as conn:
        names = conn.execute(sa.text("SELECT current_database(), current_schema()")).one()
    key = lock_key(f"{names[0]}.{names[1]}\0conversation", "c1")
    seen: list[object] = []

    def next_holder() -> None:
        with store.engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            seen.append(conn.execute(sa.text(
                "SELECT version FROM session_history WHERE session_id = 's1'")).scalar())
            conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            conn.commit()

    second = threading.Thread(target=next_holder)
    second.start()
    with store.engine.connect() as conn:  # the next holder waits for the lock
        until_sync(lambda: conn.execute(sa.text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"),
        ).scalar(), "the second holder waiting for the lock")
    finish.set()
    first.join(WAIT)
    second.join(WAIT)
    turns.close()
    store.close()
    assert seen == [1]


def test_a_turn_that_fails_to_begin_leaves_no_lock_and_no_open_transaction(
        postgres_url: str) -> None:
    """The driver refusing a value before it is sent still runs what was queued before it
    (the transaction's BEGIN, the lock): that connection is closed, never pooled as it is.
    A platform id with a NUL byte (PostgreSQL text cannot hold one) is stored with U+FFFD."""
    store = Store.open(postgres_url)
    turns = ConversationStore(store)

    def held() -> tuple[int, int]:
        with store.engine.connect() as conn:
            return tuple(conn.execute(sa.text(
                "SELECT (SELECT count(*) FROM pg_stat_activity WHERE state LIKE "
                "'idle in transaction%' AND query LIKE 'SELECT pg_advisory%'), "
                "(SELECT count(*) FROM pg_locks WHERE locktype = 'advisory')")).one())

    before = held()
    with pytest.raises(psycopg.ProgrammingError), turns.turn("c1") as turn:
        turn.begin("c1", "m1", object())  # type: ignore[arg-type]  # no driver can send it
    after_failure = held()
    with turns.turn("c1") as turn:
        fresh, session = turn.begin("c1", "m\x00", time.time())
    with store.engine.connect() as conn:
        claimed = conn.execute(sa.text("SELECT key FROM platform_events")).scalars().all()
    turns.close()
    store.close()
    assert before[0] == 0 and after_failure == before
    assert (fresh, session) == (True, None)
    assert claimed == ["m\ufffd"]
