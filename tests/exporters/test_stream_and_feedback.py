"""Streamed calls and feedback in the exported spans: OTLP (GenAI conventions: the time to
first chunk, evaluation results) and AgentOps (the same attributes on its spans)."""

from __future__ import annotations

import time

from opencell.llm.base import ChatMessage, LLMRequest, LLMResponse, Usage
from opencell.observability.facade import AgentOpsFacade
from opencell.observability.observer import Observability
from tests.exporters.conftest import FAST, agentops_config, otlp_config
from tests.fakes.agentops_server import FakeAgentOps
from tests.fakes.otlp_receiver import OTLPReceiver, ReceivedSpan
from tests.fakes.waiting import WAIT

MODEL = "claude-sonnet-4-20250514"


def record(obs: Observability) -> str:
    """A session with one streamed call, a 👍 retracted and a 👎 with a comment."""
    facade = AgentOpsFacade(obs)
    session_id = facade.start_session(bot_name="shop", user_id="u1", platform="test")
    started = time.time()
    request = LLMRequest(system="", messages=[ChatMessage("user", "hi")], max_tokens=10)
    response = LLMResponse(text="hello", usage=Usage(10, 5), model=MODEL)
    obs.llm_call(session_id, provider="claude", model=MODEL, request=request,
                 response=response, started=started, duration_ms=900.0,
                 stream={"time_to_first_token_ms": 250.0, "streaming_ms": 650.0})
    facade.track_feedback(session_id, "good", turn="m1", user_id="u1")
    facade.track_feedback(session_id, None, turn="m1", user_id="u1")
    facade.track_feedback(session_id, "bad", turn="m1", user_id="u1", comment="too vague")
    facade.end_session(session_id)
    return session_id


def check(spans: list[ReceivedSpan], chat_name: str, feedback_name: str) -> None:
    [chat] = [s for s in spans if s.name == chat_name]
    assert chat.attrs["gen_ai.response.time_to_first_chunk"] == 0.25
    assert chat.attrs["langfuse.observation.completion_start_time"].endswith("Z")
    ratings = sorted((s for s in spans if s.name == feedback_name), key=lambda s: s.start)
    assert [(s.attrs["gen_ai.evaluation.score.label"], s.attrs["gen_ai.evaluation.score.value"])
            for s in ratings] == [("good", 1.0), ("retracted", 0.0), ("bad", -1.0)]
    last = ratings[-1]
    assert last.attrs["gen_ai.evaluation.name"] == "user_feedback"
    assert last.attrs["opencell.feedback.turn"] == "m1"
    assert last.attrs["gen_ai.evaluation.explanation"] == "too vague"
    assert [name for name, _ in last.events] == ["gen_ai.evaluation.result"]
    assert last.events[0][1]["gen_ai.evaluation.score.label"] == "bad"


async def test_otlp_spans_carry_time_to_first_chunk_and_feedback_evaluations(
        isolated_store: str, otlp_receiver: OTLPReceiver) -> None:
    obs = Observability.from_config(otlp_config(isolated_store, otlp_receiver),
                                    export_tuning=FAST)
    record(obs)
    obs.close(export_timeout=WAIT)
    check(otlp_receiver.spans, f"chat {MODEL}", "feedback")


async def test_agentops_gets_the_feedback_as_its_own_event(
        isolated_store: str, fake_agentops: FakeAgentOps) -> None:
    obs = Observability.from_config(agentops_config(isolated_store, fake_agentops),
                                    export_tuning=FAST)
    record(obs)
    obs.close(export_timeout=WAIT)
    check(fake_agentops.spans, "anthropic.llm", "feedback.operation")
