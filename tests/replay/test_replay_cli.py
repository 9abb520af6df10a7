"""The commands: `opencell replay` (one session, a batch that fails on a failed turn),
`opencell versions` (compare and diff) and `opencell costs --what-if`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from opencell.llm.pricing import PriceBook
from opencell.llm.what_if import parse_model, what_if_cost
from opencell.runtime import BotRuntime
from opencell.store.feedback import set_feedback
from opencell.store.store import Store
from tests.conftest import clean_env, opencell
from tests.fakes.llm_server import FakeLLMServer
from tests.replay.conftest import (
    HAIKU,
    agent_config,
    agent_yaml,
    flushed,
    observability,
    play,
    record,
)


@pytest.fixture
def server() -> FakeLLMServer:
    fake = FakeLLMServer(model=play)
    fake.start_in_thread()
    yield fake  # type: ignore[misc]
    fake.stop_thread()


def record_sessions(url: str, store_url: str, *conversations: tuple[str, ...],
                    prompt: str = "You help with orders.") -> list[str]:
    async def run() -> list[str]:
        obs = observability(store_url)
        runtime = BotRuntime(agent_config(url, prompt=prompt), observability=obs)
        ids = [await record(runtime, f"user{i}", *texts)
               for i, texts in enumerate(conversations)]
        await runtime.aclose()
        flushed(obs)
        obs.close()
        return ids

    return asyncio.run(run())


def test_batch_replay_exits_1_when_a_turn_fails(server: FakeLLMServer, tmp_path: Path,
                                                isolated_store: str) -> None:
    ids = record_sessions(server.url, isolated_store, ("my order?", "thanks"), ("boom",),
                          ("hello",))
    bots = tmp_path / "bots"
    bots.mkdir()
    (bots / "shop.yaml").write_text(agent_yaml(server.url))
    env = clean_env()

    batch = opencell("replay", "--bot", "shop", "--bots-dir", str(bots), "--model", HAIKU,
                     "--since", "1d", "--json", env=env)
    assert batch.returncode == 1, batch.stderr
    summary = json.loads(batch.stdout)
    assert (summary["sessions"], summary["turns"], summary["failed"]) == (3, 4, 1)
    failed = [t for r in summary["replays"] for t in r["turns"] if t["failed"]]
    assert [t["text"] for t in failed] == ["boom"]

    # The same batch on the recorded model passes: the gate opens.
    ok = opencell("replay", "--bot", "shop", "--bots-dir", str(bots), "--since", "1d",
                  env=env)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "3 session(s) replayed · 4 turn(s)" in ok.stdout

    one = opencell("replay", ids[0][-12:], "--bot", str(bots / "shop.yaml"), "--model",
                   HAIKU, env=env)
    assert one.returncode == 0, one.stderr
    assert "turn 1: my order?" in one.stdout and "reply changed" in one.stdout
    assert "replayed" in one.stdout and "totals" in one.stdout

    capped = opencell("replay", "--bot", "shop", "--bots-dir", str(bots), "--since", "1d",
                      "--max-usd", "0.000001", "--concurrency", "1", "--json", env=env)
    assert capped.returncode == 1
    assert json.loads(capped.stdout)["budget"].startswith("--max-usd reached")


def test_replay_bad_input_is_one_line(tmp_path: Path) -> None:
    assert opencell("replay").returncode == 2
    bad = opencell("replay", "abc", "--tools", "maybe")
    assert bad.returncode == 2 and "--tools" in bad.stderr
    missing = opencell("replay", "abc", "--bots-dir", str(tmp_path))
    assert missing.returncode == 1 and "no session 'abc'" in missing.stderr


def test_versions_compare_and_diff(server: FakeLLMServer, isolated_store: str) -> None:
    record_sessions(server.url, isolated_store, ("hello",), ("my order?",))
    record_sessions(server.url, isolated_store, ("hi",), prompt="You are terse.")
    out = opencell("versions", "shop", "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)["versions"]
    assert sorted((r["sessions"], r["turns"]) for r in rows) == [(1, 1), (2, 2)]
    assert all(r["origin"] == "live" and r["model"].startswith("claude:") for r in rows)
    assert all(r["thumbs_down_rate"] is None for r in rows)
    # 👍/👎 on the turns: the share of rated turns rated 👎, per version.
    store = Store.open(isolated_store)
    by_version: dict[str, list[str]] = {}
    for session in store.list_sessions(bot="shop")[0]:
        by_version.setdefault(session["bot_version"], []).append(session["id"])
    two = next(v for v, ids in by_version.items() if len(ids) == 2)
    for sid, score in zip(by_version[two], (-1, 1), strict=True):
        set_feedback(store, session_id=sid, bot="shop", turn="1", user_id="u", source="api",
                     score=score)
    store.close()
    rated = json.loads(opencell("versions", "shop", "--json").stdout)["versions"]
    assert {r["version"]: r["thumbs_down_rate"] for r in rated} == {
        two: 0.5, **{v: None for v in by_version if v != two}}
    a, b = (r["version"] for r in rows)
    diff = opencell("versions", "shop", "--diff", a[:8], b[:8])
    assert diff.returncode == 0, diff.stderr
    assert '+  "system_prompt": "You help with orders."' in diff.stdout
    assert '-  "system_prompt": "You are terse."' in diff.stdout

    import sqlite3

    db = sqlite3.connect(isolated_store.removeprefix("sqlite:///"))
    stored = db.execute("SELECT count(*) FROM texts WHERE digest IN (?, ?)", (a, b)).fetchone()
    per_session = db.execute("SELECT count(DISTINCT bot_version), count(*) FROM sessions"
                             ).fetchone()
    assert stored == (2,) and per_session == (2, 3)  # three sessions, each version's text once


def test_costs_what_if(server: FakeLLMServer, isolated_store: str) -> None:
    record_sessions(server.url, isolated_store, ("my order?",), ("hello",))
    out = opencell("costs", "--what-if", "openai:gpt-4o-mini", "--by", "model", "--json")
    assert out.returncode == 0, out.stderr
    document = json.loads(out.stdout)
    (row,) = document["rows"]
    expected = what_if_cost(row, PriceBook(), parse_model("openai:gpt-4o-mini"))
    assert row["what_if_usd"] == pytest.approx(expected, rel=1e-3) and expected > 0
    assert document["what_if_usd"] == pytest.approx(row["what_if_usd"])
    assert document["total_usd"] > expected  # Sonnet costs more than gpt-4o-mini
    table = opencell("costs", "--what-if", "gpt-4o-mini")
    assert "what-if openai:gpt-4o-mini" in table.stdout
    bad = opencell("costs", "--what-if", "mystery-model")
    assert bad.returncode == 2 and "provider:model" in bad.stderr
