"""AgentOps acceptance: one trace per session, in the shapes the AgentOps backend reads."""

from __future__ import annotations

import logging
import uuid

import pytest

from opencell.observability.observer import Observability
from opencell.store.store import Store
from tests.exporters._conversation import MODEL, two_turns
from tests.exporters.conftest import FAST, agentops_config, wait_for
from tests.fakes.agentops_server import FakeAgentOps
from tests.fakes.waiting import WAIT

ROOT_KEYS = ["agentops.span.kind", "operation.name", "agentops.tags", "trace.metadata.user_id",
             "trace.metadata.platform", "trace.metadata.bot_name",
             "agentops.session.end_state"]
CLIENT = 3  # SpanKind.CLIENT in OTLP


async def test_two_turn_conversation_arrives_as_one_trace(
        isolated_store: str, fake_agentops: FakeAgentOps,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="opencell")
    obs = Observability.from_config(agentops_config(isolated_store, fake_agentops),
                                    env={"AGENTOPS_APP_URL": "https://app.example"},
                                    export_tuning=FAST)
    session_id = await two_turns(obs)
    trace = f"{uuid.UUID(session_id).int:032x}"
    assert obs.exporters is not None
    url = obs.exporters.agentops_session_url(session_id)
    assert url == f"https://app.example/sessions?trace_id={trace}"
    obs.close(export_timeout=WAIT)  # delivered, however busy the machine

    spans = fake_agentops.spans
    assert {span.trace_id for span in spans} == {trace}
    names = sorted(span.name for span in spans)
    assert names == sorted(["shop.session", "shop.agent", "shop.agent", "anthropic.llm",
                            "anthropic.llm", "anthropic.llm", "lookup.tool"])
    assert len({span.span_id for span in spans}) == len(spans)

    (root,) = [s for s in spans if s.name == "shop.session"]
    assert root.parent_span_id == ""
    assert root.keys[:len(ROOT_KEYS)] == ROOT_KEYS
    attrs = root.attrs
    assert attrs["agentops.span.kind"] == "session"
    assert attrs["agentops.session.end_state"] == "Success"
    assert (attrs["trace.metadata.user_id"], attrs["trace.metadata.platform"],
            attrs["trace.metadata.bot_name"]) == ("u1", "test", "shop")
    assert attrs["agentops.tags"] == ["opencell", "team-x", "support", "bot:shop",
                                      "platform:test", "user:u1"]
    children = [s for s in spans if s is not root]
    assert all(s.parent_span_id == root.span_id for s in children)
    assert all(root.start < s.start for s in children)  # the earliest span is the root
    assert all(s.end <= root.end for s in children)

    store = Store.open(isolated_store)
    stored = [e for e in store.timeline(session_id) if e["kind"] == "llm_call"]
    store.close()
    llm = sorted((s for s in spans if s.name == "anthropic.llm"), key=lambda s: s.start)
    for span, event in zip(llm, stored, strict=True):
        a = span.attrs
        assert span.kind == CLIENT
        assert span.keys[:4] == ["agentops.span.kind", "gen_ai.system", "gen_ai.request.model",
                                 "gen_ai.response.model"]
        assert (a["agentops.span.kind"], a["gen_ai.system"], a["gen_ai.request.model"]) == (
            "llm", "anthropic", MODEL)
        keys = span.keys
        assert keys.index("gen_ai.prompt.0.content") < keys.index("gen_ai.prompt.0.role") \
            < keys.index("gen_ai.completion.0.content") \
            < keys.index("gen_ai.completion.0.role") < keys.index("gen_ai.usage.prompt_tokens")
        for key in ("prompt_tokens", "completion_tokens", "total_tokens",
                    "cache_read_input_tokens"):
            assert type(a[f"gen_ai.usage.{key}"]) is int
        for key in ("prompt_cost", "completion_cost", "total_cost"):
            assert type(a[f"gen_ai.usage.{key}"]) is float
        assert a["gen_ai.usage.total_cost"] == pytest.approx(event["cost_usd"])
        assert a["gen_ai.usage.prompt_cost"] + a["gen_ai.usage.completion_cost"] == \
            pytest.approx(event["cost_usd"])
        assert a["gen_ai.usage.prompt_tokens"] == event["input_tokens"]
    first = llm[0].attrs
    assert (first["gen_ai.prompt.0.role"], first["gen_ai.prompt.0.content"]) == (
        "system", "You are a helpful assistant.")
    assert (first["gen_ai.prompt.1.role"], first["gen_ai.prompt.1.content"]) == (
        "user", "how many widgets do you have?")
    assert first["gen_ai.completion.0.tool_calls.0.name"] == "lookup"
    assert first["gen_ai.completion.0.tool_calls.0.arguments"] == '{"item":"widget"}'
    assert first["gen_ai.completion.0.tool_calls.0.id"] == "call-1"
    # Every prompt message, in ascending order: the third call (turn 2) was sent it all.
    third = llm[2].attrs
    prompts = [(third[f"gen_ai.prompt.{i}.role"], third[f"gen_ai.prompt.{i}.content"])
               for i in range(6)]
    assert "gen_ai.prompt.6.role" not in third
    assert [role for role, _ in prompts] == ["system", "user", "assistant", "tool",
                                            "assistant", "user"]
    assert prompts[2][1].startswith("let me check\n[tool calls] ")
    assert '"name":"lookup"' in prompts[2][1]
    assert prompts[3][1] == "widget: 3 in stock" and prompts[5][1] == "thanks"
    prompt_keys = [k for k in llm[2].keys if k.startswith("gen_ai.prompt.")]
    assert prompt_keys == [f"gen_ai.prompt.{i}.{part}" for i in range(6)
                           for part in ("content", "role")]
    assert first["gen_ai.usage.cache_read_input_tokens"] == 50
    assert first["gen_ai.usage.total_tokens"] == 170

    (tool_span,) = [s for s in spans if s.name == "lookup.tool"]
    assert not [k for k in tool_span.keys if k.startswith("gen_ai.")]
    t = tool_span.attrs
    assert (t["agentops.span.kind"], t["tool.name"], t["tool.status"]) == (
        "tool", "lookup", "succeeded")
    assert t["tool.parameters"] == '{"item":"widget"}'
    assert t["tool.result"] == "widget: 3 in stock"
    turns = sorted((s for s in spans if s.name == "shop.agent"), key=lambda s: s.start)
    assert turns[1].attrs["agentops.entity.input"] == "thanks"

    # A bearer token the fake issued on every export; the resource names the service.
    assert fake_agentops.exports
    for export in fake_agentops.exports:
        assert export.headers["authorization"].startswith("Bearer tok-")
        assert export.headers["content-type"] == "application/x-protobuf"
    assert root.resource["service.name"] == "opencell"
    text = caplog.text
    assert "[AgentOps] Initialized successfully" in text
    assert f"url=https://app.example/sessions?trace_id={trace}" in text
    assert "6f1c2a4e" not in text and "tok-" not in text  # neither key nor token logged


