"""Benchmark: the store grows linearly with a conversation although every call's input is kept.

Run: python benchmarks/transcript.py [--quick]    (or python -m benchmarks --only transcript)

One agent conversation of ``TURNS`` turns (each: the user's message, a tool call, its result,
the answer; the same sizes every turn) through ``BotRuntime`` with content capture on and a
history window larger than the conversation, so turn 50's model calls are sent 49 turns of
history. After every turn the recorder is flushed and the bytes the turn added to the store
(its events' data plus any shared texts) are counted.

Figures:

1. bytes stored by turn 50 ÷ bytes stored by turn 1 — target ≤ 2 (issue 14). The baseline in
   the same run: what turn 50 would store if every call kept its whole input (the rebuilt
   inputs, measured), i.e. the quadratic growth the deltas avoid;
2. the caller's cost of recording one ``llm_call`` at turn 50 (``Observability.llm_call``
   with its 100-message request), content capture on vs off — what the deltas add to a turn;
3. ``record()`` on the caller and sustained SQLite ingest (the recorder benchmark's figures,
   run here too so the change is checked against issue 3's targets in the same run).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa  # noqa: E402

from benchmarks._report import Figure, run_main  # noqa: E402
from opencell.config import BotConfig, LLMConfig, OpenCellConfig, StoreConfig  # noqa: E402
from opencell.llm.base import LLMRequest, LLMResponse, ToolCall, Usage  # noqa: E402
from opencell.messages import ConversationKey, IncomingMessage  # noqa: E402
from opencell.observability.observer import Observability  # noqa: E402
from opencell.runtime import BotRuntime  # noqa: E402
from opencell.store.tables import events, texts  # noqa: E402
from opencell.tools import tool  # noqa: E402
from opencell.transcript import rebuild  # noqa: E402

TURNS = 50
TARGET_GROWTH = 2.0
QUESTION = "Hi! My order #{n} has not arrived yet, it was due last Tuesday. Can you check it?"
REPLY = ("I'm sorry about the delay. Order #{n} left our warehouse on Monday and the carrier "
         "shows it in transit with a new delivery estimate of Friday. I've added a note to "
         "your account; if it has not arrived by Saturday, reply here and I will help.")
SYSTEM = ("You are the support assistant of an online shop. Be brief and friendly; look "
          "orders up with the tool before answering questions about them.")


@tool
def lookup_order(order_id: int) -> str:
    """Look an order up.

    Args:
        order_id: The order number.
    """
    return f"order {order_id}: shipped Monday, in transit, estimate Friday, carrier DHL"


class ScriptedModel:
    """Asks for the tool on the user's message, then answers (same sizes every turn)."""

    provider = "claude"
    model = "claude-sonnet-4-20250514"

    async def complete(self, request: LLMRequest) -> LLMResponse:
        last = request.messages[-1]
        turn = sum(1 for m in request.messages if m.role == "user")
        if last.role == "user":
            return LLMResponse("", Usage(1200, 40), self.model, (ToolCall(
                f"call-{turn}", "lookup_order", {"order_id": 48000 + turn}),), "tool_use")
        return LLMResponse(REPLY.format(n=48000 + turn), Usage(1300, 90), self.model,
                           (), "end_turn")

    async def aclose(self) -> None:
        return None


def _stored_bytes(obs: Observability, after: int) -> tuple[int, int]:
    """(bytes of event data above event ``after``, newest event id)."""
    store = obs.store
    assert store is not None
    with store.reading() as conn:
        rows = conn.execute(sa.select(events.c.id, sa.func.length(events.c.data))
                            .where(events.c.id > after)).all()
    return sum(int(n) for _, n in rows), max([after, *(i for i, _ in rows)])


