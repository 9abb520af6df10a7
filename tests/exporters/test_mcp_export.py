"""A tool of an MCP server is exported as an ``execute_tool`` span naming the server."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from opencell.llm.base import LLMRequest, ToolCall
from opencell.loading import load_bot
from opencell.messages import ConversationKey, IncomingMessage
from opencell.observability.observer import Observability
from opencell.runtime import BotRuntime
from tests.conftest import REPO
from tests.exporters.conftest import FAST, otlp_config
from tests.fakes.function_llm import FunctionLLM, answer
from tests.fakes.otlp_receiver import OTLPReceiver
from tests.fakes.waiting import WAIT


async def test_an_mcp_tool_call_is_an_execute_tool_span_naming_the_server(
        tmp_path: Path, isolated_store: str, otlp_receiver: OTLPReceiver) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(
        "name: agent\ntype: agent\nllm: {provider: offline}\ntools:\n"
        f"  - mcp: {{command: {json.dumps(sys.executable)}, args: [-m, tests.fakes.mcp_server],"
        f" cwd: {json.dumps(str(REPO))}}}\n    name: acme\n    allow: [add]\n")
    bot = load_bot(path, {})
    obs = Observability.from_config(otlp_config(isolated_store, otlp_receiver),
                                    export_tuning=FAST)

    def play(req: LLMRequest) -> Any:
        if req.messages[-1].role == "user":
            return answer(calls=[ToolCall(id="call-7", name="add", arguments={"a": 2, "b": 3})])
        return req.messages[-1].content

    runtime = BotRuntime(bot, llm=FunctionLLM(play), observability=obs)
    await runtime.start()
    key = ConversationKey(bot="agent", platform="test", channel="c", user="u")
    reply = await runtime.dispatch(IncomingMessage(key=key, text="2+3?", user_id="u"))
    assert reply is not None and reply.text == "5"
    await runtime.aclose()
    obs.close(export_timeout=WAIT)
    (span,) = [s for s in otlp_receiver.spans if s.name == "execute_tool add"]
    assert (span.attrs["gen_ai.tool.type"], span.attrs["opencell.tool.server"],
            span.attrs["gen_ai.tool.call.id"]) == ("extension", "acme", "call-7")
