"""PostgreSQL only: concurrent writers never deadlock on the rollups (F3), id-prefix search
uses an index whatever the database's collation (F4), and a rare search word is found by
index, not by testing every session. SCALE-OUT.md §A.2."""

from __future__ import annotations

import re
import threading
import uuid

import pytest
import sqlalchemy as sa

from opencell.records import Record, new_session_id
from opencell.store.migrations import LATEST, current_version
from opencell.store.store import Store
from tests.fakes.postgres import PostgresServer
from tests.observability.test_store import T0, llm, start

pytestmark = pytest.mark.postgres

MODELS = [f"model-{i:02d}" for i in range(24)]


def test_writers_with_opposite_key_orders_do_not_deadlock(postgres_url: str) -> None:
    """Two writers (the recorders of two processes) add the same rollup rows in opposite
    orders, batch after batch. Rows must be upserted in key order, or each holds a row the
    other wants: PostgreSQL then aborts one with "deadlock detected" after a 1 s stall."""
    stores = [Store.open(postgres_url) for _ in range(2)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def write(store: Store, models: list[str]) -> None:
        sid = new_session_id(T0)
        store.write_batch([start(sid, T0)])
        try:
            for _ in range(40):
                barrier.wait(30)
                store.write_batch([llm(sid, T0 + 1, model=m) for m in models])
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=write, args=(stores[0], MODELS)),
               threading.Thread(target=write, args=(stores[1], MODELS[::-1]))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not [e for e in errors if "deadlock" in str(e)], errors[:1]
    assert not errors, errors[:1]
    with stores[0].reading() as conn:
        calls = conn.execute(sa.text("SELECT sum(calls) FROM cost_rollups")).scalar_one()
    assert int(calls) == 2 * 40 * len(MODELS)
    for store in stores:
        store.close()


def test_id_prefix_search_uses_an_index_in_a_non_c_collation(
        postgres_server: PostgresServer) -> None:
    """Managed PostgreSQL is usually created with en_US.UTF-8; a plain index cannot serve
    ``LIKE 'prefix%'`` there, only a ``text_pattern_ops`` one can."""
    name = f"coll_{uuid.uuid4().hex[:10]}"
    postgres_server.execute(f"CREATE DATABASE {name} TEMPLATE template0 "
                            "LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'")
    url = postgres_server.base_url.rsplit("/", 1)[0] + f"/{name}"
    store = Store.open(url)
    try:
        ids = [new_session_id(T0 + i) for i in range(50)]
        store.write_batch([start(sid, T0) for sid in ids])
        rows, _ = store.list_sessions(q=ids[7][:30], limit=10)
        assert ids[7] in [row["id"] for row in rows]
        with store.engine.connect() as conn:
            conn.execute(sa.text("SET enable_seqscan = off"))
            plan = "\n".join(row[0] for row in conn.execute(sa.text(
                "EXPLAIN SELECT id FROM sessions WHERE id LIKE :p"), {"p": ids[7][:13] + "%"}))
        assert "Index Cond" in plan, plan  # a range on the index, not a scan with a filter
    finally:
        store.close()
        postgres_server.execute(f"DROP DATABASE {name} WITH (FORCE)")


