"""Session search over words said (the ``search_terms`` index), short ids and user names, with
a total and pages both ways — on SQLite and on PostgreSQL."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from opencell.records import Record, new_session_id, short_session_id
from opencell.store import migrations
from opencell.store.dialect import dialect_for
from opencell.store.search import MAX_CHARS, MAX_TERMS, message_terms, terms_of, words_of
from opencell.store.store import Store

T0 = 1_764_000_000.0


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = Store.open(store_url)
    yield opened
    opened.close()


def conversation(sid: str, ts: float, user: str, said: str, answered: str,
                 name: str | None = None) -> list[Record]:
    return [
        Record("session_start", sid, ts, "support", {
            "bot": "support", "platform": "discord", "user_id": user,
            "user_name": name or user, "tags": []}),
        Record("message", sid, ts + 1, "turn", {"input": said, "output": answered}, 30.0, True),
    ]


def found(store: Store, q: str, **options: object) -> list[str]:
    return [row["id"] for row in store.session_page(q=q, **options)["sessions"]]  # type: ignore[arg-type]


@pytest.fixture
def three(store: Store) -> dict[str, str]:
    ids = {name: new_session_id(T0 + i) for i, name in enumerate(("refund", "ship", "other"))}
    store.write_batch([
        *conversation(ids["refund"], T0, "u-1", "I want a REFUND for order 42",
                      "Refunds take 5 days.", name="Alice Martin"),
        *conversation(ids["ship"], T0 + 10, "u-2", "Where is my parcel?",
                      "Your order 42 has shipped.", name="Bob"),
        *conversation(ids["other"], T0 + 20, "u-3", "Bonjour, ça va ?", "Très bien, merci."),
    ])
    return ids


def test_words_said_find_their_sessions(store: Store, three: dict[str, str]) -> None:
    assert found(store, "refund") == [three["refund"]]  # the user's word, any case
    assert found(store, "shipped") == [three["ship"]]  # the bot's answer
    assert found(store, "ship") == [three["ship"]]  # the start of a word
    assert found(store, "order") == [three["ship"], three["refund"]]  # newest first
    assert found(store, "order refund") == [three["refund"]]  # every word must be there
    assert found(store, "très") == [three["other"]]  # unicode words
    assert found(store, "4") == []  # one character is no word
    assert found(store, "42") == [three["ship"], three["refund"]]  # a number: itself only
    assert found(store, "days 5") == [three["refund"]]  # one-character words are ignored
    assert found(store, "zebra") == []
    assert found(store, "martin") == [three["refund"]]  # a word of the user's name
    assert found(store, "order", descending=False) == [three["refund"], three["ship"]]


def test_the_short_id_and_an_id_prefix_find_the_session(
        store: Store, three: dict[str, str]) -> None:
    sid = three["ship"]
    assert found(store, short_session_id(sid)) == [sid]
    assert found(store, short_session_id(sid).upper()) == [sid]
    assert found(store, short_session_id(sid)[:8]) == [sid]  # its start, as typed so far
    assert found(store, sid) == [sid]
    assert found(store, "u-2") == [sid]  # an exact user id still matches


def test_a_page_has_a_total_and_leads_both_ways(store: Store) -> None:
    ids = [new_session_id(T0 + i) for i in range(7)]
    store.write_batch([r for i, sid in enumerate(ids)
                       for r in conversation(sid, T0 + i, "u", "same words", "again")])
    newest_first = list(reversed(ids))
    first = store.session_page(q="same", limit=3)
    assert first["total"] == 7 and first["prev_cursor"] is None
    assert [r["id"] for r in first["sessions"]] == newest_first[:3]
    second = store.session_page(q="same", limit=3, cursor=first["next_cursor"])
    assert [r["id"] for r in second["sessions"]] == newest_first[3:6]
    third = store.session_page(q="same", limit=3, cursor=second["next_cursor"])
    assert [r["id"] for r in third["sessions"]] == newest_first[6:]
    assert third["next_cursor"] is None
    back = store.session_page(q="same", limit=3, before=third["prev_cursor"])
    assert [r["id"] for r in back["sessions"]] == newest_first[3:6]
    back = store.session_page(q="same", limit=3, before=back["prev_cursor"])
    assert [r["id"] for r in back["sessions"]] == newest_first[:3]
    assert back["prev_cursor"] is None and back["next_cursor"] is not None


def test_a_huge_message_indexes_a_bounded_number_of_words() -> None:
    text = " ".join(f"word{i}" for i in range(10 * MAX_TERMS))
    assert len(terms_of(text)) == MAX_TERMS
    assert terms_of(None) == set() and terms_of("a b c") == set()  # one letter is no word


TEXT = st.text(alphabet=st.sampled_from(
    "aZ09_ -.,'!?\n\t\x0b\x1c\x7fé€ßİ字٣Σς“”—\u212a\udce9" + "x" * 10), max_size=200)


@settings(max_examples=300, deadline=None)
@given(said=TEXT, reply=TEXT)
def test_words_are_what_the_word_pattern_finds(said: str, reply: str) -> None:
    """ASCII text is split without the regular expression (at C speed), and a message's two
    texts in one pass: the words must be exactly the pattern's, text by text."""
    def reference(text: str) -> set[str]:
        return {w[:MAX_CHARS] for w in re.findall(r"\w{2,}", text.lower())}

    assert terms_of(said) == reference(said)
    assert message_terms({"input": said, "output": reply}) == reference(said) | reference(
        reply)
    assert message_terms({"input": said, "output": None}) == reference(said)
    # A write batch reads a session's messages together (ASCII as bytes, others by pattern).
    shouted = said.upper()
    assert words_of([said, reply, shouted]) == reference(said) | reference(reply) | reference(
        shouted)
    assert words_of([said.encode("ascii", "ignore").decode(), reply[:5]]) == reference(
        said.encode("ascii", "ignore").decode()) | reference(reply[:5])


def test_a_store_from_before_search_is_indexed_when_upgraded(
        store_url: str, three: dict[str, str]) -> None:
    # The store as a release without search left it: no index. The search step (as an
    # upgrade runs it) builds the index from what was recorded.
    old = Store.open(store_url)
    with old.writing() as conn:
        conn.execute(sa.text("DROP TABLE search_terms"))
        migrations._v11_search_terms(conn, dialect_for(store_url)[0])
    old.close()
    upgraded = Store.open(store_url)
    try:
        assert upgraded.schema_version() == migrations.LATEST
        assert found(upgraded, "refund") == [three["refund"]]
        assert found(upgraded, short_session_id(three["other"])) == [three["other"]]
    finally:
        upgraded.close()

