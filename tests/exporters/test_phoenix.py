"""Against a real Arize Phoenix (optional): set ``OPENCELL_PHOENIX_URL`` (e.g.
``http://127.0.0.1:6006`` after ``pip install arize-phoenix && phoenix serve`` in a venv of its
own) to run it; skipped otherwise. Phoenix is not a dependency of OpenCell.

What a Phoenix user must see (issue 14): the Sessions view lists the conversation with its
first input and last output while it is still open, every trace has its root (no orphan), and
the LLM spans carry tokens and — for a model Phoenix has a price for — cost.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

import httpx
import pytest

import tests.exporters._conversation as conversation
from opencell.config import ObservabilityConfig, OpenCellConfig, OTLPConfig, StoreConfig
from opencell.observability.observer import Observability
from opencell.runtime import BotRuntime
from tests.exporters.conftest import FAST
from tests.fakes.function_llm import FunctionLLM
from tests.fakes.waiting import WAIT, until_sync

PHOENIX = os.environ.get("OPENCELL_PHOENIX_URL", "").rstrip("/")
PRICED_MODEL = "claude-sonnet-4-5"  # in Phoenix's own price table (it ignores llm.cost.*)

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not PHOENIX, reason="set OPENCELL_PHOENIX_URL to a Phoenix")]

QUERY = """query { projects { edges { node { name
  sessions(first: 10) { edges { node { sessionId userId numTraces firstInput { value }
     lastOutput { value } tokenUsage { total } costSummary { total { cost } } } } }
  spans(first: 100) { edges { node { name spanKind parentId spanId tokenCountTotal
     context { traceId } costSummary { total { cost } } } } } } } } }"""


def project(name: str) -> dict[str, Any] | None:
    answer = httpx.post(f"{PHOENIX}/graphql", json={"query": QUERY}, timeout=30).json()
    for edge in answer["data"]["projects"]["edges"]:
        if edge["node"]["name"] == name:
            node: dict[str, Any] = edge["node"]
            return node
    return None


def spans_of(node: dict[str, Any]) -> list[dict[str, Any]]:
    return [edge["node"] for edge in node["spans"]["edges"]]


async def test_phoenix_shows_the_session_while_it_is_open(
        isolated_store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conversation, "MODEL", PRICED_MODEL)
    name = f"opencell-test-{uuid.uuid4().hex[:8]}"
    obs = Observability.from_config(
        OpenCellConfig(store=StoreConfig(url=isolated_store), observability=ObservabilityConfig(
            otlp=OTLPConfig(endpoint=PHOENIX, export_content=True))),
        env={"OTEL_RESOURCE_ATTRIBUTES": f"openinference.project.name={name}"},
        export_tuning=FAST)
    runtime = BotRuntime(conversation.shop_bot(), observability=obs, llm=FunctionLLM(
        conversation.play, provider="claude", model=PRICED_MODEL))
    await runtime.dispatch(conversation.message("how many widgets do you have?"))
    await runtime.dispatch(conversation.message("thanks"))
    session = runtime.session_for(conversation.message("x").key)
    assert session is not None
    obs.recorder.flush(WAIT)

    def both_turns_in() -> bool:
        node = project(name)
        return node is not None and len({s["context"]["traceId"] for s in spans_of(node)}) == 2 \
            and len(spans_of(node)) == 6

    until_sync(both_turns_in, "Phoenix has both turns", WAIT)
    time.sleep(0.5)
    node = project(name)
    assert node is not None
    (listed,) = [edge["node"] for edge in node["sessions"]["edges"]]
    assert listed["sessionId"] == session.id and listed["userId"] == "u1"
    assert listed["numTraces"] == 2
    assert listed["firstInput"]["value"] == "how many widgets do you have?"
    assert listed["lastOutput"]["value"] == "answer to thanks"
    assert listed["tokenUsage"]["total"] == 170 + 150 + 150
    assert listed["costSummary"]["total"]["cost"] > 0
    spans = spans_of(node)
    ids = {s["spanId"] for s in spans}
    assert all(s["parentId"] in ids for s in spans if s["parentId"])  # no orphan
    assert sorted(s["spanKind"] for s in spans if s["parentId"] is None) == ["agent", "agent"]
    for span in spans:
        if span["spanKind"] == "llm":
            assert span["tokenCountTotal"] > 0 and span["costSummary"]["total"]["cost"] > 0
    await runtime.aclose()
    obs.close(export_timeout=WAIT)
