"""Retention on both stores: content expires before structure, old events go, costs and
budgets over the pruned period answer as before, exporters hold what they have not sent."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from opencell.budgets._store import BudgetStore
from opencell.calendar import utc_date
from opencell.dashboard import queries
from opencell.exporters.outbox import Outbox
from opencell.records import Record
from opencell.store.facts import facts
from opencell.store.retention import Pruner, RetentionPolicy, full_vacuum, prune
from opencell.store.store import Store
from opencell.store.tables import events, texts
from tests.conftest import clean_env, opencell
from tests.fakes.waiting import poll
from tests.observability._lifecycle_data import session_records

DAY = 86400.0
POLICY = RetentionPolicy(events_s=90 * DAY, content_s=30 * DAY, exporter_grace_s=30 * DAY,
                         batch_rows=7, duty=1.0)
"""Small batches, so every run takes several transactions."""


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = Store.open(store_url)
    yield opened
    opened.close()


def fill(store: Store, now: float, sessions: int = 4) -> list[str]:
    ids = []
    for n in range(sessions):
        sid, records = session_records(f"user{n % 2}", now + n * 10, f"MARK{n}",
                                       cost=0.25 + n)
        store.write_batch(records)
        ids.append(sid)
    return ids


def event_count(store: Store) -> int:
    with store.reading() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(events)).scalar() or 0)


def cost_views(store: Store, now: float) -> dict[str, Any]:
    """Every way costs for the month are read: store.costs (the CLI), the dashboard's costs
    page queries, and the budgets' spend over the month."""
    day = utc_date(now)
    first = datetime(day.year, day.month, 1, tzinfo=UTC)
    following = datetime(day.year + day.month // 12, day.month % 12 + 1, 1, tzinfo=UTC)
    out: dict[str, Any] = {}
    for by in ("bot", "user", "platform", "provider", "model"):
        out[f"costs:{by}"] = store.costs(by=by, period="month", now=now)  # type: ignore[arg-type]
    with store.reading() as conn:
        for by in ("bot", "user", "model"):
            out[f"page:{by}"] = queries.cost_breakdown(conn, by, "month", day)  # type: ignore[arg-type]
        out["page:daily"] = queries.daily_cost(conn, first.date(), day)
        out["analytics"] = queries.analytics(conn, first=first.date(), last=day, bot=None)
    spend = BudgetStore(store).spend(first.timestamp(), following.timestamp())
    out["budgets"] = sorted((r.bot, r.user, r.platform, round(r.cost_usd, 9), r.unpriced_calls)
                            for r in spend)
    return out


def test_events_past_the_window_go_and_costs_budgets_and_analytics_are_unchanged(
        store: Store, store_url: str) -> None:
    now = time.time()
    fill(store, now)
    before = cost_views(store, now)
    cli_before = opencell("costs", "--period", "month", "--by", "user", "--json",
                          env=clean_env(OPENCELL_DATABASE_URL=store_url))
    total = event_count(store)

    report = prune(store, POLICY, now=now + 100 * DAY)

    assert report.events_deleted == total - 1  # the newest event stays: ids are never reused
    assert event_count(store) == 1
    assert cost_views(store, now) == before
    cli_after = opencell("costs", "--period", "month", "--by", "user", "--json",
                         env=clean_env(OPENCELL_DATABASE_URL=store_url))
    assert cli_after.returncode == 0, cli_after.stderr
    assert json.loads(cli_after.stdout) == json.loads(cli_before.stdout)
    assert json.loads(cli_after.stdout)["total_usd"] == pytest.approx(0.25 + 1.25 + 2.25 + 3.25)
    listed, _ = store.list_sessions(limit=10)
    assert len(listed) == 4 and sum(s["cost_usd"] for s in listed) == pytest.approx(7.0)


def test_content_expires_before_the_structure(store: Store) -> None:
    now = time.time()
    ids = fill(store, now, sessions=2)
    report = prune(store, POLICY, now=now + 40 * DAY)

    assert report.events_deleted == 0 and report.content_expired > 0
    assert report.texts_deleted == 2  # each long message, stored once, used by nobody now
    with store.reading() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(texts)).scalar() == 0
    timeline = store.timeline(ids[0])
    by_kind: dict[str, dict[str, Any]] = {}
    for event in timeline:
        by_kind.setdefault(event["kind"], event)
    message = by_kind["message"]
    assert message["input"] is None and message["output"] is None
    assert message["input_chars"] == 30 and message["content_expired"] is True
    call = by_kind["llm_call"]
    assert call["completion"] is None and call["input"] is None and call["system"] is None
    assert call["completion_calls"] is None and call["tool_calls"] == ["lookup"]
    assert (call["input_tokens"], call["output_tokens"], call["cost_usd"]) == (1000, 200, 0.25)
    tool = by_kind["tool_call"]
    assert tool["args"] is None and tool["result"] is None and tool["result_chars"] == 20
    error = by_kind["error"]
    assert error["message"] is None and error["context"] is None and error["type"] == "ValueError"
    assert by_kind["custom"]["data"] == {"content_expired": True}
    assert by_kind["session_end"]["metadata"] is None
    assert by_kind["session_start"]["user_id"] == "user0"  # structure, not content
    assert "MARK0" not in json.dumps(timeline)
    # Idempotent: a second run finds nothing more to do.
    again = prune(store, POLICY, now=now + 40 * DAY)
    assert (again.content_expired, again.events_deleted) == (0, 0)


