"""Issue acceptance for observability: sessions, costs, manual tracking, failures, redaction."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from opencell.config import BotConfig, LLMConfig, OpenCellConfig, SessionConfig, StoreConfig
from opencell.llm import create_llm
from opencell.llm.base import LLMRequest, ToolCall
from opencell.messages import ConversationKey, IncomingMessage
from opencell.observability.facade import AgentOpsFacade
from opencell.observability.observer import Observability
from opencell.runtime import BotRuntime
from opencell.store.store import Store
from opencell.tools import tool
from tests.conftest import REPO, clean_env, opencell
from tests.fakes.clock import ManualClock
from tests.fakes.function_llm import FunctionLLM, answer
from tests.fakes.llm_server import FakeLLMServer, reply
from tests.fakes.waiting import until_sync

FAKE_KEY = "sk-ant-api03-" + "Zx9" * 30


def observability(url: str) -> Observability:
    return Observability.from_config(OpenCellConfig(store=StoreConfig(url=url)))


def read(url: str) -> Store:
    return Store.open(url)


def only_session(store: Store) -> dict[str, Any]:
    rows, _ = store.list_sessions(limit=10)
    assert len(rows) == 1, rows
    return rows[0]


def message(text: str, user: str = "u") -> IncomingMessage:
    key = ConversationKey(bot="t", platform="test", channel="c", user=user)
    return IncomingMessage(key=key, text=text, user_id=user)


def test_idle_timeout_splits_a_piped_chat_into_two_sessions(tmp_path: Path,
                                                            isolated_store: str) -> None:
    bot = tmp_path / "idle.yaml"
    bot.write_text("name: idle\nllm: {provider: offline}\nsession: {idle_timeout: 1s}\n")
    proc = subprocess.Popen([sys.executable, "-m", "opencell", "chat", str(bot)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=clean_env(), cwd=REPO)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("one\ntwo\n")
    proc.stdin.flush()
    assert proc.stdout.readline() and proc.stdout.readline()  # both answered
    # The idle timeout (1 s, then a sweep) is seen in the store, however busy the machine.
    store = read(isolated_store)
    try:
        until_sync(lambda: [r["end_reason"] for r in store.list_sessions(limit=10)[0]]
                   == ["idle_timeout"], "the first session to close on its idle timeout")
    finally:
        store.close()
    proc.stdin.write("three\n")
    proc.stdin.close()
    assert proc.wait(timeout=30) == 0
    store = read(isolated_store)
    rows, _ = store.list_sessions(sort="started_at", descending=False, limit=10)
    assert [(r["messages"], r["llm_calls"], r["end_reason"], r["status"]) for r in rows] == [
        (2, 2, "idle_timeout", "success"), (1, 1, "shutdown", "success")]


async def test_claude_usage_is_priced_by_genai_prices(isolated_store: str) -> None:
    fake = FakeLLMServer([
        reply("a", usage={"input_tokens": 1500, "output_tokens": 800}),
        reply("b", usage={"input_tokens": 1500, "output_tokens": 800,
                          "cache_read_input_tokens": 10_000,
                          "cache_creation_input_tokens": 2_000}),
        reply("c", model="claude-imaginary-9", usage={"input_tokens": 10, "output_tokens": 5}),
    ])
    async with fake:
        obs = observability(isolated_store)
        config = BotConfig(name="t", llm=LLMConfig(provider="claude", max_retries=0))
        llm = create_llm(config.llm, bot="t", env={"ANTHROPIC_API_KEY": "sk-ant-x",
                                                   "ANTHROPIC_BASE_URL": fake.url})
        runtime = BotRuntime(config, llm=llm, observability=obs)
        for text in ("one", "two", "three"):
            await runtime.dispatch(message(text))
        await runtime.aclose()
        obs.close()
    store = read(isolated_store)
    calls = [e for e in store.timeline(only_session(store)["id"]) if e["kind"] == "llm_call"]
    assert calls[0]["cost_usd"] == pytest.approx(0.0165, abs=1e-9)
    assert calls[0]["price_source"] == "genai-prices"
    # cache read 10k at $0.30/M and cache write 2k at $3.75/M on top of the same $0.0165
    assert calls[1]["cost_usd"] == pytest.approx(0.0165 + 0.003 + 0.0075, abs=1e-9)
    assert (calls[1]["cache_read_tokens"], calls[1]["cache_write_tokens"]) == (10_000, 2_000)
    assert calls[2]["response_model"] == "claude-imaginary-9"
    assert calls[2]["cost_usd"] is None and calls[2]["price_source"] == "unpriced"
    session = only_session(store)
    assert session["unpriced_calls"] == 1
    assert session["cost_usd"] == pytest.approx(0.0165 * 2 + 0.0105, abs=1e-9)


def test_seed_manual_tracking_example_shows_every_event_in_order(isolated_store: str) -> None:
    ops = AgentOpsFacade(observability(isolated_store))
    assert ops.is_enabled()
    sid = ops.start_session(bot_name="roundtable", bot_type="agent", user_id="u42",
                            platform="discord", tags=["council"])
    ops.track_tool_execution(sid, tool="search_docs", args={"query": "quorum"},
                             result="3 documents", duration=0.25)
    ops.track_cost(sid, provider="claude", model="claude-sonnet-4-20250514",
                   input_tokens=1500, output_tokens=800)
    try:
        raise ValueError("tally mismatch")
    except ValueError as exc:
        ops.track_error(sid, error=exc, context={"round": 2})
    ops.track_event(sid, "roundtable_vote", {"winner": "proposal-b", "votes": 3})
    ops.end_session(sid, success=True, metadata={"rounds": 2})
    assert ops.flush(5.0)
    ops.observability.close()

    result = opencell("session", sid, "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["id"] == sid and doc["bot"] == "roundtable" and doc["status"] == "success"
    assert doc["tags"] == ["council"]
    kinds = [e["kind"] for e in doc["timeline"]]
    assert kinds == ["session_start", "tool_call", "llm_call", "error", "custom", "session_end"]
    tool_event, llm_event, error_event, custom, end = doc["timeline"][1:]
    assert (tool_event["tool"], tool_event["args"], tool_event["result"],
            tool_event["duration_ms"]) == ("search_docs", {"query": "quorum"}, "3 documents", 250)
    assert llm_event["cost_usd"] == pytest.approx(0.0165)
    assert error_event["type"] == "ValueError" and "tally mismatch" in error_event["stack"]
    assert error_event["context"] == {"round": 2}
    assert (custom["name"], custom["data"]) == ("roundtable_vote",
                                                {"winner": "proposal-b", "votes": 3})
    assert end["metadata"] == {"rounds": 2}


@tool
def flaky_lookup(item: str) -> str:
    """Look an item up (always fails).

    Args:
        item: What to look up.
    """
    raise ConnectionError(f"inventory service down for {item}")


async def test_a_raising_tool_fails_the_turn_and_the_session(isolated_store: str) -> None:
    def play(request: LLMRequest) -> Any:
        if request.messages[-1].role == "user":
            return answer(calls=[ToolCall(id="t1", name="flaky",
                                          arguments={"item": "widget"})])
        return "sorry, the inventory is unreachable"

    obs = observability(isolated_store)
    config = BotConfig(name="t", type="agent", llm=LLMConfig(provider="offline"),
                       tools=[{"name": "flaky", "python":
                               "tests.observability.test_recording_e2e:flaky_lookup"}])
    runtime = BotRuntime(config, llm=FunctionLLM(play), observability=obs)
    reply_ = await runtime.dispatch(message("how many widgets?"))
    assert reply_ is not None and "unreachable" in reply_.text
    await runtime.aclose()
    obs.close()
    store = read(isolated_store)
    session = only_session(store)
    assert (session["status"], session["end_reason"], session["errors"]) == (
        "failed", "shutdown", 1)
    events = store.timeline(session["id"])
    (tool_event,) = [e for e in events if e["kind"] == "tool_call"]
    assert tool_event["success"] is False and "inventory service down" in tool_event["error"]
    (error_event,) = [e for e in events if e["kind"] == "error"]
    assert "Traceback" in error_event["stack"] and "flaky_lookup" in error_event["stack"]
    (turn,) = [e for e in events if e["kind"] == "message"]
    assert turn["success"] is False


async def test_a_secret_in_tool_args_never_reaches_the_database_file(tmp_path: Path,
                                                                    isolated_store: str) -> None:
    def play(request: LLMRequest) -> Any:
        if request.messages[-1].role == "user":
            return answer(calls=[ToolCall(id="t1", name="calculator",
                                          arguments={"expression": f"1+1 {FAKE_KEY}"})])
        return f"done, and by the way {FAKE_KEY}"

    obs = observability(isolated_store)
    config = BotConfig(name="t", type="agent", llm=LLMConfig(provider="offline"),
                       tools=["calculator"])
    runtime = BotRuntime(config, llm=FunctionLLM(play), observability=obs)
    await runtime.dispatch(message(f"my key is {FAKE_KEY}"))
    await runtime.aclose()
    obs.close()
    files = list(tmp_path.glob("opencell.db*"))
    assert files
    for path in files:
        assert FAKE_KEY.encode() not in path.read_bytes()
        assert FAKE_KEY[:20].encode() not in path.read_bytes()
    store = read(isolated_store)
    (tool_event,) = [e for e in store.timeline(only_session(store)["id"])
                     if e["kind"] == "tool_call"]
    assert "REDACTED" in json.dumps(tool_event["args"])


async def test_history_belongs_to_the_session(isolated_store: str) -> None:
    clock = ManualClock()
    llm = FunctionLLM(lambda request: str(len(request.messages)))
    config = BotConfig(name="t", llm=LLMConfig(provider="offline"),
                       session=SessionConfig(idle_timeout=10))
    runtime = BotRuntime(config, llm=llm, observability=Observability.disabled(), clock=clock)
    assert (await runtime.dispatch(message("a"))).text == "1"  # type: ignore[union-attr]
    assert (await runtime.dispatch(message("b"))).text == "3"  # type: ignore[union-attr]
    clock.advance(11.0)
    runtime.sessions.sweep()
    assert (await runtime.dispatch(message("c"))).text == "1"  # type: ignore[union-attr]
    await runtime.aclose()


def test_kill_9_leaves_durable_events_and_the_next_start_closes_the_session(
        tmp_path: Path, isolated_store: str) -> None:
    bot = tmp_path / "crash.yaml"
    bot.write_text("name: crash\nllm: {provider: offline}\n")
    proc = subprocess.Popen([sys.executable, "-m", "opencell", "chat", str(bot)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=clean_env(), cwd=REPO)
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write("remember me\n")
    proc.stdin.flush()
    assert proc.stdout.readline().startswith("[offline]")
    # The kill comes once the turn's records are committed (the writer's batching is the
    # benchmark's business); from then on they must survive a kill -9.
    store = read(isolated_store)
    try:
        until_sync(lambda: [e["kind"] for row in store.list_sessions(limit=10)[0]
                            for e in store.timeline(row["id"])]
                   == ["session_start", "message", "llm_call"], "the turn's records in the store")
    finally:
        store.close()
    proc.kill()
    proc.wait(timeout=10)

    result = opencell("sessions", "--json")  # any start closes what a crash left open
    assert result.returncode == 0, result.stderr
    (session,) = json.loads(result.stdout)["sessions"]
    assert (session["status"], session["end_reason"]) == ("success", "interrupted")
    assert (session["messages"], session["llm_calls"]) == (1, 1)
    timeline = json.loads(opencell("session", session["id"], "--json").stdout)["timeline"]
    assert [e["kind"] for e in timeline] == ["session_start", "message", "llm_call",
                                             "session_end"]  # the message by when it was said
    assert timeline[1]["input"] == "remember me"


async def test_bot_keeps_answering_while_the_store_is_locked(tmp_path: Path,
                                                             isolated_store: str) -> None:
    import sqlite3

    obs = observability(isolated_store)
    config = BotConfig(name="t", llm=LLMConfig(provider="offline"))
    runtime = BotRuntime(config, llm=FunctionLLM(lambda r: "still here"), observability=obs)
    await runtime.dispatch(message("before"))
    assert obs.recorder.flush(5.0)

    blocker = sqlite3.connect(tmp_path / "opencell.db", timeout=0)
    blocker.execute("BEGIN EXCLUSIVE")  # as root, chmod would not stop writes; a lock does
    try:
        for i in range(20):
            reply_ = await runtime.dispatch(message(f"during {i}"))
            assert reply_ is not None and reply_.text == "still here"
        assert not obs.recorder.flush(0.5)  # nothing can land while the lock is held
        assert obs.recorder.stats.failures >= 1
    finally:
        blocker.rollback()
        blocker.close()
    assert obs.recorder.flush(10.0)
    await runtime.aclose()
    obs.close()
    assert obs.recorder.stats.dropped == 0
    store = read(isolated_store)
    session = only_session(store)
    assert session["messages"] == 21 and session["llm_calls"] == 21


async def test_end_command_and_end_session_close_with_their_reasons(isolated_store: str) -> None:
    obs = observability(isolated_store)
    config = BotConfig(name="t", llm=LLMConfig(provider="offline"),
                       session=SessionConfig(end_command="/end"))
    runtime = BotRuntime(config, llm=FunctionLLM(lambda r: "ok"), observability=obs)
    await runtime.dispatch(message("hello", user="a"))
    ended = await runtime.dispatch(message("/end", user="a"))
    assert ended is not None and "ended" in ended.text.lower()
    await runtime.start_session("b")
    assert await runtime.process_message("hi") == "ok"
    await runtime.end_session(success=False)
    await runtime.aclose()
    obs.close()
    store = read(isolated_store)
    rows, _ = store.list_sessions(sort="started_at", descending=False, limit=10)
    assert [(r["user_id"], r["end_reason"], r["status"], r["messages"]) for r in rows] == [
        ("a", "end_command", "success", 2), ("b", "explicit", "failed", 1)]


async def test_capture_content_off_keeps_lengths_only(isolated_store: str) -> None:
    config_ = OpenCellConfig.model_validate({"store": {"url": isolated_store},
                                             "observability": {"capture_content": False}})
    obs = Observability.from_config(config_)
    runtime = BotRuntime(BotConfig(name="t", llm=LLMConfig(provider="offline")),
                         llm=FunctionLLM(lambda r: "a private answer"), observability=obs)
    await runtime.dispatch(message("a private question"))
    await runtime.aclose()
    obs.close()
    store = read(isolated_store)
    (turn,) = [e for e in store.timeline(only_session(store)["id"]) if e["kind"] == "message"]
    assert (turn["input"], turn["output"]) == (None, None)
    assert (turn["input_chars"], turn["output_chars"]) == (18, 16)
    db = Path(isolated_store.removeprefix("sqlite:///"))
    for path in db.parent.glob(db.name + "*"):  # the WAL too
        assert b"private" not in path.read_bytes()


def test_the_short_id_in_lists_opens_the_session(isolated_store: str) -> None:
    ops = AgentOpsFacade(observability(isolated_store))
    sid = ops.start_session(bot_name="b", user_id="u")
    ops.end_session(sid)
    assert ops.flush(5.0)
    ops.observability.close()
    listed = opencell("sessions")
    from opencell.records import short_session_id

    assert short_session_id(sid) in listed.stdout
    shown = opencell("session", short_session_id(sid), "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["id"] == sid
