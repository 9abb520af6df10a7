"""PostgreSQL: a write batch's statements after the events' COPY go pipelined (one wait for
the server, not one per statement). An error there comes from the driver itself, not through
SQLAlchemy: a connection lost mid-batch must still be an outage (the batch is retried and
lands), never blamed on a record (split and quarantined)."""

from __future__ import annotations

import time
from urllib.parse import quote, unquote

import sqlalchemy as sa

from opencell.observability.recorder import Recorder
from opencell.records import Record, new_session_id
from opencell.store.store import Store
from tests.fakes.waiting import WAIT, poll


def _start(sid: str) -> Record:
    return Record("session_start", sid, time.time(), "support", {
        "bot": "support", "platform": "slack", "user_id": "u1", "tags": []})


def _turn(sid: str, i: int) -> Record:
    return Record("message", sid, time.time(), "turn",
                  {"input": f"question {i}", "output": f"answer {i}"}, 120.0, True)


def _recording(store: Store) -> tuple[Recorder, str]:
    """A recorder writing often, and a session it has already stored."""
    recorder = Recorder(store, flush_interval=0.01)
    sid = new_session_id()
    recorder.record(_start(sid))
    assert recorder.flush(WAIT)
    return recorder, sid


def _waiting_writers(conn: sa.Connection) -> list[int]:
    return [int(pid) for pid in conn.execute(sa.text(
        "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
        "AND pid <> pg_backend_pid()")).scalars()]


def test_a_connection_lost_inside_the_pipelined_part_is_an_outage(postgres_url: str) -> None:
    store = Store.open(postgres_url)
    recorder, sid = _recording(store)
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as locker, admin.connect() as watcher:
            # The batch's COPY goes through; its last pipelined statement (the hourly
            # latency rollup) waits on this lock.
            locker.execute(sa.text("BEGIN"))
            locker.execute(sa.text("LOCK TABLE latency_hourly IN ACCESS EXCLUSIVE MODE"))
            recorder.record(_turn(sid, 0))
            recorder.record(_turn(sid, 1))
            assert poll(lambda: bool(_waiting_writers(watcher)))
            for pid in _waiting_writers(watcher):  # the writer's connection dies mid-batch
                watcher.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            assert poll(lambda: recorder.stats.failures >= 1)
            locker.execute(sa.text("ROLLBACK"))
        assert recorder.flush(WAIT) is True
        assert recorder.stats.quarantined == 0  # nothing blamed on the records
        assert [e["name"] for e in store.timeline(sid)] == ["support", "turn", "turn"]
        assert store.losses()["quarantined"] == 0
    finally:
        admin.dispose()
        recorder.close()
        store.close()


def test_a_statement_the_server_cancels_in_the_pipelined_part_is_an_outage(
        postgres_url: str) -> None:
    # A lock wait past lock_timeout: the server cancels the statement, the connection lives,
    # the rollback works, and the driver's own error (not SQLAlchemy's) reaches the recorder.
    base, _, options = postgres_url.partition("?options=")
    url = f"{base}?options={quote(unquote(options) + ' -clock_timeout=200')}"
    store = Store.open(url)
    recorder, sid = _recording(store)
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as locker:
            locker.execute(sa.text("BEGIN"))
            locker.execute(sa.text("LOCK TABLE latency_hourly IN ACCESS EXCLUSIVE MODE"))
            recorder.record(_turn(sid, 0))
            assert poll(lambda: recorder.stats.failures >= 2)
            assert recorder.stats.quarantined == 0
            locker.execute(sa.text("ROLLBACK"))
        assert recorder.flush(WAIT) is True
        assert recorder.stats.quarantined == 0
        assert [e["name"] for e in store.timeline(sid)] == ["support", "turn"]
    finally:
        admin.dispose()
        recorder.close()
        store.close()


def test_statements_sent_straight_to_the_driver_bind_what_sqlalchemy_would(
        postgres_url: str) -> None:
    """In the pipelined part a batch's statements go to the driver as compiled once
    (``store/_direct.py``): the values a statement binds itself ('open', 1000.0), a boolean
    its type converts, and one SQLAlchemy must expand (``IN``: it falls back) all land as
    SQLAlchemy's own ``execute`` would write them, columns left to their defaults too."""
    from opencell.store.dialect import PostgresDialect
    from opencell.store.tables import sessions

    store = Store.open(postgres_url)
    recorder, sid = _recording(store)
    recorder.close(WAIT)
    s = sessions.c
    failed = sessions.update().where(s.id == sa.bindparam("b_id"), s.status == "open").values(
        last_turn_failed=sa.bindparam("b_failed", type_=sa.Boolean),
        duration_ms=sa.bindparam("b_seconds", type_=sa.Float) * 1000.0)
    renamed = sessions.update().where(s.id.in_(sa.bindparam("b_ids", expanding=True))).values(
        user_name=sa.bindparam("b_name", type_=sa.String))
    probe = sa.Table("direct_probe", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("a", sa.Integer, server_default="7"),
                     sa.Column("b", sa.Float, default=lambda: 1.5))
    probe.create(store.engine)
    dialect = PostgresDialect()
    with store.writing() as conn, dialect.pipelined(conn) as run:
        run(failed, [{"b_id": sid, "b_failed": 1, "b_seconds": 2.5}])
        run(renamed, [{"b_ids": [sid, "nobody"], "b_name": "Ann"}])
        run(probe.insert(), [{"id": 1}])  # the database's and SQLAlchemy's defaults fill in
        run(probe.insert(), [{"id": 2, "a": 3}, {"id": 3, "a": 4}])
    with store.reading() as conn:
        row = conn.execute(sa.select(s.last_turn_failed, s.duration_ms, s.user_name)
                           .where(s.id == sid)).one()
        probed = [tuple(r) for r in conn.execute(sa.select(probe).order_by(probe.c.id))]
    store.close()
    assert tuple(row) == (True, 2500.0, "Ann")
    assert probed == [(1, 7, 1.5), (2, 3, 1.5), (3, 4, 1.5)]
