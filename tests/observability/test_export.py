"""JSON Lines export on both stores: every field the timeline shows round-trips, selections,
redaction, long sessions streamed in order, and the ``export`` command."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from opencell.observability.redact import Redactor
from opencell.records import Record
from opencell.store.export import CHUNK, SCHEMA, Selection, count, export_jsonl
from opencell.store.store import Store
from opencell.store.tables import events, sessions
from tests.conftest import clean_env, opencell
from tests.observability._lifecycle_data import session_records


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = Store.open(store_url)
    yield opened
    opened.close()


def fill(store: Store, now: float) -> list[str]:
    ids = []
    for n, (user, bot) in enumerate((("alice", "support"), ("bob", "support"),
                                     ("alice", "sales"))):
        sid, records = session_records(user, now + n * 100, f"TEXT{n}", bot=bot)
        store.write_batch(records)
        ids.append(sid)
    return ids


def exported(store: Store, selection: Selection | None = None, **kwargs: Any
             ) -> list[dict[str, Any]]:
    out = io.StringIO()
    export_jsonl(store, out, selection or Selection(), **kwargs)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_every_field_the_timeline_shows_round_trips(store: Store) -> None:
    ids = fill(store, time.time())
    lines = exported(store)
    assert [line["session"]["id"] for line in lines] == ids  # oldest first
    for line in lines:
        assert line["schema"] == SCHEMA
        sid = line["session"]["id"]
        assert line["session"] == store.get_session(sid)
        assert line["timeline"] == store.timeline(sid)
    # The long (shared) text comes back whole, and custom data stays under "data".
    first = lines[0]["timeline"]
    assert any(isinstance(e.get("input"), str) and len(e["input"]) > 3000 for e in first)
    assert next(e for e in first if e["kind"] == "custom")["data"] == {
        "note": "TEXT0", "stars": 5}


def test_selections(store: Store) -> None:
    now = time.time()
    ids = fill(store, now)
    assert [x["session"]["id"] for x in exported(store, Selection(user="alice"))] == \
        [ids[0], ids[2]]
    assert [x["session"]["id"] for x in exported(store, Selection(bot="sales"))] == [ids[2]]
    assert [x["session"]["id"] for x in exported(store, Selection(session_id=ids[1]))] == \
        [ids[1]]
    assert [x["session"]["id"] for x in exported(store, Selection(since=now + 50))] == ids[1:]
    assert count(store, Selection(bot="support")) == 2


def test_redaction_is_applied(store: Store) -> None:
    now = time.time()
    sid, records = session_records("alice", now, "sk-live-SECRET123")
    store.write_batch(records)
    redactor = Redactor(["sk-live-SECRET123"])
    text = json.dumps(exported(store, redactor=redactor))
    assert "sk-live-SECRET123" not in text
    assert "[REDACTED" in text


def test_a_session_longer_than_a_fetch_streams_in_order(store: Store) -> None:
    now = time.time()
    sid, records = session_records("alice", now, "LONG")
    many = [Record("custom", sid, now + 10 + n / 1000, "tick", {"n": n})
            for n in range(CHUNK * 2 + 17)]
    store.write_batch(records + many)
    seen: list[tuple[int, int]] = []
    [line] = exported(store, progress=lambda s, e: seen.append((s, e)))
    ticks = [e["data"]["n"] for e in line["timeline"] if e["kind"] == "custom"
             and e["name"] == "tick"]
    assert ticks == list(range(CHUNK * 2 + 17))
    assert seen == [(1, len(records) + len(many))]


def test_the_export_command_writes_a_file(store_url: str, tmp_path: Path) -> None:
    store = Store.open(store_url)
    ids = fill(store, time.time())
    store.close()
    target = tmp_path / "out.jsonl"
    env = clean_env(OPENCELL_DATABASE_URL=store_url)
    result = opencell("export", "--user", "alice", "--since", "1d", "--output", str(target),
                      env=env)
    assert result.returncode == 0, result.stderr
    assert "exported 2 session(s), 18 event(s)" in result.stderr
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    assert [line["session"]["id"] for line in lines] == [ids[0], ids[2]]
    one = opencell("export", "--session", ids[1][-12:], env=env)
    assert one.returncode == 0, one.stderr
    assert json.loads(one.stdout)["session"]["id"] == ids[1]
    bad = opencell("export", "--format", "csv", env=env)
    assert bad.returncode == 2 and "jsonl" in bad.stderr


def test_a_session_whose_events_were_pruned_is_exported_with_an_empty_timeline(
        store: Store) -> None:
    ids = fill(store, time.time())
    with store.writing() as conn:
        seq = conn.execute(sa.select(sessions.c.seq).where(sessions.c.id == ids[1])).scalar()
        conn.execute(events.delete().where(events.c.session_seq == seq))
    lines = exported(store)
    assert [line["session"]["id"] for line in lines] == ids
    assert lines[1]["timeline"] == [] and len(lines[2]["timeline"]) == 9


def test_spliced_events_are_byte_for_byte_what_decoding_gives(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """The export writes most events without decoding them; each must be exactly what the
    decoded path (``event_dicts``, encoded) writes — odd names, nested keys that look like
    event fields, top-level ones that are, shared texts, times at a second's edge."""
    from opencell.store import _export_json
    from opencell.store._export_json import _decoded, event_texts

    decoded: list[int] = []

    def counting(conn: Any, row: Any, redactor: Any) -> str:
        decoded.append(row[1])
        return _decoded(conn, row, redactor)

    monkeypatch.setattr(_export_json, "_decoded", counting)

    now = 1_764_000_000.0
    sid, records = session_records("alice", now, "EDGE")
    odd = [
        Record("tool_call", sid, now + 10.9999996, 'say "hi"\\\n\x01é', {
            "name": "top-level clash", "nested": {"id": 1, "ts": [{"name": "n"}]}}, 3, None),
        Record("llm_call", sid, now + 11.0004999, "m", {
            "tools_offered": [{"name": "lookup"}], "completion_calls": [{"id": "c1"}],
            "cost_usd": 0.1, "big": 12345678901234567890, "ratio": 1 / 3}, None, False),
        Record("custom", sid, now + 12.5, "feedback", {"name": "kept under data", "n": 1}),
        Record("message", sid, now + 13.0005, "turn", {"input": "\u2028 tab\t ☃", "output": ""},
               0.1 + 0.2, True),
    ]
    store.write_batch(records + odd)
    with store.reading() as conn:
        rows = conn.execute(sa.select(events.c.session_seq, events.c.id, events.c.ts,
                                      events.c.kind, events.c.name, events.c.duration_ms,
                                      events.c.success, events.c.data)
                            .order_by(events.c.id)).all()
        fast = event_texts(conn, rows, None)
        slow = [_decoded(conn, row, None) for row in rows]
    assert len(rows) == len(records) + len(odd)
    assert fast == slow
    # Decoded: the message and the model call referring to the long shared text, the alert
    # (its data has a "kind"), the tool call with a top-level "name"; nothing else.
    assert len(decoded) == 4, decoded


def test_export_times_are_the_timeline_times() -> None:
    import random

    from opencell.store import _export_json
    from opencell.store.reads import iso

    rng = random.Random(7)
    edges = [0.0, 1.9999995, 1.0000005, 0.0005, 1_764_000_000.0005, 1_764_000_059.9999996,
             -0.5, -1.0000004, 4_102_444_799.999]
    stamps = edges + [rng.uniform(-1e9, 4e9) for _ in range(20_000)]
    assert [_export_json.iso(ts) for ts in stamps] == [iso(ts) for ts in stamps]
    assert len(_export_json._minutes) <= _export_json.MINUTES  # bounded: memory stays flat
