"""Benchmark: replaying a recorded 100-turn session with the offline model, and what-if
pricing over a store of 1,000,000 events.

Run: python benchmarks/replay.py [--quick]    (or python -m benchmarks --only replay)

1. A 100-turn conversation with the offline demo agent (tools: calculator, current_time;
   every third turn calls a tool) is recorded into a SQLite store. In the same run, the
   baseline: the same 100 turns through a bare ``BotRuntime`` (offline model, recording on),
   per turn. Then ``runtime.replay(session)`` replays it (recorded tool results), whole:
   target ≤ 2 s; and OpenCell's overhead per turn — replay time per turn minus the bare
   runtime's — target ≤ 2 ms. Medians of ``ROUNDS`` rounds.
2. ``opencell costs --what-if`` (``cost_totals``: the 100 most expensive keys and the sums
   over all, from the smallest rollup that answers; priced) over a store seeded with
   1,000,000 events (``benchmarks/seed.py``; ``--quick``: 200,000): p95 over every
   dimension and period, target ≤ 200 ms; the baseline is ``store.costs`` (what
   ``opencell costs`` reads, the widest rollup), same run.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._report import Figure, percentile, run_main  # noqa: E402
from benchmarks.seed import seed  # noqa: E402
from opencell.config import OpenCellConfig, StoreConfig  # noqa: E402
from opencell.llm.pricing import PriceBook  # noqa: E402
from opencell.llm.what_if import parse_model, total_what_if, with_what_if  # noqa: E402
from opencell.loading import load_bot  # noqa: E402
from opencell.observability.observer import Observability  # noqa: E402
from opencell.runtime import BotRuntime  # noqa: E402
from opencell.store.cost_totals import cost_totals  # noqa: E402
from opencell.store.store import Store  # noqa: E402

TURNS = 100
ROUNDS = 5
REPLAY_TARGET_S = 2.0
OVERHEAD_TARGET_MS = 2.0
WHAT_IF_TARGET_MS = 200.0
DEMO = Path(__file__).resolve().parents[1] / "bots" / "demo.yaml"


def _texts() -> list[str]:
    out = []
    for n in range(TURNS):
        out.append(f"what is {n}+{n}*2?" if n % 3 == 0 else
                   "what time is it?" if n % 3 == 1 else f"tell me about item {n}")
    return out


async def _turns(runtime: BotRuntime, texts: list[str]) -> tuple[str, float]:
    session = await runtime.start_session("bench", "console")
    started = time.perf_counter()
    for text in texts:
        await runtime.process_message(text)
    took = time.perf_counter() - started
    await runtime.end_session()
    return session, took


async def _replay_figures(url: str, rounds: int) -> dict[str, float]:
    bot = load_bot(DEMO)
    bot = bot.model_copy(update={"middleware": [], "session": bot.session.model_copy(
        update={"history_turns": 20})})
    obs = Observability.from_config(OpenCellConfig(store=StoreConfig(url=url)))
    texts = _texts()
    runtime = BotRuntime(bot, observability=obs)
    source, _ = await _turns(runtime, texts)
    assert obs.recorder.flush(30)
    bare: list[float] = []
    replays: list[float] = []
    for _ in range(rounds):  # the recorder is flushed between runs: each starts idle
        fresh = BotRuntime(bot, observability=obs)
        _, took = await _turns(fresh, texts)
        await fresh.aclose()
        bare.append(took)
        assert obs.recorder.flush(30)
        started = time.perf_counter()
        result = await runtime.replay(source)
        replays.append(time.perf_counter() - started)
        assert obs.recorder.flush(30)
        assert len(result.turns) == TURNS and result.ok, [t.error for t in result.turns][:3]
    await runtime.aclose()
    obs.close()
    bare_s, replay_s = statistics.median(bare), statistics.median(replays)
    return {"bare_turn_ms": bare_s / TURNS * 1000, "replay_s": replay_s,
            "replay_turn_ms": replay_s / TURNS * 1000,
            "overhead_ms": (replay_s - bare_s) / TURNS * 1000}


def _what_if_figures(url: str, events: int, sessions: int) -> dict[str, float]:
    store = Store.open(url)
    seed(store, sessions=sessions, events=events)
    prices = PriceBook()
    model = parse_model("openai:gpt-4o-mini")
    plain: list[float] = []
    priced: list[float] = []
    for _ in range(5):
        for by in ("bot", "user", "platform", "provider", "model"):
            for period in ("day", "week", "month"):
                started = time.perf_counter()
                rows = store.costs(by=by, period=period)  # type: ignore[arg-type]
                plain.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                top, sums = cost_totals(store, by, period, limit=100)
                with_what_if(top, prices, model)
                total_what_if(top, sums, prices, model, complete=False)
                priced.append((time.perf_counter() - started) * 1000)
                assert rows is not None
    store.close()
    return {"what_if_p95_ms": percentile(priced, 95), "costs_p95_ms": percentile(plain, 95)}


def run(quick: bool) -> list[Figure]:
    with tempfile.TemporaryDirectory() as tmp:
        replay = asyncio.run(_replay_figures(f"sqlite:///{tmp}/replay.db",
                                             2 if quick else ROUNDS))
        events, sessions = (200_000, 20_000) if quick else (1_000_000, 100_000)
        what_if = _what_if_figures(f"sqlite:///{tmp}/seeded.db", events, sessions)
    return [
        Figure("replay", f"replay a {TURNS}-turn session (offline model)", replay["replay_s"],
               "s", f"<= {REPLAY_TARGET_S:g}", replay["replay_s"] <= REPLAY_TARGET_S,
               f"bare runtime turn {replay['bare_turn_ms']:.2f} ms",
               f"{replay['replay_turn_ms']:.2f} ms a replayed turn"),
        Figure("replay", "OpenCell overhead per replayed turn", replay["overhead_ms"], "ms",
               f"<= {OVERHEAD_TARGET_MS:g}", replay["overhead_ms"] <= OVERHEAD_TARGET_MS,
               "replayed turn − bare runtime turn, same run",
               "reading the session back and comparing included"),
        Figure("replay", f"costs --what-if over {events:,} events, p95",
               what_if["what_if_p95_ms"], "ms", f"<= {WHAT_IF_TARGET_MS:g}",
               what_if["what_if_p95_ms"] <= WHAT_IF_TARGET_MS,
               f"opencell costs (store.costs) p95 {what_if['costs_p95_ms']:.1f} ms",
               "every dimension × day/week/month, from the rollups"),
    ]


def main(argv: list[str] | None = None) -> list[Figure]:
    return run_main(argv, __doc__ or "", run, "replay and what-if")


if __name__ == "__main__":
    main()