def test_an_undelivered_event_survives_pruning_until_it_is_delivered(store: Store) -> None:
    now = time.time()
    outbox = Outbox(store, "otlp")
    cursor = outbox.claim()  # enabled before the events: all of them are pending for it
    assert cursor is not None and cursor[1] == 0  # (PostgreSQL: the transaction horizon, 0)
    fill(store, now, sessions=2)
    total = event_count(store)

    # Content past its window is kept for the exporter (within the grace) …
    content_held = prune(store, POLICY, now=now + 40 * DAY)
    assert content_held.content_expired == 0 and content_held.held == {"otlp": 0}
    assert "MARK0" in json.dumps(outbox.window(cursor, 100)[1].data)
    # … and so are the events past theirs.
    held = prune(store, POLICY, now=now + 95 * DAY)
    assert held.events_deleted == 0 and held.held == {"otlp": 0}
    assert event_count(store) == total

    delivered = outbox.window(cursor, 5)  # the exporter sends five events
    assert outbox.advance(delivered[-1].position, events_delivered=5, spans_delivered=5)
    partly = prune(store, POLICY, now=now + 95 * DAY)
    assert partly.events_deleted == 5 and not partly.lost
    assert [e.id for e in outbox.window(delivered[-1].position, 1)] == [delivered[-1].id + 1]


def test_an_exporter_down_longer_than_window_plus_grace_stops_holding(store: Store) -> None:
    now = time.time()
    outbox = Outbox(store, "agentops")
    cursor = outbox.claim()  # enabled before the events: all of them are pending for it
    assert cursor is not None and cursor[1] == 0  # (PostgreSQL: the transaction horizon, 0)
    fill(store, now, sessions=2)
    total = event_count(store)

    report = prune(store, POLICY, now=now + 90 * DAY + 31 * DAY)

    assert report.events_deleted == total - 1
    assert report.lost == {"agentops": total - 1}
    # The exporter resumes at the next event still stored; nothing it reads is gone twice.
    remaining = outbox.window(cursor, 10)
    assert len(remaining) == 1
    assert facts(store)["state"]["lost:agentops"] == total - 1


def test_ids_are_not_reused_after_everything_expired(store: Store) -> None:
    now = time.time()
    fill(store, now, sessions=1)
    with store.reading() as conn:
        newest = conn.execute(sa.select(sa.func.max(events.c.id))).scalar()
    prune(store, POLICY, now=now + 200 * DAY)
    sid, records = session_records("later", now + 1, "LATER")
    store.write_batch(records)
    with store.reading() as conn:
        first_new = conn.execute(sa.select(sa.func.min(events.c.id))
                                 .where(events.c.id > newest)).scalar()
    assert first_new == newest + 1


def test_quarantined_records_past_the_window_go(store: Store) -> None:
    now = time.time()
    store.quarantine(Record("message", "s1", now, "turn", {"input": "MARK"}), "test")
    report = prune(store, POLICY, now=now + 100 * DAY)
    assert report.quarantine_deleted == 1 and store.losses()["quarantined"] == 0


def test_the_background_pruner_runs_on_its_own(store: Store) -> None:
    now = time.time()
    fill(store, now, sessions=2)
    pruner = Pruner(store, POLICY, interval_s=0.01, clock=lambda: now + 100 * DAY)
    pruner.start()
    try:
        assert poll(lambda: event_count(store) == 1), "the pruner never pruned"
    finally:
        pruner.stop()
    assert pruner.runs >= 1 and pruner.last is not None


def test_sqlite_hands_freed_pages_back(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'big.db'}")
    now = time.time()
    for n in range(40):
        store.write_batch(session_records(f"u{n}", now + n, f"M{n}" + "y" * 1500)[1])

    def pages() -> int:
        with store.reading() as conn:
            return int(conn.exec_driver_sql("PRAGMA page_count").scalar() or 0)

    full = pages()
    report = prune(store, POLICY, now=now + 100 * DAY)
    assert report.pages_vacuumed > 0
    assert facts(store)["free_pages"] == 0 and pages() < full * 0.6
    store.close()


def test_an_older_sqlite_file_is_converted_once(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    Store.open(f"sqlite:///{path}").close()
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA auto_vacuum = NONE")
    raw.execute("VACUUM")
    raw.close()
    store = Store.open(f"sqlite:///{path}")
    assert facts(store)["auto_vacuum"] == "none"  # opening alone cannot change it
    full_vacuum(store)
    assert facts(store)["auto_vacuum"] == "incremental"
    store.close()


def test_doctor_shows_size_oldest_event_and_retention(store_url: str, tmp_path: Path) -> None:
    store = Store.open(store_url)
    fill(store, time.time() - 3 * DAY, sessions=1)
    prune(store, POLICY)
    store.close()
    config = tmp_path / "opencell.yaml"
    config.write_text("observability:\n  retention: {events: 120d, content: 12h}\n")
    result = opencell("doctor", "--config", str(config),
                      env=clean_env(OPENCELL_DATABASE_URL=store_url))
    [line] = [line for line in result.stdout.splitlines() if line.startswith("✓ data:")]
    assert "MB" in line and "oldest event" in line and "(3 days)" in line
    assert "retention: events 120d, content 12h, exporter grace 7d" in line
    assert "last pruned" in line


def test_retention_settings_are_checked() -> None:
    from pydantic import ValidationError

    from opencell.config import RetentionConfig
    from opencell.store.retention import policy_from

    with pytest.raises(ValidationError, match="at least 32d"):
        RetentionConfig(events="7d")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="at least 1h"):
        RetentionConfig(content="10m")  # type: ignore[arg-type]
    forever = policy_from(RetentionConfig(events="never", content="never"))  # type: ignore[arg-type]
    assert forever.events_s is None and forever.content_after_s is None
    longer = policy_from(RetentionConfig(events="400d", content="500d"))  # type: ignore[arg-type]
    assert longer.content_after_s == 400 * DAY  # content never outlives its event
