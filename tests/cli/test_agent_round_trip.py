"""Agent bots through the real SDKs: the model asks for a tool, the tool runs, the answer shows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import clean_env, opencell
from tests.fakes.llm_server import FakeLLMServer, RecordedRequest, Step, reply, tool_call


def play_time_agent(request: RecordedRequest) -> Step:
    """Asks for current_time, then answers with what the tool returned."""
    results = request.tool_results
    if not results:
        return tool_call("current_time", {"timezone": "Europe/Paris"}, id="call_time_1")
    call_id, content = results[0]
    return reply(f"The tool {call_id} says: {content}")


@pytest.fixture
def fake_llm() -> Iterator[FakeLLMServer]:
    server = FakeLLMServer(model=play_time_agent)
    server.start_in_thread()
    yield server
    server.stop_thread()


@pytest.mark.parametrize("provider", ["moonshot", "claude"])
def test_agent_tool_round_trip(tmp_path: Path, fake_llm: FakeLLMServer, provider: str) -> None:
    bot = tmp_path / "agent.yaml"
    bot.write_text(f"name: agent\ntype: agent\nllm: {{provider: {provider}, max_retries: 0}}\n"
                   "tools: [current_time, calculator]\n")
    env = clean_env(MOONSHOT_API_KEY="sk-moon-test", MOONSHOT_BASE_URL=fake_llm.openai_base_url,
                    ANTHROPIC_API_KEY="sk-ant-test", ANTHROPIC_BASE_URL=fake_llm.url)
    result = opencell("chat", str(bot), stdin="what time is it in Paris?\n", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("The tool call_time_1 says: ")
    assert "Europe/Paris" in result.stdout

    first, second = fake_llm.requests
    offered = [t.get("name") or t["function"]["name"] for t in first.json["tools"]]
    assert sorted(offered) == ["calculator", "current_time"]
    if provider == "moonshot":
        assistant, tool_message = second.messages[-2:]
        assert assistant["tool_calls"][0]["function"]["name"] == "current_time"
        assert tool_message["role"] == "tool" and tool_message["tool_call_id"] == "call_time_1"
    else:
        assistant, user = second.messages[-2:]
        assert [b["type"] for b in assistant["content"]] == ["tool_use"]
        (block,) = user["content"]
        assert block["type"] == "tool_result" and block["tool_use_id"] == "call_time_1"
        assert not block.get("is_error")

    sessions = json.loads(opencell("sessions", "--json").stdout)["sessions"]
    assert (sessions[0]["llm_calls"], sessions[0]["tool_calls"]) == (2, 1)