def test_a_rare_word_is_found_by_index_not_by_testing_every_session(postgres_url: str) -> None:
    """The search box matches an id prefix, a user or the words said (an OR). With the word's
    few matches as a subquery, PostgreSQL tested every session against it (100,000 sessions:
    25 ms for the page and as much for its count); as an array, each arm is an index scan."""
    store = Store.open(postgres_url)
    sessions = [new_session_id(T0 + i) for i in range(4000)]
    batch = [start(sid, T0 + i) for i, sid in enumerate(sessions)]
    batch += [Record("message", sid, T0 + i + 1, "turn", {
        "input": "where is my zanzibar parcel" if i == 1234 else "where is my parcel",
        "output": "on its way"}, 30.0, True) for i, sid in enumerate(sessions)]
    sent: list[tuple[str, object]] = []

    def spy(conn: object, cursor: object, statement: str, parameters: object,
            *rest: object) -> None:
        if "FROM sessions" in statement:
            sent.append((statement, parameters))

    try:
        store.write_batch(batch)
        with store.engine.begin() as conn:
            conn.execute(sa.text("ANALYZE"))
        sa.event.listen(store.engine, "before_cursor_execute", spy)
        page = store.session_page(q="zanzibar")
        sa.event.remove(store.engine, "before_cursor_execute", spy)
        assert [row["id"] for row in page["sessions"]] == [sessions[1234]]
        assert page["total"] == 1 and len(sent) == 2  # the page and its count
        with store.engine.connect() as conn:
            driver = conn.connection.driver_connection
            for statement, parameters in sent:
                plan = "\n".join(row[0] for row in driver.execute(  # type: ignore[union-attr]
                    "EXPLAIN ANALYZE " + statement, parameters))
                removed = [int(n) for n in re.findall(r"Rows Removed by Filter: (\d+)", plan)]
                assert sum(removed) < 100, plan  # not 3,999 sessions tested and dropped
    finally:
        store.close()


def test_a_tag_filter_reads_the_tagged_sessions_not_every_session(postgres_url: str) -> None:
    """The tag filter's page and count each read all 100,000 sessions (27 ms apiece) before
    the GIN index on the tags; a rare tag now reads its few, a common one walks start order."""
    store = Store.open(postgres_url)
    sessions = [new_session_id(T0 + i) for i in range(4000)]
    store.write_batch([start(sid, T0 + i, tags=("support", "vip") if i % 200 == 7
                             else ("support",) if i % 2 else ("ops",))
                       for i, sid in enumerate(sessions)])
    sent: list[tuple[str, object]] = []

    def spy(conn: object, cursor: object, statement: str, parameters: object,
            *rest: object) -> None:
        if "FROM sessions" in statement:
            sent.append((statement, parameters))

    try:
        with store.engine.begin() as conn:
            conn.execute(sa.text("ANALYZE sessions"))
        sa.event.listen(store.engine, "before_cursor_execute", spy)
        rare = store.session_page(tag="vip", limit=50)
        common = store.session_page(tag="support", limit=50)
        sa.event.remove(store.engine, "before_cursor_execute", spy)
        assert [row["id"] for row in rare["sessions"]] == [
            sid for i, sid in enumerate(sessions) if i % 200 == 7][::-1]
        assert rare["total"] == 20 and common["total"] == 2000
        assert [row["id"] for row in common["sessions"]] == [
            sid for i, sid in enumerate(sessions) if i % 2 or i % 200 == 7][::-1][:50]
        with store.engine.connect() as conn:
            driver = conn.connection.driver_connection
            read = []
            for statement, parameters in sent:
                plan = "\n".join(row[0] for row in driver.execute(  # type: ignore[union-attr]
                    "EXPLAIN ANALYZE " + statement, parameters))
                read.append(sum(int(n) for n in re.findall(
                    r"Rows Removed by Filter: (\d+)", plan)))
        rare_page, rare_count, common_page, _ = read
        assert rare_page < 100 and rare_count < 100 and common_page < 100, read
    finally:
        store.close()


def test_a_store_opened_while_another_process_creates_the_schema(postgres_url: str) -> None:
    """Three workers start on a new database: one checks the schema version while another's
    migration commits. Seen in a stress run: "the database has OpenCell-like tables but no
    schema version", because the check read the version table and the sessions table in two
    queries and the other process committed between them. Here the other process commits
    right after the check's first catalog query."""
    engine = sa.create_engine(postgres_url)
    created: list[bool] = []

    @sa.event.listens_for(engine, "after_cursor_execute")
    def create_meanwhile(conn: object, cursor: object, statement: str, *_: object) -> None:
        if not created and "pg_catalog" in statement:
            created.append(True)
            Store.open(postgres_url).close()  # another process migrates and commits

    try:
        with engine.connect() as conn:
            version = current_version(conn)
        assert created, "the check ran no catalog query"
        assert version in (0, LATEST)  # empty when it looked, or complete: never "foreign"
        store = Store.open(postgres_url)  # and the process then opens it as usual
        store.close()
    finally:
        engine.dispose()
