"""Issue acceptance: record an agent session against the fake LLM, replay it with a changed
system prompt and another model, and check what the new model was sent and what was stored."""

from __future__ import annotations

import pytest

from opencell.errors import StoreError
from opencell.runtime import BotRuntime
from tests.fakes.llm_server import FakeLLMServer
from tests.replay.conftest import (
    HAIKU,
    RUNS,
    SONNET,
    agent_config,
    flushed,
    observability,
    record,
    system_text,
)


async def test_replay_with_new_prompt_and_model(fake: FakeLLMServer, isolated_store: str
                                                ) -> None:
    obs = observability(isolated_store)
    runtime = BotRuntime(agent_config(fake.url), observability=obs)
    source = await record(runtime, "alice", "where is my order?", "thanks!")
    assert RUNS == [42]
    store = flushed(obs)
    recorded_calls = len(fake.requests)

    result = await runtime.replay(source, system_prompt="Answer in one line.", model=HAIKU)
    await runtime.aclose()

    # The new model was called, with the changed prompt, on every call of the replay.
    replayed = fake.requests[recorded_calls:]
    assert [r.json["model"] for r in replayed] == [HAIKU, HAIKU, HAIKU]
    assert {system_text(r) for r in replayed} == {"Answer in one line."}
    # The recorded tool result was served without running the tool …
    assert RUNS == [42]
    assert replayed[1].tool_results[0][1] == "order 42: shipped (lookup #1)"
    assert result.turns[0].tools[0].served == "replayed"
    assert not result.turns[0].tools_changed
    # … and the second turn carries the replay's own history, not the recorded replies.
    history = [m for m in replayed[2].messages if m["role"] == "assistant"]
    texts = [m["content"] if isinstance(m["content"], str)
             else "".join(b.get("text", "") for b in m["content"]) for m in history]
    assert any(t.startswith(f"[{HAIKU}] order 42") for t in texts), texts
    assert not any(SONNET in t for t in texts), texts

    assert [t.recorded_reply for t in result.turns] == [
        f"[{SONNET}] order 42: shipped (lookup #1)", f"[{SONNET}] you said: thanks!"]
    assert [t.reply for t in result.turns] == [
        f"[{HAIKU}] order 42: shipped (lookup #1)", f"[{HAIKU}] you said: thanks!"]
    assert result.changed_turns == 2 and result.ok

    # Totals match the store: the source's row, and the replay's own session row.
    flushed(obs)
    source_row = store.get_session(source)
    replay_row = store.get_session(result.replay_id)
    for row, tally in ((source_row, result.recorded), (replay_row, result.new)):
        assert (row["llm_calls"], row["input_tokens"], row["output_tokens"]) == (
            tally.llm_calls, tally.input_tokens, tally.output_tokens)
        assert row["cost_usd"] == pytest.approx(tally.cost_usd)
    assert result.recorded.cost_usd > result.new.cost_usd > 0  # Haiku is cheaper
    assert replay_row["platform"] == "replay" and replay_row["replay_of"] == source_row["id"]
    assert replay_row["tool_calls"] == 1  # recorded like any tool call, served from the record
    # Both record the bot version they ran; the replay's differs (prompt and model).
    assert source_row["bot_version"] == result.source_version
    assert replay_row["bot_version"] == result.version != result.source_version
    # Budgets do not count the replay: its spend is its own scope (max_usd).
    import time

    from opencell.budgets._store import BudgetStore

    for start, end in ((0.0, time.time() + 60), (time.time() - 1, time.time() + 60)):
        spent = BudgetStore(store).spend(start, end)  # whole UTC days; then a partial day
        assert {row.platform for row in spent} <= {"console"}
    whole = BudgetStore(store).spend(0.0, time.time() + 86_400 * 2)
    assert sum(row.cost_usd for row in whole) == pytest.approx(result.recorded.cost_usd)
    obs.close()


async def test_tool_modes_live_deny_and_unanswered(fake: FakeLLMServer,
                                                   isolated_store: str) -> None:
    obs = observability(isolated_store)
    runtime = BotRuntime(agent_config(fake.url), observability=obs)
    source = await record(runtime, "bob", "my order please")
    flushed(obs)

    live = await runtime.replay(source, tools="live")
    assert RUNS == [42, 42] and live.turns[0].tools[0].served == "live"
    denied = await runtime.replay(source, tools="deny")
    assert denied.turns[0].tools[0].served == "denied" and denied.turns[0].tools[0].is_error
    assert "refused" in (denied.turns[0].tools[0].result or "")

    def other_order(request):  # the replayed model asks with other arguments
        from tests.fakes.llm_server import reply, tool_call

        if request.tool_results:
            return reply(f"got: {request.tool_results[0][1]}")
        return tool_call("lookup_order", {"order_id": 7})

    fake.model = other_order
    unanswered = await runtime.replay(source)
    turn = unanswered.turns[0]
    assert turn.tools[0].served == "unanswered" and turn.unanswered == 1
    assert turn.tools_changed and "no result for lookup_order" in turn.reply
    assert RUNS == [42, 42]
    await runtime.aclose()
    obs.close()


async def test_unknown_session_and_content_not_captured(fake: FakeLLMServer,
                                                        isolated_store: str) -> None:
    obs = observability(isolated_store)
    runtime = BotRuntime(agent_config(fake.url), observability=obs)
    with pytest.raises(StoreError, match="no session 'nope'"):
        await runtime.replay("nope")
    obs.capture_content = False
    source = await record(runtime, "carol", "hello")
    flushed(obs)
    with pytest.raises(StoreError, match="capture_content was off"):
        await runtime.replay(source)
    await runtime.aclose()
    obs.close()


async def test_openai_compatible_provider(fake: FakeLLMServer, isolated_store: str) -> None:
    from opencell.config import LLMConfig

    obs = observability(isolated_store)
    config = agent_config(fake.url).model_copy(update={"llm": LLMConfig(
        provider="moonshot", model="kimi-k2-0711-preview", base_url=fake.openai_base_url,
        api_key="sk-moon-test", max_retries=0)})
    runtime = BotRuntime(config, observability=obs)
    source = await record(runtime, "dan", "order status?")
    flushed(obs)
    before = len(fake.requests)
    result = await runtime.replay(source, model="kimi-latest")
    assert [r.json["model"] for r in fake.requests[before:]] == ["kimi-latest"] * 2
    assert result.turns[0].reply == "[kimi-latest] order 42: shipped (lookup #1)"
    assert RUNS == [42] and result.ok
    await runtime.aclose()
    obs.close()


async def test_offline_demo_bot(isolated_store: str) -> None:
    from opencell.loading import load_bot
    from tests.conftest import REPO

    obs = observability(isolated_store)
    runtime = BotRuntime(load_bot(REPO / "bots" / "demo.yaml"), observability=obs)
    source = await record(runtime, "erin", "hello", "what is 6*7?")
    flushed(obs)
    result = await runtime.replay(source, system_prompt="Be terse.", model="offline-next")
    assert [t.changed for t in result.turns] == [False, False]
    assert result.turns[1].tools[0].served == "replayed"
    assert result.turns[1].reply == "[offline] calculator returned: 42"
    assert result.version != result.source_version and result.ok
    await runtime.aclose()
    obs.close()
