"""Every model call's whole input on record, stored as the change since the previous call."""

from __future__ import annotations

import json
from typing import Any

from opencell.config import BotConfig, LLMConfig
from opencell.llm.base import ChatMessage, LLMRequest, LLMResponse, ToolSpec, Usage
from opencell.messages import ConversationKey, IncomingMessage
from opencell.observability.observer import Observability
from opencell.observability.recorder import NullRecorder
from opencell.runtime import BotRuntime
from opencell.transcript import rebuild
from tests.fakes.function_llm import FunctionLLM, answer


class Captured(NullRecorder):
    """Keeps what is emitted (the records, before any store)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[tuple[str, str, dict[str, Any]]] = []

    def emit(self, kind: Any, session_id: str, name: str, data: Any, duration_ms: Any = None,
             success: Any = None, ts: Any = None) -> None:
        # Through JSON, as the store keeps it: what readers rebuild from.
        self.records.append((kind, session_id, json.loads(json.dumps(data))))


def as_stored(message: ChatMessage) -> dict[str, Any]:
    out: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        out["tool_calls"] = [{"id": c.id, "name": c.name, "arguments": dict(c.arguments)}
                             for c in message.tool_calls]
    if message.role == "tool":
        out["tool_call_id"] = message.tool_call_id
        if message.tool_name:
            out["name"] = message.tool_name
    return out


async def test_a_windowed_history_is_rebuilt_exactly_from_linear_deltas() -> None:
    recorder = Captured()
    obs = Observability(recorder)  # type: ignore[arg-type]
    sent: list[LLMRequest] = []

    def model(request: LLMRequest) -> Any:
        sent.append(request)
        return answer(f"reply {len(sent)}", usage=Usage(10, 5))

    bot = BotConfig(name="b", llm=LLMConfig(provider="claude", model="m"),
                    system_prompt="Be brief.", session={"history_turns": 2})
    runtime = BotRuntime(bot, llm=FunctionLLM(model, provider="claude", model="m"),
                         observability=obs)
    key = ConversationKey(bot="b", platform="t", channel="c", user="u")
    for n in range(6):
        await runtime.dispatch(IncomingMessage(key=key, text=f"question {n}", user_id="u"))
    calls = [data for kind, _, data in recorder.records if kind == "llm_call"]
    inputs = rebuild(calls)
    for request, rebuilt in zip(sent, inputs, strict=True):
        assert list(rebuilt.messages) == [as_stored(m) for m in request.messages]
        assert rebuilt.system == "Be brief." and rebuilt.missing == 0
    # The window (2 turns) drops the oldest turn: later calls start further into the last one.
    assert [c["input"]["from"] for c in calls] == [0, 0, 0, 2, 2, 2]
    assert all(len(c["input"]["add"]) <= 2 for c in calls)  # what is new, never the history
    assert "system" in calls[0] and all("system" not in c for c in calls[1:])
    assert [m["turn"] for k, _, m in recorder.records if k == "llm_call"] == [1, 2, 3, 4, 5, 6]
    await runtime.aclose()
    assert len(obs.inputs) == 0  # the session's state is dropped when it closes


def test_a_lost_record_is_a_visible_gap_and_tool_changes_are_recorded() -> None:
    recorder = Captured()
    obs = Observability(recorder)  # type: ignore[arg-type]
    spec = ToolSpec("lookup", "Look it up.", {"type": "object"})
    history: list[ChatMessage] = []
    reply = LLMResponse("ok", Usage(1, 1), "m")
    for n in range(4):
        history.append(ChatMessage("user", f"message {n}"))
        obs.llm_call("s", provider="claude", model="m", response=reply, started=0.0,
                     duration_ms=1.0, request=LLMRequest("sys", tuple(history), 100,
                                                          tools=(spec,) if n >= 2 else ()))
    calls = [data for kind, _, data in recorder.records if kind == "llm_call"]
    assert [c.get("tools_offered") for c in calls] == [
        [], None, [{"name": "lookup", "description": "Look it up.",
                    "parameters": {"type": "object"}}], None]
    whole = rebuild(calls)
    assert [t["name"] for t in whole[3].tools] == ["lookup"] and whole[3].missing == 0
    gapped = rebuild([calls[0], calls[1], calls[3]])  # the third record was lost
    assert gapped[2].missing == 3
    assert [m["content"] for m in gapped[2].messages] == ["message 3"]


def test_no_input_is_kept_without_content_capture() -> None:
    recorder = Captured()
    obs = Observability(recorder, capture_content=False)  # type: ignore[arg-type]
    obs.llm_call("s", provider="claude", model="m", started=0.0, duration_ms=1.0,
                 request=LLMRequest("secret system", (ChatMessage("user", "hi"),), 100),
                 response=LLMResponse("there", Usage(1, 1), "m"))
    (_, _, data), = recorder.records
    assert not {"input", "system", "tools_offered", "completion"} & set(data)
    assert data["max_tokens"] == 100
