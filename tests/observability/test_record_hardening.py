"""One record can never stop the recorder: values are made storable where records are built,
a record the store still refuses is isolated and quarantined, and every loss is reported."""

from __future__ import annotations

import logging
import math
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from opencell.cli.checks import check_recording
from opencell.config import BotConfig, LLMConfig, ObservabilityConfig, OpenCellConfig, StoreConfig
from opencell.dashboard import metrics
from opencell.llm import create_llm
from opencell.messages import ConversationKey, IncomingMessage
from opencell.observability.facade import AgentOpsFacade
from opencell.observability.observer import Observability
from opencell.observability.recorder import Recorder
from opencell.records import Record, new_session_id
from opencell.runtime import BotRuntime
from opencell.store.store import Store
from tests.fakes.function_llm import FunctionLLM
from tests.fakes.llm_server import FakeLLMServer, reply
from tests.fakes.waiting import WAIT, poll


def observability(url: str, **settings: Any) -> Observability:
    return Observability.from_config(OpenCellConfig(
        store=StoreConfig(url=url), observability=ObservabilityConfig(**settings)))


def key(user: str = "u") -> ConversationKey:
    return ConversationKey(bot="t", platform="test", channel="c", user=user)


def start(sid: str) -> Record:
    return Record("session_start", sid, time.time(), "bot",
                  {"bot": "bot", "platform": "test", "user_id": "u"})


def turn(sid: str, i: int) -> Record:
    return Record("message", sid, time.time(), "turn", {"input": f"m{i}"}, 5.0, True)


def poison(sid: str) -> Record:
    """Passes every check of the batch planner, and SQLite cannot bind it (2⁷⁰ > 2⁶³)."""
    return Record("llm_call", sid, time.time(), "claude:x",
                  {"provider": "claude", "model": "x", "input_tokens": 2**70,
                   "output_tokens": 1, "cost_usd": 0.0}, 10.0, True)


# ----------------------------------------------------------------- built storable