async def conversation(url: str) -> dict[str, Any]:
    obs = Observability.from_config(OpenCellConfig(store=StoreConfig(url=url)))
    bot = BotConfig(name="shop", type="agent", system_prompt=SYSTEM,
                    llm=LLMConfig(provider="claude", model=ScriptedModel.model),
                    tools=[{"name": "lookup_order",
                            "python": "benchmarks.transcript:lookup_order"}],
                    session={"history_turns": 200})
    runtime = BotRuntime(bot, llm=ScriptedModel(), observability=obs)
    key = ConversationKey(bot="shop", platform="bench", channel="c", user="u")
    per_turn: list[int] = []
    last_id, texts_before = 0, 0
    for n in range(1, TURNS + 1):
        await runtime.dispatch(IncomingMessage(key=key, text=QUESTION.format(n=48000 + n),
                                               user_id="u"))
        obs.recorder.flush(30)
        added, last_id = _stored_bytes(obs, last_id)
        shared = _texts(obs)  # texts stored once by digest (large ones only)
        per_turn.append(added + shared - texts_before)
        texts_before = shared
    # What keeping each call's whole input would have cost at the last turn, measured.
    assert obs.store is not None
    with obs.store.reading() as conn:
        calls = [json.loads(d) for (d,) in conn.execute(
            sa.select(events.c.data).where(events.c.kind == "llm_call").order_by(events.c.id))]
    inputs = rebuild(calls)
    whole_last = sum(len(json.dumps({"system": i.system, "messages": list(i.messages),
                                     "tools": list(i.tools)}, separators=(",", ":")))
                     for i in inputs[-2:])
    delta_last = sum(len(json.dumps(c.get("input"), separators=(",", ":")))
                     for c in calls[-2:])
    costs = _llm_call_cost(obs, runtime, key)
    await runtime.aclose()
    obs.close(timeout=30)
    return {"per_turn": per_turn, "whole_last": whole_last, "delta_last": delta_last,
            "messages_last": len(inputs[-1].messages), **costs}


def _texts(obs: Observability) -> int:
    assert obs.store is not None
    with obs.store.reading() as conn:
        return int(conn.execute(sa.select(sa.func.coalesce(sa.func.sum(
            sa.func.length(texts.c.text)), 0))).scalar() or 0)


def _llm_call_cost(obs: Observability, runtime: BotRuntime,
                   key: ConversationKey) -> dict[str, float]:
    """µs per ``Observability.llm_call`` for requests of the conversation's size (≈200
    messages), each one message longer than the one before (as a conversation grows), with
    content capture on (the delta: one new message per call) and off."""
    session = runtime.session_for(key)
    assert session is not None
    history = session.history.messages()
    response = LLMResponse(REPLY.format(n=1), Usage(1300, 90), ScriptedModel.model, (),
                           "end_turn")
    out: dict[str, float] = {}
    for capture in (True, False):
        obs.capture_content = capture
        runs = []
        for _ in range(5):
            obs.inputs.forget("bench-session")
            requests = [LLMRequest(SYSTEM, history[:k], 1024)
                        for k in range(len(history) - 40, len(history) + 1)]
            obs.llm_call("bench-session", provider="claude", model=ScriptedModel.model,
                         request=requests.pop(0), response=response, started=time.time(),
                         duration_ms=1.0, turn=1)  # the session's earlier calls
            start = time.perf_counter()
            for request in requests:
                obs.llm_call("bench-session", provider="claude", model=ScriptedModel.model,
                             request=request, response=response, started=time.time(),
                             duration_ms=1.0, turn=1)
            runs.append((time.perf_counter() - start) / len(requests) * 1e6)
        out["llm_call_us_content" if capture else "llm_call_us_bare"] = statistics.median(runs)
    obs.capture_content = True
    obs.inputs.forget("bench-session")
    return out


def run(quick: bool) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="opencell-bench-") as tmp:
        result = asyncio.run(conversation(f"sqlite:///{tmp}/transcript.db"))
    from benchmarks import recorder

    with contextlib.redirect_stdout(io.StringIO()):
        rec: dict[str, Any] = recorder.main(["--quick"] if quick else [])
    first, last = result["per_turn"][0], result["per_turn"][-1]
    growth = last / first
    met = rec["targets_met"]
    return [
        Figure("transcript", f"bytes stored by turn {TURNS} / turn 1", growth, "×",
               f"<= {TARGET_GROWTH:g}", growth <= TARGET_GROWTH,
               f"turn 1 {first:,} B, turn {TURNS} {last:,} B",
               f"whole inputs would be {result['whole_last']:,} B for turn {TURNS}'s calls "
               f"({result['messages_last']} messages) vs {result['delta_last']:,} B of deltas"),
        Figure("transcript", "llm_call recording at turn 50, content on",
               result["llm_call_us_content"], "µs", "", None,
               f"content off {result['llm_call_us_bare']:.1f} µs",
               "Observability.llm_call, ~200-message requests growing by one"),
        Figure("recorder", "record() on the caller", rec["record_us"], "µs", "<= 1",
               met["record_us"], f"OpenTelemetry span {rec['otel_span_us']:.2f} µs", ""),
        Figure("store", "sustained ingest into SQLite", rec["ingest_events_per_s"],
               "events/s", ">= 100,000", met["ingest_events_per_s"], "", ""),
    ]


def main(argv: list[str] | None = None) -> list[Figure]:
    return run_main(argv, __doc__ or "", run, "Store growth with whole model inputs")


if __name__ == "__main__":
    main()
