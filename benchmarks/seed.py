"""Seeds a store with realistic sessions through ``Store.write_batch`` (reusable by any benchmark).

Run: python -m benchmarks.seed sqlite:///seeded.db [--sessions 100000] [--events 1000000]
     [--days 30] [--seed 7]

What it writes, all through the real store's ``write_batch`` (so the session totals and the
rollups are the ones production keeps): four bots (a conversational support bot, two agents,
an offline demo), four platforms, 20,000 users with a long-tailed activity, sessions spread
over the last ``days`` days with a daily rhythm, 1–8 turns each; agent turns call 1–3 models
and 0–2 tools; about 2 % of turns fail with an ``error`` (stack and context), some sessions
carry a custom ``feedback`` event, a small share of calls use a model with no price
(``unpriced``), and the newest sessions are still open. Events of concurrent sessions
interleave in time order, as a live recorder would store them. ``--events`` is met exactly
(the total counts every record, ``session_start`` and ``session_end`` included).
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opencell.records import Record, new_session_id  # noqa: E402
from opencell.store.store import Store  # noqa: E402


@dataclass(frozen=True)
class Bot:
    name: str
    type: str
    weight: float
    models: tuple[tuple[str, str, float, float, float], ...]
    """(provider, model, share, $/M input, $/M output); a negative price means unpriced."""
    tags: tuple[str, ...]
    turn_ms: float


BOTS = (
    Bot("support", "conversational", 0.45,
        (("claude", "claude-sonnet-4-20250514", 0.78, 3.0, 15.0),
         ("openai", "gpt-4o-mini", 0.215, 0.15, 0.6),
         ("claude", "claude-imaginary-9", 0.005, -1, -1)), ("support", "production"), 900),
    Bot("guardian", "agent", 0.25,
        (("claude", "claude-3-5-haiku-20241022", 1.0, 0.8, 4.0),), ("moderation", "production"),
        2200),
    Bot("devops", "agent", 0.20,
        (("moonshot", "kimi-k2-0905-preview", 0.9, 0.6, 2.5),
         ("moonshot", "kimi-experimental", 0.1, -1, -1)), ("ops", "internal"), 4200),
    Bot("demo", "conversational", 0.10, (("offline", "offline-echo", 1.0, 0.0, 0.0),),
        ("demo",), 40),
)
PLATFORMS = (("discord", 0.45), ("slack", 0.40), ("console", 0.10), ("api", 0.05))
TOOLS = ("current_time", "http_get", "calculator", "search_docs", "run_command")
USERS = 20_000
QUESTIONS = (
    "Hi! My order #{n} has not arrived yet, it was due last Tuesday. Can you check?",
    "How do I rotate the API key for project {n} without downtime?",
    "The deploy of service-{n} failed with exit code 137, what does that mean?",
    "Can you summarise yesterday's incident report for cluster {n}?",
    "Is message {n} in #general against the community rules?",
)
ANSWERS = (
    "I'm sorry about the delay. The parcel left our warehouse on Monday and the carrier shows "
    "it in transit with a new delivery estimate of Friday. I've added a note to your account.",
    "Create the new key first, roll it out to every client, then revoke the old one from the "
    "settings page; both keys work in the meantime, so nothing goes down.",
    "Exit code 137 means the container was killed with SIGKILL, usually by the OOM killer. "
    "Raise the memory limit or find what grows; `kubectl describe pod` shows OOMKilled.",
)
STACK = ("Traceback (most recent call last):\n"
         '  File "opencell/runtime.py", line 118, in handle\n'
         "    response = await self.llm.complete(self._request(ctx, turn, ()))\n"
         '  File "opencell/llm/anthropic.py", line 92, in complete\n'
         "    raise LLMRateLimitError(provider='claude', retry_after=retry)\n"
         "opencell.errors.LLMRateLimitError: claude: rate limited (429) after 2 retries\n")


def _pick(rng: random.Random, weighted: tuple[tuple[str, float], ...]) -> str:
    roll, total = rng.random(), 0.0
    for value, weight in weighted:
        total += weight
        if roll < total:
            return value
    return weighted[-1][0]


class _Seeder:
    """Builds one session's records at a time; the caller interleaves and writes them."""

    def __init__(self, rng: random.Random, now: float, days: float) -> None:
        self.rng = rng
        self.now = now
        self.start = now - days * 86400
        # Long tail: a few users are very active, most come once or twice.
        self.user_weights = [1.0 / (i + 10) ** 0.9 for i in range(USERS)]
        self.users = [f"U{i:06d}" for i in range(USERS)]
        self.bot_weights = tuple((b.name, b.weight) for b in BOTS)
        self.bots = {b.name: b for b in BOTS}

    def users_for(self, count: int) -> list[str]:
        return self.rng.choices(self.users, self.user_weights, k=count)

    def start_times(self, count: int) -> list[float]:
        """Start times with a daily rhythm (busier in the afternoon, UTC), ascending."""
        rng, span = self.rng, self.now - self.start - 900
        out = []
        while len(out) < count:
            t = self.start + rng.random() * span
            hour = (t % 86400) / 3600
            if rng.random() < 0.35 + 0.65 * math.sin(math.pi * hour / 24) ** 2:
                out.append(t)
        out.sort()
        return out

    def session(self, ts: float, user: str, budget: int, open_: bool) -> list[Record]:
        """One session of exactly ``budget`` records (at least 2; 1 when it stays open)."""
        rng = self.rng
        bot = self.bots[_pick(rng, self.bot_weights)]
        platform = _pick(rng, PLATFORMS) if bot.name != "demo" else "console"
        sid = new_session_id(ts)
        tags = [*bot.tags, *(["vip"] if rng.random() < 0.03 else [])]
        out = [Record("session_start", sid, ts, bot.name, {
            "bot": bot.name, "bot_type": bot.type, "platform": platform, "workspace": "acme",
            "channel": f"{platform}:{rng.randrange(400)}", "thread": None, "user_id": user,
            "user_name": f"user-{user[1:]}", "tags": tags,
            "key": f"{bot.name}/{platform}/{user}"})]
        left = budget - (1 if open_ else 2)
        t = ts
        failed_last = False
        while left > 0:
            turn, t, failed_last = self._turn(sid, bot, user, t, left)
            out.extend(turn)
            left -= len(turn)
            t += rng.expovariate(1 / 40.0)
        if not open_:
            status = "failed" if failed_last else "success"
            reason = "idle_timeout" if rng.random() < 0.85 else "end_command"
            end = t + (600 if reason == "idle_timeout" else 1)
            out.append(Record("session_end", sid, end, reason, {
                "reason": reason, "status": status, "metadata": {}}, None,
                status == "success"))
        return out

    def _turn(self, sid: str, bot: Bot, user: str, t: float,
              room: int) -> tuple[list[Record], float, bool]:
        """One turn (a message and what it caused) within ``room`` records."""
        rng = self.rng
        if room == 1:
            return [Record("custom", sid, t, "feedback", {"rating": rng.randint(1, 5)})], t, False
        calls = 1 if bot.type == "conversational" else rng.choice((1, 2, 2, 3))
        tools = 0 if bot.type == "conversational" else min(calls - 1, rng.choice((0, 1, 1, 2)))
        failed = rng.random() < 0.02
        wanted = 1 + calls + tools + (1 if failed else 0)
        while wanted > room and (tools or calls > 1 or failed):
            if tools:
                tools -= 1
            elif calls > 1:
                calls -= 1
            else:
                failed = False
            wanted = 1 + calls + tools + (1 if failed else 0)
        records: list[Record] = []
        clock = t + 0.005
        for i in range(calls):
            records.append(self._llm(sid, bot, clock))
            clock += (records[-1].duration_ms or 0) / 1000
            if i < tools:
                tool = rng.choice(TOOLS)
                ok = rng.random() > 0.05
                ms = rng.lognormvariate(math.log(120), 0.9)
                records.append(Record("tool_call", sid, clock, tool, {
                    "tool": tool, "call_id": f"toolu_{rng.getrandbits(40):x}",
                    "args": {"query": f"status of host-{rng.randrange(99)}"},
                    "result": "<b>200 OK</b> all systems nominal" if ok else None,
                    "result_chars": 34, "truncated": False,
                    "error": None if ok else "timed out after 10s",
                    "error_type": None if ok else "ToolTimeoutError"}, ms, ok))
                clock += ms / 1000
        duration = (clock - t) * 1000 + rng.uniform(2, 15)
        text = rng.choice(QUESTIONS).format(n=rng.randrange(100_000))
        answer = None if failed else rng.choice(ANSWERS)
        records.append(Record("message", sid, t, "turn", {
            "input": text, "output": answer or "Sorry, something went wrong.",
            "user_id": user, "input_chars": len(text), "output_chars": len(answer or "")},
            duration, not failed))
        if failed:
            records.append(Record("error", sid, t + duration / 1000, "LLMRateLimitError", {
                "type": "LLMRateLimitError",
                "message": "claude: rate limited (429) after 2 retries", "stack": STACK,
                "context": {"bot": bot.name, "conversation": f"{bot.name}/{user}"}},
                None, False))
        return records, t + duration / 1000, failed

    def _llm(self, sid: str, bot: Bot, t: float) -> Record:
        rng = self.rng
        roll, acc = rng.random(), 0.0
        provider, model, _, p_in, p_out = bot.models[-1]
        for candidate in bot.models:
            acc += candidate[2]
            if roll < acc:
                provider, model, _, p_in, p_out = candidate
                break
        tokens_in = int(rng.lognormvariate(math.log(1200), 0.6))
        tokens_out = int(rng.lognormvariate(math.log(300), 0.7))
        cost = None if p_in < 0 else (tokens_in * p_in + tokens_out * p_out) / 1e6
        ms = bot.turn_ms * rng.lognormvariate(0, 0.45) / (1.6 if bot.type == "agent" else 1)
        return Record("llm_call", sid, t, f"{provider}:{model}", {
            "provider": provider, "model": model, "response_model": model,
            "input_tokens": tokens_in, "output_tokens": tokens_out, "cache_read_tokens": 0,
            "cache_write_tokens": 0, "cost_usd": cost,
            "price_source": "unpriced" if cost is None else "genai-prices",
            "stop_reason": "end_turn", "request_id": f"req_{rng.getrandbits(48):x}"}, ms, True)


