"""The store: round trips, running totals, keyset pagination, filters, costs, orphans, schema."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from opencell.errors import OpenCellError, StoreError
from opencell.records import Record, new_session_id
from opencell.store import migrations, tables
from opencell.store.dialect import dialect_for
from opencell.store.store import Store, owner_is_alive, process_owner

T0 = datetime(2025, 3, 5, 12, 0, tzinfo=UTC).timestamp()  # a Wednesday


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """The store under test, on SQLite and on PostgreSQL."""
    opened = Store.open(store_url)
    yield opened
    opened.close()


def start(sid: str, ts: float, *, bot: str = "support", user: str = "u1",
          platform: str = "console", tags: tuple[str, ...] = ("prod",)) -> Record:
    return Record("session_start", sid, ts, bot, {
        "bot": bot, "bot_type": "conversational", "platform": platform, "workspace": "w",
        "channel": "c", "thread": None, "user_id": user, "user_name": user.upper(),
        "tags": list(tags), "key": f"{bot}/{platform}/{user}"})


def llm(sid: str, ts: float, *, cost: float | None = 0.0165, model: str = "sonnet",
        provider: str = "claude", tokens: tuple[int, int, int, int] = (1500, 800, 0, 0)) -> Record:
    return Record("llm_call", sid, ts, f"{provider}:{model}", {
        "provider": provider, "model": model, "response_model": model,
        "input_tokens": tokens[0], "output_tokens": tokens[1], "cache_read_tokens": tokens[2],
        "cache_write_tokens": tokens[3], "cost_usd": cost, "price_source": "genai-prices",
        "stop_reason": "end_turn", "request_id": "req_1"}, 420.0, True)


def message(sid: str, ts: float, ok: bool = True) -> Record:
    return Record("message", sid, ts, "turn", {"input": "hi", "output": "hello", "user_id": "u1",
                                               "input_chars": 2, "output_chars": 5}, 30.0, ok)


def end(sid: str, ts: float, status: str | None = None, reason: str = "explicit") -> Record:
    data: dict[str, Any] = {"reason": reason, "metadata": {"note": "bye"}}
    if status:
        data["status"] = status
    return Record("session_end", sid, ts, reason, data, None, status == "success")


# ----------------------------------------------------------------- write / read round trip

def test_every_kind_round_trips_with_totals_on_the_session(store: Store) -> None:
    sid = new_session_id(T0)
    store.write_batch([
        start(sid, T0),
        message(sid, T0 + 1),
        llm(sid, T0 + 1.1),
        llm(sid, T0 + 1.2, cost=None, model="claude-imaginary-9", tokens=(10, 5, 0, 0)),
        llm(sid, T0 + 1.3, cost=0.002, tokens=(100, 50, 1000, 200)),
        Record("tool_call", sid, T0 + 1.4, "http_get", {
            "tool": "http_get", "call_id": "t1", "args": {"url": "https://x"}, "result": None,
            "result_chars": 0, "error": "boom"}, 12.0, False),
        Record("error", sid, T0 + 1.5, "ValueError", {
            "type": "ValueError", "message": "boom", "stack": "Traceback…",
            "context": {"tool": "http_get"}}, None, False),
    ])
    store.write_batch([
        Record("custom", sid, T0 + 2, "roundtable_vote", {"name": "mine", "votes": 3}),
        Record("alert", sid, T0 + 2.5, "budget", {"scope": "user", "level": 0.8}),
        message(sid, T0 + 3, ok=False),
        end(sid, T0 + 4),
    ])
    session = store.get_session(sid)
    assert session is not None
    assert session["bot"] == "support" and session["user_name"] == "U1"
    assert (session["messages"], session["llm_calls"], session["tool_calls"],
            session["errors"]) == (2, 3, 1, 1)
    assert (session["input_tokens"], session["output_tokens"]) == (1610, 855)
    assert (session["cache_read_tokens"], session["cache_write_tokens"]) == (1000, 200)
    assert session["cost_usd"] == pytest.approx(0.0185)
    assert session["unpriced_calls"] == 1
    # No status given at the end: the last turn failed, so the session did.
    assert (session["status"], session["end_reason"]) == ("failed", "explicit")
    assert session["duration_ms"] == pytest.approx(4000.0)
    assert session["started_at"] == "2025-03-05T12:00:00.000Z"
    assert session["ended_at"] == "2025-03-05T12:00:04.000Z"
    assert session["last_activity"] == "2025-03-05T12:00:03.000Z"
    assert session["tags"] == ["prod"] and session["metadata"] == {"note": "bye"}

    timeline = store.timeline(sid)
    assert [e["kind"] for e in timeline] == [
        "session_start", "message", "llm_call", "llm_call", "llm_call", "tool_call", "error",
        "custom", "alert", "message", "session_end"]
    assert [e["id"] for e in timeline] == sorted(e["id"] for e in timeline)
    first_llm = timeline[2]
    assert first_llm | {"id": 0} == {
        "id": 0, "ts": "2025-03-05T12:00:01.100Z", "kind": "llm_call", "name": "claude:sonnet",
        "duration_ms": 420.0, "success": True, "provider": "claude", "model": "sonnet",
        "response_model": "sonnet", "input_tokens": 1500, "output_tokens": 800,
        "cache_read_tokens": 0, "cache_write_tokens": 0, "cost_usd": 0.0165,
        "price_source": "genai-prices", "stop_reason": "end_turn", "request_id": "req_1"}
    assert timeline[5]["success"] is False and timeline[5]["args"] == {"url": "https://x"}
    assert timeline[6]["stack"] == "Traceback…" and timeline[6]["context"] == {"tool": "http_get"}
    # A custom event's own keys stay under "data": "name" cannot shadow the event's name.
    assert timeline[7]["name"] == "roundtable_vote"
    assert timeline[7]["data"] == {"name": "mine", "votes": 3}
    assert timeline[10]["reason"] == "explicit" and timeline[10]["metadata"] == {"note": "bye"}


def test_end_status_given_wins_and_a_second_end_changes_nothing(store: Store) -> None:
    sid = new_session_id(T0)
    store.write_batch([start(sid, T0), message(sid, T0 + 1, ok=False), end(sid, T0 + 2, "success")])
    store.write_batch([end(sid, T0 + 9, "failed", reason="shutdown")])
    session = store.get_session(sid)
    assert session is not None
    assert (session["status"], session["end_reason"], session["duration_ms"]) == (
        "success", "explicit", 2000.0)
    assert [e["kind"] for e in store.timeline(sid)][-2:] == ["session_end", "session_end"]


def test_failed_llm_call_without_usage_is_not_unpriced(store: Store) -> None:
    sid = new_session_id(T0)
    store.write_batch([start(sid, T0), Record("llm_call", sid, T0 + 1, "claude:x", {
        "provider": "claude", "model": "x", "error": "LLMTimeoutError: slow"}, 30000.0, False)])
    session = store.get_session(sid)
    assert session is not None
    assert (session["llm_calls"], session["unpriced_calls"], session["cost_usd"]) == (1, 0, 0.0)


def test_records_without_a_session_start_get_a_placeholder(store: Store) -> None:
    orphan = new_session_id(T0)
    store.write_batch([message(orphan, T0 + 5), llm(orphan, T0 + 6)])
    placeholder = store.get_session(orphan)
    assert placeholder is not None
    assert placeholder["metadata"] == {"placeholder": True}
    assert (placeholder["messages"], placeholder["llm_calls"]) == (1, 1)
    assert store.stats()["placeholder_sessions"] == 1
    # A late session_start fills the placeholder in, keeping its totals.
    store.write_batch([start(orphan, T0, bot="late")])
    filled = store.get_session(orphan)
    assert filled is not None
    assert (filled["bot"], filled["messages"], filled["started_at"], filled["metadata"]) == (
        "late", 1, "2025-03-05T12:00:00.000Z", {})
    assert [row["key"] for row in store.costs("bot", "day", now=T0)] == [None]


def test_a_malformed_record_is_rejected_alone(store: Store) -> None:
    sid = new_session_id(T0)
    loop: dict[str, Any] = {}
    loop["self"] = loop
    store.write_batch([
        start(sid, T0),
        Record("message", sid, "not a time", "turn", {}),  # type: ignore[arg-type]
        "not even a record",  # type: ignore[list-item]
        Record("custom", sid, T0 + 1, "odd", {"when": datetime(2025, 1, 1), "loop": loop}),
        Record("custom", sid, T0 + 2, "scalar", 42),  # type: ignore[arg-type]
    ])
    kinds = [(e["kind"], e["name"]) for e in store.timeline(sid)]
    assert kinds == [("session_start", "support"), ("custom", "odd"), ("custom", "scalar")]
    assert "unserializable" in store.timeline(sid)[1]["data"]
    assert store.timeline(sid)[2]["data"] == {"data": 42}
    assert store.stats()["rejected_records"] == 2


# ----------------------------------------------------------------- listing

def _many_sessions(store: Store, n: int = 250) -> dict[str, dict[str, float]]:
    """n sessions with repeated start times, costs and durations (ties), some still open."""
    expected: dict[str, dict[str, float]] = {}
    batch: list[Record] = []
    for i in range(n):
        started = T0 + (i // 3)            # three sessions share each start time
        sid = new_session_id(started)
        cost = float(i % 7) / 100           # many equal costs
        batch += [start(sid, started, bot=f"bot{i % 3}", user=f"user{i % 5}",
                        platform="slack" if i % 2 else "discord",
                        tags=("vip",) if i % 10 == 0 else ("prod",)),
                  llm(sid, started + 1, cost=cost)]
        duration = -1.0
        if i % 4:                           # every fourth session stays open
            duration = float(i % 6) * 1000
            batch.append(end(sid, started + i % 6, "success"))
        expected[sid] = {"started_at": started, "cost": cost, "duration": duration}
    store.write_batch(batch)
    return expected


@pytest.mark.parametrize("sort", ["started_at", "cost", "duration"])
@pytest.mark.parametrize("descending", [True, False])
def test_keyset_pages_have_no_duplicates_no_gaps_and_no_offset(
        store: Store, sort: str, descending: bool) -> None:
    expected = _many_sessions(store)
    statements: list[str] = []

    def spy(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    sa.event.listen(store.engine, "before_cursor_execute", spy)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page, cursor = store.list_sessions(sort=sort, descending=descending,  # type: ignore[arg-type]
                                           limit=17, cursor=cursor)
        seen += [row["id"] for row in page]
        pages += 1
        if cursor is None:
            break
    sa.event.remove(store.engine, "before_cursor_execute", spy)
    assert pages == 15 and len(seen) == len(set(seen)) == 250
    order = sorted(expected, key=lambda sid: (expected[sid][sort], sid), reverse=descending)
    assert seen == order
    listing = [s for s in statements if "FROM sessions" in s]
    assert listing and not any("OFFSET" in s.upper() for s in listing)


def test_filters(store: Store) -> None:
    _many_sessions(store, 60)

    def ids(**filters: Any) -> list[dict[str, Any]]:
        rows, cursor = store.list_sessions(limit=1000, **filters)
        assert cursor is None
        return rows

    assert {r["bot"] for r in ids(bot="bot1")} == {"bot1"} and len(ids(bot="bot1")) == 20
    assert len(ids(user="user2")) == 12 and len(ids(user="USER2")) == 12  # id or name
    assert {r["platform"] for r in ids(platform="slack")} == {"slack"}
    assert len(ids(status="open")) == 15 and len(ids(status="success")) == 45
    assert len(ids(tag="vip")) == 6 and all("vip" in r["tags"] for r in ids(tag="vip"))
    assert len(ids(tag="vi")) == 0
    assert len(ids(since=T0 + 10, until=T0 + 12)) == 6
    assert len(ids(bot="bot0", status="open", platform="discord")) == 5
    some = ids()[7]["id"]
    assert [r["id"] for r in ids(q=some[:30].upper())] == [some]
    assert len(ids(q="user3")) == 12
    page, cursor = store.list_sessions(bot="bot2", limit=8)
    rest, end_cursor = store.list_sessions(bot="bot2", limit=8, cursor=cursor)
    assert len(page) == 8 and len(rest) == 8 and end_cursor is not None
    assert not {r["id"] for r in page} & {r["id"] for r in rest}
    assert len(store.open_sessions()) == 15
    # Tags JSON escapes (quotes, slashes, accents) are matched exactly too.
    odd = ['a "quoted" tag', "café", "ops/eu", "<b>"]
    sid = new_session_id(T0 + 500)
    store.write_batch([start(sid, T0 + 500, tags=tuple(odd))])
    assert all([r["id"] for r in ids(tag=tag)] == [sid] for tag in odd)
    assert ids(tag="cafe") == [] and ids(tag="quoted") == []


def test_bad_listing_arguments_are_store_errors(store: Store) -> None:
    _many_sessions(store, 10)
    _, cursor = store.list_sessions(limit=3)
    assert cursor is not None
    with pytest.raises(StoreError, match="sorted by started_at"):
        store.list_sessions(sort="cost", limit=3, cursor=cursor)
    with pytest.raises(StoreError, match="cursor"):
        store.list_sessions(cursor="%%%garbage")
    with pytest.raises(StoreError, match="cannot sort"):
        store.list_sessions(sort="size")  # type: ignore[arg-type]
    assert isinstance(StoreError("x"), OpenCellError)


def test_get_session_by_prefix(store: Store) -> None:
    first, second = new_session_id(T0), new_session_id(T0)
    store.write_batch([start(first, T0), start(second, T0)])
    common = os.path.commonprefix([first, second])
    assert store.get_session(first[:len(common) + 1])["id"] == first  # type: ignore[index]
    with pytest.raises(StoreError, match="several sessions"):
        store.get_session(common)
    assert store.get_session("ffffffff") is None and store.get_session("  ") is None
    assert store.timeline("nope") == []


# ----------------------------------------------------------------- costs

def test_costs_by_dimension_and_period(store: Store) -> None:
    def day(text: str) -> float:
        return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()

    calls = [  # (when, bot, user, platform, provider, model, cost)
        ("2025-03-05T00:00:00", "a", "u1", "slack", "claude", "sonnet", 1.0),      # today
        ("2025-03-05T23:59:59", "b", "u2", "discord", "openai", "gpt", 2.0),       # today
        ("2025-03-03T00:00:00", "a", "u2", "slack", "claude", "sonnet", 4.0),      # Monday
        ("2025-03-09T23:59:59", "a", "u1", "slack", "claude", "opus", 8.0),        # Sunday
        ("2025-03-02T23:59:59", "b", "u1", "slack", "claude", "sonnet", 16.0),     # last week
        ("2025-03-31T12:00:00", "b", "u2", "slack", "claude", "sonnet", 32.0),     # this month
        ("2025-02-28T23:59:59", "a", "u1", "slack", "claude", "sonnet", 64.0),     # last month
        ("2025-03-05T10:00:00", "a", "u1", "slack", "claude", "imaginary", None),  # unpriced
    ]
    batch: list[Record] = []
    for when, bot, user, platform, provider, model, cost in calls:
        sid = new_session_id(day(when))
        batch += [start(sid, day(when), bot=bot, user=user, platform=platform),
                  llm(sid, day(when), cost=cost, provider=provider, model=model,
                      tokens=(10, 1, 2, 3))]
    store.write_batch(batch)
    now = T0

    def totals(by: str, period: str) -> dict[str | None, float]:
        return {r["key"]: r["cost_usd"] for r in store.costs(by, period, now=now)}  # type: ignore[arg-type]

    assert totals("bot", "day") == {"b": 2.0, "a": 1.0}
    assert totals("bot", "week") == {"a": 13.0, "b": 2.0}
    assert totals("bot", "month") == {"b": 50.0, "a": 13.0}
    assert totals("user", "month") == {"u2": 38.0, "u1": 25.0}
    assert totals("platform", "week") == {"slack": 13.0, "discord": 2.0}
    assert totals("provider", "day") == {"openai": 2.0, "claude": 1.0}
    assert totals("model", "month") == {"sonnet": 53.0, "opus": 8.0, "gpt": 2.0, "imaginary": 0.0}
    rows = store.costs("model", "day", now=now)
    assert [r["key"] for r in rows] == ["gpt", "sonnet", "imaginary"]  # most expensive first
    assert rows[2] == {"key": "imaginary", "calls": 1, "input_tokens": 10, "output_tokens": 1,
                       "cache_read_tokens": 2, "cache_write_tokens": 3, "cost_usd": 0.0,
                       "unpriced_calls": 1, "estimated_calls": 0}
    with pytest.raises(StoreError):
        store.costs("team")  # type: ignore[arg-type]
    with pytest.raises(StoreError):
        store.costs("bot", "year")  # type: ignore[arg-type]


# ----------------------------------------------------------------- crash recovery

def test_close_orphans_closes_sessions_of_dead_owners_only(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    child = subprocess.Popen(["true"])
    child.wait()
    dead_owner = f"{process_owner().rpartition(':')[0]}:{child.pid}"
    dead_ok, dead_failed, alive = (new_session_id(T0) for _ in range(3))
    monkeypatch.setattr(store, "owner", lambda: dead_owner)
    store.write_batch([start(dead_ok, T0), message(dead_ok, T0 + 5),
                       start(dead_failed, T0), message(dead_failed, T0 + 7, ok=False)])
    monkeypatch.undo()
    store.write_batch([start(alive, T0), message(alive, T0 + 1)])

    closed = store.close_orphans(owner_is_alive)
    assert sorted(closed) == sorted([dead_ok, dead_failed])
    ok, failed, live = (store.get_session(s) for s in (dead_ok, dead_failed, alive))
    assert ok and failed and live
    assert (ok["status"], ok["end_reason"], ok["ended_at"], ok["duration_ms"]) == (
        "success", "interrupted", "2025-03-05T12:00:05.000Z", 5000.0)
    assert (failed["status"], failed["end_reason"]) == ("failed", "interrupted")
    assert live["status"] == "open"
    last = store.timeline(dead_failed)[-1]
    assert (last["kind"], last["reason"], last["status"]) == ("session_end", "interrupted",
                                                              "failed")
    assert store.close_orphans(owner_is_alive) == []


def test_owner_is_alive() -> None:
    child = subprocess.Popen(["true"])
    child.wait()
    host = process_owner().rpartition(":")[0]
    assert owner_is_alive(process_owner())
    assert not owner_is_alive(f"{host}:{child.pid}")
    assert owner_is_alive("some-other-host:1")
    assert owner_is_alive(f"{host}:1")  # pid 1 exists (ours to probe or not: alive either way)
    assert not owner_is_alive("") and not owner_is_alive("host:abc")


def test_an_is_alive_that_raises_counts_as_alive(store: Store) -> None:
    sid = new_session_id(T0)
    store.write_batch([start(sid, T0)])

    def broken(owner: str) -> bool:
        raise RuntimeError("cannot tell")

    assert store.close_orphans(broken) == []


# ----------------------------------------------------------------- schema and files

def test_a_fresh_database_matches_the_current_tables(store: Store) -> None:
    inspector = sa.inspect(store.engine)
    for table in tables.METADATA.tables.values():
        assert {c["name"] for c in inspector.get_columns(table.name)} == set(table.c.keys())
    assert store.stats()["schema_version"] == migrations.LATEST


def test_a_version_1_file_is_upgraded_when_opened(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    dialect, url = dialect_for(f"sqlite:///{path}")
    engine = dialect.create_engine(url)
    with engine.begin() as conn:
        assert migrations.upgrade(conn, dialect, target=1) == (0, 1)
    engine.dispose()
    with sqlite3.connect(path) as raw:
        assert "cache_read_tokens" not in {r[1] for r in raw.execute("PRAGMA table_info(sessions)")}
        raw.execute("INSERT INTO sessions (id, bot, started_at, last_activity, llm_calls, cost_usd)"
                    " VALUES ('old-session', 'legacy', ?, ?, 3, 0.5)", (T0, T0))
    raw.close()

    store = Store.open(f"sqlite:///{path}")
    try:
        old = store.get_session("old-session")
        assert old is not None
        assert (old["bot"], old["llm_calls"], old["cache_read_tokens"]) == ("legacy", 3, 0)
        store.write_batch([llm("old-session", T0 + 1, tokens=(1, 1, 7, 9))])
        upgraded = store.get_session("old-session")
        assert upgraded is not None and upgraded["cache_read_tokens"] == 7
        assert store.stats()["schema_version"] == migrations.LATEST
    finally:
        store.close()


def test_a_newer_database_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/new.db"
    Store.open(url).close()
    with sqlite3.connect(tmp_path / "new.db") as raw:
        raw.execute("UPDATE opencell_schema SET version = 99")
    raw.close()
    with pytest.raises(StoreError, match="version 99, newer"):
        Store.open(url)


def test_unusable_urls_and_foreign_databases_are_store_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="unsupported database"):
        Store.open("mysql://localhost/db")
    with pytest.raises(StoreError, match="URL"):
        Store.open("not a url")
    with sqlite3.connect(tmp_path / "foreign.db") as raw:
        raw.execute("CREATE TABLE sessions (x)")
    raw.close()
    with pytest.raises(StoreError, match="no schema version"):
        Store.open(f"sqlite:///{tmp_path}/foreign.db")


def test_the_parent_directory_is_created_and_wal_is_on(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path}/a/b/obs.db")
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    finally:
        store.close()


def test_a_deleted_database_file_is_recreated(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path}/obs.db")
    sid = new_session_id(T0)
    store.write_batch([start(sid, T0), message(sid, T0 + 1)])
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / f"obs.db{suffix}").unlink(missing_ok=True)
    store.write_batch([message(sid, T0 + 2)])
    assert (tmp_path / "obs.db").exists()
    session = store.get_session(sid)
    assert session is not None and session["metadata"] == {"placeholder": True}
    assert session["messages"] == 1
    stats = store.stats()
    assert (stats["files_recreated"], stats["events"]) == (1, 1)
    store.close()


def test_memory_database_works_on_one_thread() -> None:
    store = Store.open("sqlite:///:memory:")
    sid = new_session_id(T0)
    store.write_batch([start(sid, T0), message(sid, T0 + 1)])
    assert store.list_sessions()[0][0]["messages"] == 1
    store.close()


def test_write_batch_of_nothing_is_a_no_op(store: Store) -> None:
    store.write_batch([])
    assert store.stats()["events"] == 0 and time.time() > 0
