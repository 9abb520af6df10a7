"""OTLP acceptance: a trace per turn, GenAI and OpenInference attributes, content opt-in."""

from __future__ import annotations

import gzip
import json
from collections import Counter

from opencell.observability.observer import Observability
from tests.exporters._conversation import MODEL, two_turns
from tests.exporters.conftest import FAST, otlp_config, wait_for
from tests.fakes.otlp_receiver import OTLPReceiver, ReceivedSpan
from tests.fakes.waiting import WAIT

NAMES = Counter({"invoke_agent shop": 2, f"chat {MODEL}": 3, "execute_tool lookup": 1})
SYSTEM = "You are a helpful assistant."


def by_trace(spans: list[ReceivedSpan]) -> dict[str, list[ReceivedSpan]]:
    traces: dict[str, list[ReceivedSpan]] = {}
    for span in sorted(spans, key=lambda s: s.start):
        traces.setdefault(span.trace_id, []).append(span)
    return traces


async def test_two_turn_agent_session_decodes_as_two_traces_with_the_whole_input(
        isolated_store: str, otlp_receiver: OTLPReceiver) -> None:
    """The issue's acceptance: what a Phoenix or Langfuse user needs, decoded from the wire."""
    obs = Observability.from_config(
        otlp_config(isolated_store, otlp_receiver, export_content=True), export_tuning=FAST)
    session_id = await two_turns(obs)
    obs.close(export_timeout=WAIT)
    spans = otlp_receiver.spans
    assert Counter(span.name for span in spans) == NAMES
    traces = list(by_trace(spans).values())
    assert len(traces) == 2  # one per turn
    for span in spans:  # every span says which conversation and user it belongs to
        a = span.attrs
        assert (a["session.id"], a["gen_ai.conversation.id"], a["user.id"]) == (
            session_id, session_id, "u1")
    first, second = traces
    for trace, (asked, answered) in zip(traces, [
            ("how many widgets do you have?", "answer to widget: 3 in stock"),
            ("thanks", "answer to thanks")], strict=True):
        (root,) = [s for s in trace if s.parent_span_id == ""]
        assert root.name == "invoke_agent shop"
        assert all(s.parent_span_id == root.span_id for s in trace if s is not root)
        r = root.attrs
        assert r["openinference.span.kind"] == "AGENT"
        assert (r["input.value"], r["output.value"]) == (asked, answered)
        assert (r["gen_ai.provider.name"], r["gen_ai.request.model"]) == ("anthropic", MODEL)
        assert not any(key.startswith(("llm.token_count", "gen_ai.usage")) for key in r)
    assert [s.name for s in first] == ["invoke_agent shop", f"chat {MODEL}",
                                       "execute_tool lookup", f"chat {MODEL}"]
    # The second turn's first model call was sent the system prompt, turn 1 and turn 2.
    chat = next(s for s in second if s.name.startswith("chat")).attrs
    assert json.loads(chat["gen_ai.system_instructions"]) == [
        {"type": "text", "content": SYSTEM}]
    messages = json.loads(chat["gen_ai.input.messages"])
    assert [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant", "user"]
    assert messages[0]["parts"] == [{"type": "text",
                                     "content": "how many widgets do you have?"}]
    assert messages[1]["parts"] == [
        {"type": "text", "content": "let me check"},
        {"type": "tool_call", "id": "call-1", "name": "lookup",
         "arguments": {"item": "widget"}}]
    assert messages[2]["parts"] == [{"type": "tool_call_response", "id": "call-1",
                                     "response": "widget: 3 in stock"}]
    assert messages[4]["parts"] == [{"type": "text", "content": "thanks"}]
    tools = json.loads(chat["gen_ai.tool.definitions"])
    assert [t["name"] for t in tools] == ["lookup"] and "item" in json.dumps(tools[0])
    # OpenInference says the same: the whole input, system prompt first.
    value = json.loads(chat["input.value"])
    assert [m["role"] for m in value["messages"]] == [
        "system", "user", "assistant", "tool", "assistant", "user"]
    assert chat["llm.input_messages.0.message.content"] == SYSTEM
    assert chat["llm.input_messages.2.message.tool_calls.0.tool_call.function.name"] == \
        "lookup"
    assert chat["llm.input_messages.3.message.tool_call_id"] == "call-1"
    assert chat["llm.output_messages.0.message.content"] == "answer to thanks"
    assert chat["output.value"] == "answer to thanks"
    assert json.loads(chat["llm.tools.0.tool.json_schema"])["function"]["name"] == "lookup"
    # The tool-use answer carries its tool call; the finish reason is the convention's.
    tool_use = next(s for s in first if s.name.startswith("chat")).attrs
    out = json.loads(tool_use["gen_ai.output.messages"])
    assert out[0]["finish_reason"] == "tool_call" and out[0]["parts"][1] == {
        "type": "tool_call", "id": "call-1", "name": "lookup", "arguments": {"item": "widget"}}
    assert tool_use["gen_ai.response.finish_reasons"] == ["tool_call"]
    assert tool_use["llm.output_messages.0.message.tool_calls.0.tool_call.id"] == "call-1"
    # Tokens and span kinds on every LLM and TOOL span; the totals add up once per trace.
    for span in spans:
        a = span.attrs
        if span.name.startswith("chat"):
            assert a["openinference.span.kind"] == "LLM"
            assert a["llm.token_count.prompt"] == a["gen_ai.usage.input_tokens"] > 0
            assert a["llm.token_count.completion"] == a["gen_ai.usage.output_tokens"] > 0
            assert a["llm.token_count.total"] == (a["llm.token_count.prompt"]
                                                 + a["llm.token_count.completion"])
            assert a["llm.model_name"] == MODEL
        elif span.name.startswith("execute_tool"):
            assert a["openinference.span.kind"] == "TOOL" and a["tool.name"] == "lookup"
            assert (a["input.value"], a["output.value"]) == ('{"item":"widget"}',
                                                             "widget: 3 in stock")
    assert sum(s.attrs.get("llm.token_count.prompt", 0) for s in first) == 150 + 120


async def test_genai_spans_without_content_by_default(isolated_store: str,
                                                       otlp_receiver: OTLPReceiver) -> None:
    obs = Observability.from_config(
        otlp_config(isolated_store, otlp_receiver, headers={"x-api-key": "collector-secret"}),
        export_tuning=FAST)
    session_id = await two_turns(obs)
    obs.close(export_timeout=WAIT)  # delivered, however busy the machine
    spans = otlp_receiver.spans
    assert Counter(span.name for span in spans) == NAMES
    assert len(by_trace(spans)) == 2
    roots = [s for s in spans if s.name == "invoke_agent shop"]
    for root in roots:
        assert root.parent_span_id == ""
        assert root.attrs["gen_ai.operation.name"] == "invoke_agent"
        assert root.attrs["gen_ai.agent.name"] == "shop"
    for span in spans:
        a = span.attrs
        assert (a["gen_ai.conversation.id"], a["session.id"], a["user.id"]) == (
            session_id, session_id, "u1")
    chats = sorted((s for s in spans if s.name.startswith("chat ")), key=lambda s: s.start)
    first = chats[0].attrs
    assert chats[0].kind == 3  # CLIENT
    assert (first["gen_ai.operation.name"], first["gen_ai.provider.name"],
            first["gen_ai.request.model"], first["gen_ai.response.model"]) == (
        "chat", "anthropic", MODEL, MODEL)
    # input tokens include the cached ones, which are also given on their own
    assert (first["gen_ai.usage.input_tokens"], first["gen_ai.usage.output_tokens"],
            first["gen_ai.usage.cache_read.input_tokens"],
            first["gen_ai.usage.cache_creation.input_tokens"],
            first["gen_ai.usage.cache_write.input_tokens"]) == (150, 20, 50, 0, 0)
    assert first["gen_ai.response.finish_reasons"] == ["tool_call"]
    assert first["gen_ai.request.max_tokens"] == 1024
    (tool_span,) = [s for s in spans if s.name == "execute_tool lookup"]
    t = tool_span.attrs
    assert (t["gen_ai.operation.name"], t["gen_ai.tool.name"], t["gen_ai.tool.call.id"]) == (
        "execute_tool", "lookup", "call-1")
    keys = {key for span in spans for key in span.keys}
    assert not keys & {"gen_ai.input.messages", "gen_ai.output.messages",
                       "gen_ai.tool.call.arguments", "gen_ai.tool.call.result",
                       "gen_ai.system_instructions", "input.value", "output.value"}
    assert "widget" not in repr([s.attributes for s in spans])
    assert all(r.headers["x-api-key"] == "collector-secret" for r in otlp_receiver.requests)
    assert roots[0].resource["service.name"] == "opencell"


async def test_otel_environment_variables(isolated_store: str,
                                          otlp_receiver: OTLPReceiver) -> None:
    from opencell.config import OpenCellConfig, StoreConfig

    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9/ignored",
           "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": otlp_receiver.url + "/v1/traces",
           "OTEL_SERVICE_NAME": "support-bots",
           "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=prod,team=a%20b",
           "OTEL_EXPORTER_OTLP_HEADERS": "x-one=1,x-two=general",
           "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x-two=traces",
           "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"}
    obs = Observability.from_config(OpenCellConfig(store=StoreConfig(url=isolated_store)),
                                    env=env, export_tuning=FAST)
    await two_turns(obs)
    obs.close(export_timeout=WAIT)
    wait_for(lambda: len(otlp_receiver.spans) == 6)
    request = otlp_receiver.requests[0]
    assert (request.headers["x-one"], request.headers["x-two"]) == ("1", "traces")
    assert request.headers["content-encoding"] == "gzip"
    assert gzip.decompress(request.body)  # the receiver decoded it from gzip on the wire
    resource = otlp_receiver.spans[0].resource
    assert resource["service.name"] == "support-bots"
    assert (resource["deployment.environment"], resource["team"]) == ("prod", "a b")