def seed(url_or_store: str | Store, *, sessions: int = 100_000, events: int = 1_000_000,
         days: float = 30.0, seed_value: int = 7, now: float | None = None,
         batch: int = 5_000, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Write ``sessions`` sessions holding exactly ``events`` records; returns what it wrote.

    ``events`` must be at least ``2 * sessions``. The newest 0.5 % of sessions stay open.
    """
    if events < 2 * sessions:
        raise ValueError("events must be at least twice the sessions (start and end each)")
    store = Store.open(url_or_store) if isinstance(url_or_store, str) else url_or_store
    rng = random.Random(seed_value)
    now = time.time() if now is None else now
    seeder = _Seeder(rng, now, days)
    starts = seeder.start_times(sessions)
    users = seeder.users_for(sessions)
    open_from = sessions - max(1, sessions // 200)
    started = time.perf_counter()
    written = 0
    pending: list[Record] = []
    left = events
    for index, (ts, user) in enumerate(zip(starts, users, strict=True)):
        remaining = sessions - index
        is_open = index >= open_from
        floor = 1 if is_open else 2
        mean = left / remaining
        budget = max(floor, int(rng.gauss(mean, mean * 0.45))) if remaining > 1 else left
        budget = min(budget, left - 2 * (remaining - 1))
        pending.extend(seeder.session(ts, user, max(floor, budget), is_open))
        left -= max(floor, budget)
        # Sessions last minutes at most, so ones that started an hour before the newest are
        # complete: write them in time order, interleaved as a live recorder would.
        if len(pending) >= batch * 4 or index == sessions - 1:
            horizon = ts - 3600 if index < sessions - 1 else math.inf
            pending.sort(key=_ts)
            cut = _first_after(pending, horizon)
            for chunk in _chunks(pending[:cut], batch):
                store.write_batch(chunk)
                written += len(chunk)
            pending = pending[cut:]
            if progress is not None:
                progress(written, events)
    elapsed = time.perf_counter() - started
    if isinstance(url_or_store, str):
        store.close()
    return {"sessions": sessions, "events": written, "days": days, "seconds": elapsed,
            "open_sessions": sessions - open_from}


def _ts(record: Record) -> float:
    return record.ts


def _first_after(records: list[Record], horizon: float) -> int:
    lo, hi = 0, len(records)
    while lo < hi:
        mid = (lo + hi) // 2
        if records[mid].ts <= horizon:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _chunks(records: list[Record], size: int) -> Iterator[list[Record]]:
    for start in range(0, len(records), size):
        yield records[start:start + size]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="store URL, e.g. sqlite:///seeded.db (a new file)")
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    def show(done: int, total: int) -> None:
        print(f"\r{done:,} / {total:,} events", end="", file=sys.stderr, flush=True)

    result = seed(args.url, sessions=args.sessions, events=args.events, days=args.days,
                  seed_value=args.seed, progress=show)
    print(file=sys.stderr)
    print(f"seeded {result['sessions']:,} sessions, {result['events']:,} events over "
          f"{result['days']:g} days in {result['seconds']:.1f}s "
          f"({result['open_sessions']} still open)")


if __name__ == "__main__":
    main()