BAD_CALLS: dict[str, Callable[[AgentOpsFacade, str], None]] = {
    "lone surrogate in a bot's name": lambda ops, sid: ops.track_event(sid, "hello", {}),
    "lone surrogate in an event": lambda ops, sid: ops.track_event(
        sid, "said", {"text": "caf\udce9", "caf\udce9": ["\ud800"]}),
    "lone surrogate in an error": lambda ops, sid: ops.track_error(
        sid, error="bad \udce9 byte", context={"input": "\udce9"}),
    "lone surrogate in tool args": lambda ops, sid: ops.track_tool_execution(
        sid, tool="t\udce9", args={"q": "\udce9"}, result="r\udce9", duration=0.1),
    "tokens of 2**63": lambda ops, sid: ops.track_cost(
        sid, provider="claude", model="claude-sonnet-4-20250514", input_tokens=2**63,
        output_tokens=5),
    "tokens of 1e300": lambda ops, sid: ops.track_cost(
        sid, provider="claude", model="claude-sonnet-4-20250514",
        input_tokens=1e300, output_tokens=5),  # type: ignore[arg-type]
    "a NaN duration": lambda ops, sid: ops.track_tool_execution(
        sid, tool="t", result="ok", duration=math.nan),
    "an infinite timestamp": lambda ops, sid: ops.track_event(
        sid, "late", {}, timestamp=math.inf),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_a_bad_value_is_made_storable_and_every_record_lands(case: str,
                                                             isolated_store: str) -> None:
    ops = AgentOpsFacade(observability(isolated_store))
    sid = ops.start_session(bot_name="b\udce9" if case == "lone surrogate in a bot's name"
                            else "b", user_id="u")
    BAD_CALLS[case](ops, sid)
    ops.track_event(sid, "after", {"n": 1})
    ops.end_session(sid, success=True)
    assert ops.flush(WAIT) is True
    stats = ops.observability.recorder.stats
    assert (stats.dropped, stats.quarantined, stats.failing) == (0, 0, False)
    ops.observability.close()

    store = Store.open(isolated_store)
    session = store.get_session(sid)
    assert session is not None and session["status"] == "success"
    assert session["bot"] in ("b", "b\ufffd")
    kinds = [e["kind"] for e in store.timeline(sid)]
    assert len(kinds) == 4 and kinds[-2:] == ["custom", "session_end"]
    assert store.losses()["quarantined"] == 0
    assert session["input_tokens"] < 2**40  # a bad count is left out of the totals
    store.close()


def test_an_impossible_number_is_named_in_the_record(isolated_store: str) -> None:
    ops = AgentOpsFacade(observability(isolated_store))
    sid = ops.start_session(bot_name="b")
    ops.track_cost(sid, provider="claude", model="claude-sonnet-4-20250514",
                   input_tokens=2**63, output_tokens=7, cost=-1.0, duration=math.nan)
    assert ops.flush(WAIT)
    ops.observability.close()
    store = Store.open(isolated_store)
    call = next(e for e in store.timeline(sid) if e["kind"] == "llm_call")
    assert (call["input_tokens"], call["output_tokens"], call["duration_ms"]) == (0, 7, None)
    assert call["invalid"] == {"input_tokens": repr(2**63), "cost_usd": "-1.0",
                               "duration_ms": "nan"}
    assert call["price_source"] == "genai-prices"  # priced from the book instead of -1
    store.close()


async def test_a_lone_surrogate_in_a_model_reply_reaches_the_user_and_the_chat_goes_on(
        isolated_store: str) -> None:
    # The real Anthropic SDK decodes the JSON escape into a lone surrogate; before the fix
    # the next request could not be encoded and every later turn failed.
    fake = FakeLLMServer([reply("caf\udce9 ok"), reply("second")])
    async with fake:
        obs = observability(isolated_store)
        config = BotConfig(name="t", llm=LLMConfig(provider="claude", max_retries=0))
        llm = create_llm(config.llm, bot="t", env={"ANTHROPIC_API_KEY": "sk-ant-x",
                                                   "ANTHROPIC_BASE_URL": fake.url})
        runtime = BotRuntime(config, llm=llm, observability=obs)
        first = await runtime.dispatch(IncomingMessage(key=key(), text="one", user_id="u"))
        second = await runtime.dispatch(IncomingMessage(key=key(), text="two", user_id="u"))
        await runtime.aclose()
        assert obs.recorder.flush(WAIT) is True
        obs.close()
    assert first is not None and first.text == "caf\ufffd ok" and not first.failed
    assert second is not None and second.text == "second" and not second.failed
    store = Store.open(isolated_store)
    rows, _ = store.list_sessions()
    assert [(r["messages"], r["llm_calls"], r["errors"]) for r in rows] == [(2, 2, 0)]
    store.close()


async def test_a_platform_message_with_a_lone_surrogate_is_answered_and_recorded(
        isolated_store: str) -> None:
    # Slack and Discord deliver JSON; "\udce9" in it is a lone surrogate in Python.
    llm = FunctionLLM(lambda request: f"echo {request.messages[-1].content}")
    obs = observability(isolated_store)
    runtime = BotRuntime(BotConfig(name="t", llm=LLMConfig(provider="offline")), llm=llm,
                         observability=obs)
    message = IncomingMessage(key=key("u\udce9"), text="caf\udce9", user_id="u\udce9",
                              user_name="N\udce9")
    answer = await runtime.dispatch(message)
    later = await runtime.dispatch(IncomingMessage(key=key("u\udce9"), text="ok",
                                                   user_id="u\udce9"))
    await runtime.aclose()
    assert obs.recorder.flush(WAIT) is True
    obs.close()
    assert answer is not None and answer.text == "echo caf\ufffd" and not answer.failed
    assert later is not None and not later.failed
    store = Store.open(isolated_store)
    rows, _ = store.list_sessions()
    assert [(r["user_id"], r["messages"]) for r in rows] == [("u\ufffd", 2)]
    store.close()


# ----------------------------------------------------------------- the second line of defence

def test_a_record_the_store_refuses_is_quarantined_and_the_rest_lands(
        store: Store, caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder(store, flush_interval=10.0)  # one batch of everything, on flush
    sid = new_session_id()
    recorder.record(start(sid))
    for i in range(300):
        recorder.record(turn(sid, i))
    recorder.record(poison(sid))
    for i in range(300, 600):
        recorder.record(turn(sid, i))
    with caplog.at_level(logging.WARNING, logger="opencell.recorder"):
        assert recorder.flush(WAIT) is True
    assert len(store.timeline(sid)) == 601
    stats = recorder.stats
    assert (stats.written, stats.quarantined, stats.dropped, stats.failing) == (601, 1, 0, False)
    assert f"record quarantined kind=llm_call session={sid}" in caplog.text
    assert "OverflowError" in caplog.text
    losses = store.losses()
    assert losses["quarantined"] == 1
    assert losses["last_quarantined"]["session_id"] == sid
    assert losses["last_quarantined"]["kind"] == "llm_call"
    # Recording goes on.
    recorder.record(turn(sid, 600))
    assert recorder.flush(WAIT) is True
    assert len(store.timeline(sid)) == 602
    recorder.close()


def test_a_locked_store_is_an_outage_not_a_bad_record(db: Path, store: Store) -> None:
    recorder = Recorder(store, flush_interval=0.01)
    sid = new_session_id()
    recorder.record(start(sid))
    assert recorder.flush(WAIT)
    locker = sqlite3.connect(db, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    recorder.record(turn(sid, 0))
    recorder.record(poison(sid))
    recorder.record(turn(sid, 1))
    assert poll(lambda: recorder.stats.failures >= 2)
    assert recorder.stats.failing and recorder.stats.quarantined == 0  # nothing blamed
    locker.execute("ROLLBACK")
    locker.close()
    assert recorder.flush(WAIT) is True
    assert (len(store.timeline(sid)), recorder.stats.quarantined) == (3, 1)
    recorder.close()


def test_a_record_the_planner_rejects_is_quarantined_too(store: Store) -> None:
    recorder = Recorder(store, flush_interval=10.0)
    sid = new_session_id()
    recorder.record(start(sid))
    recorder.record(Record("custom", sid, math.nan, "no time", {}))
    assert recorder.flush(WAIT) is True
    assert store.losses()["quarantined"] == 1
    assert store.stats()["quarantined_records"] == 1
    recorder.close()


# ----------------------------------------------------------------- losses reported

def test_flush_says_false_after_drops_and_every_loss_is_reported(
        db: Path, store: Store, caplog: pytest.LogCaptureFixture) -> None:
    recorder = Recorder(store, max_queue=50, flush_interval=0.01)
    sid = new_session_id()
    recorder.record(start(sid))
    recorder.record(poison(sid))
    assert recorder.flush(WAIT) is True  # a quarantined record is kept, not dropped
    locker = sqlite3.connect(db, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")  # the writer is stuck: a producer outruns it
    for i in range(80):
        recorder.record(turn(sid, i))
    assert poll(lambda: recorder.stats.dropped == 30)
    locker.execute("ROLLBACK")
    locker.close()
    with caplog.at_level(logging.WARNING, logger="opencell.recorder"):
        assert recorder.flush(WAIT) is False  # everything queued landed, 30 did not
        assert recorder.flush(WAIT) is True  # nothing dropped since
        assert recorder.close(WAIT) is True
    assert recorder.stats.dropped_by == {"queue_full": 30}
    assert "reason=queue_full:30" in caplog.text

    losses = store.losses()
    assert (losses["dropped"], losses["quarantined"]) == ({"queue_full": 30}, 1)
    check = check_recording(losses)
    assert check.ok is None and "30 record(s) dropped (queue_full 30)" in check.detail
    assert "1 record(s) quarantined" in check.detail and sid in check.detail
    with store.engine.connect() as conn:
        text = metrics.render(conn, recorder=recorder.stats)
    assert 'opencell_records_dropped_total{reason="queue_full"} 30' in text
    assert "opencell_records_quarantined_total 1" in text
    assert 'opencell_recorder_dropped_total{reason="queue_full"} 30' in text
    assert "opencell_recorder_quarantined_total 1" in text


def test_records_left_at_close_are_logged_with_the_real_reason(
        caplog: pytest.LogCaptureFixture) -> None:
    class Down:
        def write_batch(self, records: object) -> None:
            raise RuntimeError("disk on fire")

    recorder = Recorder(Down(), flush_interval=0.01)
    for i in range(7):
        recorder.record(turn("s", i))
    with caplog.at_level(logging.WARNING, logger="opencell.recorder"):
        assert recorder.close(0.2) is False
        assert poll(lambda: "reason=unstored_at_close:7" in caplog.text)
    assert "queue_full" not in caplog.text
    assert "disk on fire" in caplog.text
    assert recorder.stats.dropped_by == {"unstored_at_close": 7}


def test_no_loss_is_an_ok_doctor_line(store: Store) -> None:
    assert check_recording(store.losses()).ok is True


# ----------------------------------------------------------------- message text capped

async def test_a_huge_message_is_stored_capped_with_a_visible_marker(
        isolated_store: str) -> None:
    llm = FunctionLLM(lambda request: request.messages[-1].content)  # echoes it back
    obs = observability(isolated_store, max_message_chars=1000)
    runtime = BotRuntime(BotConfig(name="t", llm=LLMConfig(provider="offline")), llm=llm,
                         observability=obs)
    huge = "x" * 1_000_000
    answer = await runtime.dispatch(IncomingMessage(key=key(), text=huge, user_id="u"))
    await runtime.aclose()
    assert obs.recorder.flush(WAIT)
    obs.close()
    assert answer is not None and answer.text == huge  # the cap is for storage only
    store = Store.open(isolated_store)
    rows, _ = store.list_sessions()
    timeline = store.timeline(rows[0]["id"])
    turn_event = next(e for e in timeline if e["kind"] == "message")
    marker = "[truncated by OpenCell: 1,000 of 1,000,000 characters kept]"
    assert turn_event["input"].endswith(marker) and turn_event["output"].endswith(marker)
    assert turn_event["input_chars"] == 1_000_000
    with store.engine.connect() as conn:
        stored = conn.exec_driver_sql("SELECT sum(length(data)) FROM events").scalar()
    assert stored < 8_000  # four capped copies at most, not four megabytes
    store.close()