async def test_otel_endpoint_variable_enables_the_exporter(isolated_store: str,
                                                           otlp_receiver: OTLPReceiver) -> None:
    from opencell.config import OpenCellConfig, StoreConfig

    obs = Observability.from_config(
        OpenCellConfig(store=StoreConfig(url=isolated_store)),
        env={"OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.url + "/"}, export_tuning=FAST)
    await two_turns(obs)
    obs.close(export_timeout=WAIT)  # delivered, however busy the machine
    wait_for(lambda: len(otlp_receiver.spans) == 6)


async def test_a_failed_model_call_is_one_error_span_and_fails_its_turn(
        isolated_store: str, otlp_receiver: OTLPReceiver) -> None:
    from opencell.config import BotConfig, LLMConfig
    from opencell.llm.base import LLMRequest
    from opencell.runtime import BotRuntime
    from tests.exporters._conversation import message
    from tests.fakes.function_llm import FunctionLLM

    def explode(request: LLMRequest) -> None:
        raise RuntimeError("provider exploded")

    obs = Observability.from_config(otlp_config(isolated_store, otlp_receiver),
                                    export_tuning=FAST)
    bot = BotConfig(name="shop", llm=LLMConfig(provider="claude", model=MODEL))
    runtime = BotRuntime(bot, llm=FunctionLLM(explode, provider="claude", model=MODEL),
                         observability=obs)
    await runtime.dispatch(message("hello?"))
    await runtime.aclose()
    obs.close(export_timeout=WAIT)
    spans = otlp_receiver.spans
    assert sorted(s.name for s in spans) == [f"chat {MODEL}", "invoke_agent shop"]
    (root,) = [s for s in spans if s.parent_span_id == ""]
    (chat,) = [s for s in spans if s is not root]
    assert chat.status_code == 2 and chat.attrs["error.type"] == "RuntimeError"
    assert root.status_code == 2  # the turn failed, with the stack on its exception event
    ((name, event),) = root.events
    assert name == "exception" and "provider exploded" in event["exception.stacktrace"]
