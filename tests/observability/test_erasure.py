"""``forget`` on both stores: after it no row holds the user's text or id, totals are the same,
an audit row says what happened without personal data, and exporters that sent it are named."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from opencell.budgets._store import BudgetStore
from opencell.errors import StoreError
from opencell.exporters.outbox import Outbox
from opencell.records import Record
from opencell.store.erasure import audit_log, forget
from opencell.store.feedback import remember_replies, session_feedback, set_feedback
from opencell.store.store import Store
from opencell.store.tables import sessions
from tests.conftest import clean_env, opencell
from tests.observability._lifecycle_data import (
    LONG,
    scan_tables,
    session_records,
    snapshot,
)

ALICE = "U0ALICE42"
MARK = "MARKER-ALICE-7f3c"


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = Store.open(store_url)
    yield opened
    opened.close()


def fill(store: Store, now: float) -> dict[str, list[str]]:
    """Alice: three sessions (two on Discord, one on Slack); Bob: two, one of which Alice
    spoke in; a budget alert and a quarantined record about Alice."""
    ids: dict[str, list[str]] = {"alice": [], "bob": []}
    for n, platform in enumerate(("discord", "discord", "slack")):
        sid, records = session_records(ALICE, now + n, MARK, platform=platform)
        store.write_batch(records)
        ids["alice"].append(sid)
    for n in range(2):
        sid, records = session_records("U0BOB", now + 10 + n, "MARKER-BOB",
                                       speaker=ALICE if n == 1 else None)
        store.write_batch(records)
        ids["bob"].append(sid)
    BudgetStore(store).claim(f"threshold|user:{ALICE}|day:x|l1|0.8", kind="threshold",
                             scope=f"user:{ALICE}", window="day:x", limit_id="l1",
                             threshold=0.8, ts=now, session_id=ids["alice"][0],
                             data={"message": f"user:{ALICE} spent $1"})
    BudgetStore(store).claim(f"threshold|bot:support/user:{ALICE}|month:x|l2|1.0",
                             kind="threshold", scope=f"bot:support/user:{ALICE}",
                             window="month:x", limit_id="l2", threshold=1.0, ts=now,
                             session_id=None, data={"message": f"user {ALICE} on bot support"})
    store.quarantine(Record("message", ids["alice"][0], now, "turn", {"input": MARK}), "test")
    store.quarantine(Record("message", "no-such-session", now, "turn",
                            {"input": MARK, "user_id": ALICE}), "test")
    return ids


def totals(store: Store, now: float) -> dict[str, object]:
    listed, _ = store.list_sessions(limit=100)
    return {"sessions": len(listed),
            "cost": round(sum(s["cost_usd"] for s in listed), 9),
            "tokens": sum(s["input_tokens"] + s["output_tokens"] for s in listed),
            "by_bot": store.costs(by="bot", period="month", now=now),
            "by_model": store.costs(by="model", period="month", now=now),
            "user_total": round(sum(r["cost_usd"] for r in
                                    store.costs(by="user", period="month", now=now)), 9)}


def test_after_forget_no_row_holds_the_users_text_or_id_and_totals_stay(
        store: Store) -> None:
    now = time.time()
    ids = fill(store, now)
    assert scan_tables(store, MARK) and scan_tables(store, ALICE)
    before = totals(store, now)

    report = forget(store, ALICE, actor="dpo@example")

    assert report.sessions == 4  # three of hers, and Bob's session she spoke in
    assert sorted(report.session_ids) == sorted([*ids["alice"], ids["bob"][1]])
    assert report.texts == 1 and report.quarantined == 2 and report.alerts == 2
    assert scan_tables(store, MARK) == []
    assert scan_tables(store, ALICE) == []
    assert scan_tables(store, "MARKER-BOB") != []  # Bob's own session is untouched
    assert "MARKER-BOB" in json.dumps(store.timeline(ids["bob"][0]))
    after = totals(store, now)
    assert after == before
    erased = store.get_session(ids["alice"][0])
    assert erased is not None and erased["metadata"]["erased"] is True
    assert erased["user_id"] == report.pseudonym and erased["cost_usd"] == pytest.approx(0.25)
    timeline = store.timeline(ids["alice"][0])
    # A custom event's data is the user's own mapping, shown under "data".
    assert all(event.get("erased") or event["data"]["erased"] for event in timeline)
    call = next(e for e in timeline if e["kind"] == "llm_call")
    assert (call["input_tokens"], call["cost_usd"], call["completion"]) == (1000, 0.25, None)
    message = next(e for e in timeline if e["kind"] == "message")
    assert message["user_id"] == report.pseudonym and message["input_chars"] == 30


def test_the_sqlite_file_no_longer_holds_the_text(tmp_path: Path) -> None:
    path = tmp_path / "scan.db"
    store = Store.open(f"sqlite:///{path}")
    fill(store, time.time())
    report = forget(store, ALICE)
    assert report.checkpointed
    raw = b"".join(Path(f"{path}{suffix}").read_bytes() for suffix in ("", "-wal")
                   if Path(f"{path}{suffix}").exists())
    assert MARK.encode() not in raw
    store.close()


def test_the_audit_record_holds_no_personal_data(store: Store) -> None:
    fill(store, time.time())
    report = forget(store, ALICE, actor="dpo@example")
    [entry] = audit_log(store)
    assert entry["id"] == report.audit_id and entry["actor"] == "dpo@example"
    assert entry["counts"] == report.counts()
    text = json.dumps(entry, default=str)
    assert ALICE not in text and MARK not in text and f"{ALICE}-name" not in text


def test_a_dry_run_changes_nothing_and_says_the_same(store: Store) -> None:
    fill(store, time.time())
    before = snapshot(store)
    dry = forget(store, ALICE, dry_run=True)
    assert snapshot(store) == before
    assert dry.audit_id is None and dry.sessions == 4 and dry.events == 4 * 9
    real = forget(store, ALICE)
    assert real.counts() == dry.counts()


def test_the_platform_option_keeps_the_other_platforms(store: Store) -> None:
    ids = fill(store, time.time())
    report = forget(store, ALICE, platform="slack")
    assert report.session_ids == [ids["alice"][2]]
    kept = store.get_session(ids["alice"][0])
    assert kept is not None and kept["user_id"] == ALICE
    assert MARK in json.dumps(store.timeline(ids["alice"][0]))
    assert MARK not in json.dumps(store.timeline(ids["alice"][2]))


def test_exporters_that_already_sent_the_data_are_named(store: Store) -> None:
    outbox = Outbox(store, "agentops")
    cursor = outbox.claim()
    assert cursor is not None and cursor[1] == 0  # (PostgreSQL: the transaction horizon, 0)
    ids = fill(store, time.time())
    sent = outbox.window(cursor, 9)  # AgentOps delivered Alice's first session only
    assert outbox.advance(sent[-1].position, events_delivered=9, spans_delivered=9)
    report = forget(store, ALICE)
    assert report.exporters == {"agentops": {"events": 9, "sessions": [ids["alice"][0]]}}
    assert audit_log(store)[0]["exporters"] == {"agentops": {"events": 9, "sessions": 1}}


def test_a_long_text_someone_else_also_sent_stays_theirs(store: Store) -> None:
    now = time.time()
    shared = "the same pasted document " + "z" * LONG
    for user in (ALICE, "U0BOB"):
        sid, records = session_records(user, now, "M")
        store.write_batch([records[0], Record("message", sid, now + 1, "turn", {
            "input": shared, "output": "ok", "user_id": user, "input_chars": len(shared),
            "output_chars": 2}, 1.0, True)])
    report = forget(store, ALICE)
    assert report.texts == 0
    bob = store.list_sessions(user="U0BOB")[0][0]
    assert shared in json.dumps(store.timeline(bob["id"]))


def test_forgetting_again_finds_nothing_and_an_empty_id_is_refused(store: Store) -> None:
    fill(store, time.time())
    forget(store, ALICE)
    again = forget(store, ALICE)
    assert not any(again.counts().values()) and again.audit_id is None
    with pytest.raises(StoreError):
        forget(store, "  ")
    with store.reading() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(sessions)
                            .where(sessions.c.user_id == ALICE)).scalar() == 0


def test_the_forget_command(store_url: str) -> None:
    store = Store.open(store_url)
    fill(store, time.time())
    store.close()
    env = clean_env(OPENCELL_DATABASE_URL=store_url)
    dry = opencell("forget", "--user", ALICE, "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "would erase: 4 session(s), 36 event(s)" in dry.stdout
    done = opencell("forget", "--user", ALICE, "--json", env=env)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["sessions"] == 4 and document["audit_id"] == 1
    again = opencell("forget", "--user", ALICE, env=env)
    assert "nothing stored for that user" in again.stdout


def test_the_search_index_ratings_and_reply_map_forget_the_user_too(store: Store) -> None:
    now = time.time()
    sid, records = session_records(ALICE, now, "zebrafish")
    store.write_batch(records)
    found = store.session_page(q="zebrafish")["sessions"]
    assert [s["id"] for s in found] == [sid]  # the word she said is searchable
    set_feedback(store, session_id=sid, bot="support", turn="m1", user_id=ALICE,
                 source="command", score=-1, comment="zebrafish were late")
    remember_replies(store, [{"bot": "support", "platform": "discord", "channel": "c1",
                              "message_id": "r1", "thread": "", "user_id": ALICE,
                              "session_id": sid, "turn": "m1", "ts": now}])

    report = forget(store, ALICE)

    assert store.session_page(q="zebrafish")["sessions"] == []
    assert [s["id"] for s in store.session_page(q=sid[-12:])["sessions"]] == [sid]
    assert scan_tables(store, "zebrafish") == [] and scan_tables(store, ALICE) == []
    (rating,) = session_feedback(store, sid)
    assert (rating["user_id"], rating["comment"], rating["value"]) == (
        report.pseudonym, None, "bad")