async def test_export_content_false_sends_shapes_without_content(
        isolated_store: str, fake_agentops: FakeAgentOps) -> None:
    obs = Observability.from_config(
        agentops_config(isolated_store, fake_agentops, export_content=False),
        export_tuning=FAST)
    await two_turns(obs)
    obs.close(export_timeout=WAIT)  # delivered, however busy the machine
    spans = fake_agentops.spans
    assert len(spans) == 7
    keys = {key for span in spans for key in span.keys}
    for absent in ("gen_ai.prompt.0.content", "gen_ai.completion.0.content",
                   "tool.parameters", "tool.result", "agentops.entity.input",
                   "agentops.entity.output"):
        assert absent not in keys
    text = repr([span.attributes for span in spans])
    assert "widgets" not in text and "in stock" not in text
    llm = [s for s in spans if s.name == "anthropic.llm"]
    assert all(s.attrs["gen_ai.usage.total_cost"] > 0 for s in llm)


async def test_a_failed_tool_and_session_are_errors_with_the_stack(
        isolated_store: str, fake_agentops: FakeAgentOps) -> None:
    from opencell.llm.base import LLMRequest, ToolCall
    from opencell.runtime import BotRuntime
    from tests.exporters._conversation import message, shop_bot
    from tests.fakes.function_llm import FunctionLLM, answer

    def play(request: LLMRequest) -> object:
        if request.messages[-1].role == "user":
            return answer(calls=[ToolCall(id="c9", name="lookup", arguments={"item": "w"})])
        return "sorry"

    obs = Observability.from_config(agentops_config(isolated_store, fake_agentops),
                                    export_tuning=FAST)
    bot = shop_bot("broken_lookup")
    runtime = BotRuntime(bot, llm=FunctionLLM(play), observability=obs)
    await runtime.dispatch(message("how many widgets?"))
    obs.custom(runtime.session_for(message("x").key).id,  # type: ignore[union-attr]
               "inventory_check", {"items": 1})
    await runtime.aclose()
    obs.close(export_timeout=WAIT)  # delivered, however busy the machine
    spans = fake_agentops.spans
    by_name = {span.name: span for span in spans}
    tool_span = by_name["lookup.tool"]
    assert tool_span.status_code == 2 and tool_span.status_message.startswith(
        "ToolExecutionError: ")
    assert tool_span.attrs["tool.status"] == "failed"
    ((event_name, event),) = tool_span.events
    assert event_name == "exception" and "broken_lookup" in event["exception.stacktrace"]
    assert not [s for s in spans if s.name == "ToolExecutionError.operation"]  # not twice
    root = by_name["shop.session"]
    assert root.status_code == 2
    assert root.attrs["agentops.session.end_state"] == "Fail"
    custom = by_name["inventory_check.operation"]
    assert custom.attrs["agentops.span.kind"] == "operation"
    assert custom.attrs["agentops.entity.input"] == '{"items":1}'


def test_a_wrong_key_is_logged_in_one_clear_line(
        isolated_store: str, fake_agentops: FakeAgentOps,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="opencell")
    obs = Observability.from_config(agentops_config(
        isolated_store, fake_agentops, api_key="00000000-0000-4000-8000-000000000000"),
        export_tuning=FAST)
    wait_for(lambda: len(fake_agentops.auth_calls) >= 2)
    obs.close()
    lines = [r.getMessage() for r in caplog.records if "Could not initialize" in
             r.getMessage()]
    assert len(lines) == 1
    assert "AGENTOPS_API_KEY was rejected by AgentOps (HTTP 403" in lines[0]
    assert "00000000-0000" not in caplog.text
