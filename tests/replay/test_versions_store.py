"""Bot versions in the store: migration 9 on an older file, the version text kept once, a
session that names its version by digest, and a replay linked to its source."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from opencell.observability.versions import digest
from opencell.records import Record
from opencell.store import migrations
from opencell.store.dialect import dialect_for
from opencell.store.store import Store
from opencell.store.versions import replays_of, version_text

T0 = 1_760_000_000.0
TEXT = '{\n  "bot": "shop",\n  "system_prompt": "You help."\n}'


def start(sid: str, ts: float, **extra: object) -> Record:
    return Record("session_start", sid, ts, "shop", {"bot": "shop", "platform": "console",
                                                     "user_id": "u", **extra})


def test_a_version_8_file_is_upgraded_and_versions_are_stored_once(tmp_path: Path) -> None:
    path = tmp_path / "v8.db"
    dialect, url = dialect_for(f"sqlite:///{path}")
    engine = dialect.create_engine(url)
    with engine.begin() as conn:
        assert migrations.upgrade(conn, dialect, target=8) == (0, 8)
    engine.dispose()
    with sqlite3.connect(path) as raw:
        raw.execute("INSERT INTO sessions (id, bot, started_at, last_activity) VALUES "
                    "('old', 'shop', ?, ?)", (T0, T0))
    raw.close()

    store = Store.open(f"sqlite:///{path}")
    try:
        old = store.get_session("old")
        assert old is not None and (old["bot_version"], old["replay_of"]) == (None, None)
        version = digest(TEXT)
        store.write_batch([start("s1", T0 + 1, bot_definition=TEXT),
                           start("s2", T0 + 2, bot_version=version),
                           start("r1", T0 + 3, bot_definition=TEXT, replay_of="s1",
                                 platform="replay")])
        rows = {s: store.get_session(s) for s in ("s1", "s2", "r1")}
        assert {r["bot_version"] for r in rows.values() if r} == {version}
        assert version_text(store, "shop", version[:10]) == (version, TEXT)
        assert [r["id"] for r in replays_of(store, "s1")] == ["r1"]
        with sqlite3.connect(path) as raw:
            assert raw.execute("SELECT count(*) FROM texts").fetchone() == (1,)
            # the session_start event keeps a reference, not a second copy of the text
            data = [d for (d,) in raw.execute("SELECT data FROM events")]
        raw.close()
        assert all(TEXT not in d for d in data) and sum(version in d for d in data) == 3
        assert store.stats()["schema_version"] == migrations.LATEST
    finally:
        store.close()


def test_a_bad_version_name_is_ignored(tmp_path: Path) -> None:
    store = Store.open(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        store.write_batch([start("s1", T0, bot_version="not-a-digest")])
        found = store.get_session("s1")
        assert found is not None and found["bot_version"] is None
    finally:
        store.close()
