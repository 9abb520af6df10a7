"""What a tool returns or raises is redacted before the model reads it (and so before the model
can repeat it to the chat user): configured secrets, the bot's own key, known token shapes."""

from __future__ import annotations

from typing import Any

from opencell.config import BotConfig, LLMConfig
from opencell.llm.base import LLMRequest, ToolCall
from opencell.messages import ConversationKey, IncomingMessage
from opencell.observability.observer import Observability
from opencell.observability.recorder import NullRecorder
from opencell.observability.redact import Redactor
from opencell.runtime import BotRuntime
from opencell.tools import Toolbox
from opencell.tools.policy import EnabledTool
from opencell.tools.registry import tool
from tests.fakes.function_llm import FunctionLLM, answer
from tests.observability.test_redact import ANTHROPIC, JWT

OWN_KEY = "opaque-own-api-key-000111222"
"""The bot's own API key, in no known shape: only the configuration names it."""


def failing_login() -> str:
    """Calls an upstream API that rejects the key and quotes it back."""
    raise RuntimeError(f"401 Unauthorized: invalid x-api-key '{OWN_KEY}' (also tried {ANTHROPIC})")


def leaky_status() -> str:
    """Returns a status page that happens to contain a session token."""
    return f"status ok; session={JWT}; env ANTHROPIC_API_KEY={OWN_KEY}"


async def test_tool_results_and_errors_reach_the_model_redacted() -> None:
    def play(req: LLMRequest) -> Any:
        if req.messages[-1].role == "user":
            return answer(calls=[ToolCall(id="c1", name="failing_login", arguments={}),
                                 ToolCall(id="c2", name="leaky_status", arguments={})])
        # The model repeats what the tools said, as models do.
        return " | ".join(m.content for m in req.messages if m.role == "tool")

    llm = FunctionLLM(play)
    toolbox = Toolbox([EnabledTool(tool=tool(failing_login), options=None, timeout=5.0),
                       EnabledTool(tool=tool(leaky_status), options=None, timeout=5.0)],
                      bot="agent")
    observability = Observability(
        NullRecorder(), redactor=Redactor.from_env({"ANTHROPIC_API_KEY": OWN_KEY}))
    runtime = BotRuntime(BotConfig(name="agent", type="agent", llm=LLMConfig(provider="offline")),
                         llm=llm, tools=toolbox, observability=observability)
    key = ConversationKey(bot="agent", platform="test", channel="c", user="u")
    reply = await runtime.dispatch(IncomingMessage(key=key, text="log in", user_id="u"))

    error_result, status_result = llm.requests[1].messages[-2:]
    assert error_result.is_error and error_result.content.startswith(
        "RuntimeError: 401 Unauthorized: invalid x-api-key '[REDACTED:secret]'")
    assert "[REDACTED:anthropic_key]" in error_result.content
    assert status_result.content == (
        "status ok; session=[REDACTED:jwt]; env ANTHROPIC_API_KEY=[REDACTED:secret]")
    assert reply is not None
    for secret in (OWN_KEY, ANTHROPIC, JWT):
        assert secret not in reply.text
        assert all(secret not in m.content for m in llm.requests[1].messages)
