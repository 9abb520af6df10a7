"""The session page shows each model call's whole input: system prompt, tools offered, the
history (collapsed), what is new, and the model's tool calls — rebuilt from the stored deltas."""

from __future__ import annotations

import html

import httpx

from tests.dashboard.conftest import TOOL_HTML
from tests.dashboard.test_api import client, get, store  # noqa: F401 - fixtures

SYSTEM = "You are a helpful assistant."


def test_the_api_gives_every_model_call_its_whole_input(
        conversations: dict[str, str], client: httpx.Client) -> None:  # noqa: F811
    detail = get(client, f"/api/sessions/{conversations['agent']}")
    calls = [e for e in detail["timeline"] if e["kind"] == "llm_call"]
    assert len(calls) == 4  # each turn: a tool call, then the answer
    first, second, third, _ = (call["model_input"] for call in calls)
    assert first["system"] == SYSTEM and [t["name"] for t in first["tools"]] == ["lookup_order"]
    assert [m["role"] for m in first["messages"]] == ["user"] and first["new"] == 1
    assert [m["role"] for m in second["messages"]] == ["user", "assistant", "tool"]
    assert second["messages"][1]["tool_calls"] == [
        {"id": "t1", "name": "lookup_order", "arguments": {"order_id": 42}}]
    assert second["messages"][2]["content"] == TOOL_HTML
    assert second["new"] == 2
    # Turn 2: the whole of turn 1 is its history, only the answer and "Thanks!" are new.
    assert [m["role"] for m in third["messages"]] == ["user", "assistant", "tool",
                                                      "assistant", "user"]
    assert third["messages"][-1]["content"] == "Thanks!" and third["new"] == 2
    assert third["missing"] == 0 and third["system"] == SYSTEM
    assert calls[0]["completion_calls"] == [
        {"id": "t1", "name": "lookup_order", "arguments": {"order_id": 42}}]


def test_the_session_page_shows_it_escaped_with_the_history_collapsed(
        conversations: dict[str, str], client: httpx.Client) -> None:  # noqa: F811
    page = client.get(f"/sessions/{conversations['agent']}")
    assert page.status_code == 200
    body = page.text
    assert body.count("data-model-input") == 4
    assert body.count('data-part="system"') == 4 and SYSTEM in body
    assert 'data-part="tools"' in body and "Tools offered (1): lookup_order" in body
    assert body.count('data-part="history"') == 3  # the first call has no history
    assert "History (3 earlier messages)" in body  # turn 2: turn 1 collapsed
    assert html.escape(TOOL_HTML, quote=False) in body and TOOL_HTML not in body
    assert 'data-part="tool-call"' in body and "Tool call lookup_order" in body
