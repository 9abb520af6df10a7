"""OTLP acceptance: GenAI-convention spans any OpenTelemetry backend decodes; content opt-in."""

from __future__ import annotations

import uuid
from collections import Counter

from opencell.observability.observer import Observability
from tests.exporters._conversation import MODEL, two_turns
from tests.exporters.conftest import FAST, otlp_config, wait_for
from tests.fakes.otlp_receiver import OTLPReceiver
from tests.fakes.waiting import WAIT

NAMES = Counter({"invoke_agent shop": 1, f"chat {MODEL}": 3, "execute_tool lookup": 1})


async def test_genai_spans_without_content_by_default(isolated_store: str,
                                                       otlp_receiver: OTLPReceiver) -> None:
    obs = Observability.from_config(
        otlp_config(isolated_store, otlp_receiver, headers={"x-api-key": "collector-secret"}),
        export_tuning=FAST)
    session_id = await two_turns(obs)
    obs.close(export_timeout=WAIT)  # delivered, however busy the machine
    spans = otlp_receiver.spans
    assert Counter(span.name for span in spans) == NAMES
    assert {span.trace_id for span in spans} == {f"{uuid.UUID(session_id).int:032x}"}
    (root,) = [s for s in spans if s.name == "invoke_agent shop"]
    assert root.parent_span_id == "" and all(root.start < s.start for s in spans
                                             if s is not root)
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
            first["gen_ai.usage.cache_creation.input_tokens"]) == (150, 20, 50, 0)
    assert first["gen_ai.response.finish_reasons"] == ["tool_use"]
    (tool_span,) = [s for s in spans if s.name == "execute_tool lookup"]
    t = tool_span.attrs
    assert (t["gen_ai.operation.name"], t["gen_ai.tool.name"], t["gen_ai.tool.call.id"]) == (
        "execute_tool", "lookup", "call-1")
    keys = {key for span in spans for key in span.keys}
    assert not keys & {"gen_ai.input.messages", "gen_ai.output.messages",
                       "gen_ai.tool.call.arguments", "gen_ai.tool.call.result"}
    assert "widget" not in repr([s.attributes for s in spans])
    assert all(r.headers["x-api-key"] == "collector-secret" for r in otlp_receiver.requests)
    assert root.resource["service.name"] == "opencell"


async def test_content_only_with_export_content(isolated_store: str,
                                                otlp_receiver: OTLPReceiver) -> None:
    obs = Observability.from_config(
        otlp_config(isolated_store, otlp_receiver, export_content=True), export_tuning=FAST)
    await two_turns(obs)
    obs.close(export_timeout=WAIT)  # delivered, however busy the machine
    spans = otlp_receiver.spans
    chats = sorted((s for s in spans if s.name.startswith("chat ")), key=lambda s: s.start)
    assert '"content":"how many widgets do you have?"' in chats[0].attrs[
        "gen_ai.input.messages"]
    assert '"content":"let me check"' in chats[0].attrs["gen_ai.output.messages"]
    (tool_span,) = [s for s in spans if s.name == "execute_tool lookup"]
    assert tool_span.attrs["gen_ai.tool.call.arguments"] == '{"item":"widget"}'
    assert tool_span.attrs["gen_ai.tool.call.result"] == "widget: 3 in stock"


async def test_otel_endpoint_variable_enables_the_exporter(isolated_store: str,
                                                           otlp_receiver: OTLPReceiver) -> None:
    from opencell.config import OpenCellConfig, StoreConfig

    obs = Observability.from_config(
        OpenCellConfig(store=StoreConfig(url=isolated_store)),
        env={"OTEL_EXPORTER_OTLP_ENDPOINT": otlp_receiver.url + "/"}, export_tuning=FAST)
    await two_turns(obs)
    obs.close(export_timeout=WAIT)  # delivered, however busy the machine
    wait_for(lambda: len(otlp_receiver.spans) == 5)
