"""Benchmark: message latency p99 with the AgentOps exporter blackholed vs disabled, same run.

Run: python -m benchmarks.exporter [--quick]

Each message goes through the real ``BotRuntime.dispatch`` (chain, sessions, recording into a
SQLite store) on one core, so the exporter's thread competes with the bot as it would in
production. Three set-ups, measured in alternating rounds so drift cancels out:

- ``disabled``: no exporter;
- ``blackholed``: AgentOps on; its token call is answered, but the traces port accepts
  connections and never answers (the acceptance case: the backend hangs);
- ``delivering``: AgentOps on and answering 200 at once, so the worker reads the store,
  builds spans and sends them all the time (the busiest an exporter gets).

The target: the blackholed p99 within 10 % of the disabled p99.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._report import Figure, median, percentile  # noqa: E402
from opencell.config import (  # noqa: E402
    AgentOpsConfig,
    BotConfig,
    LLMConfig,
    ObservabilityConfig,
    OpenCellConfig,
    StoreConfig,
)
from opencell.messages import ConversationKey, IncomingMessage  # noqa: E402
from opencell.observability.observer import Observability  # noqa: E402
from opencell.runtime import BotRuntime  # noqa: E402

TARGET = 1.10
USERS = 50
ROUNDS = 4
KEY = "6f1c2a4e-3b5d-4c7e-9f80-1a2b3c4d5e6f"


class _Backend:
    """A loopback AgentOps: answers the token call; traces are answered or never."""

    def __init__(self, answer_traces: bool) -> None:
        release = self.release = threading.Event()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path == "/v3/auth/token":
                    body = json.dumps({"token": "t", "project_id": "bench"}).encode()
                    kind = "application/json"
                elif answer_traces:
                    body, kind = b"", "application/x-protobuf"
                else:
                    release.wait(60)  # the blackhole: accepted, never answered
                    return
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def _config(url: str, backend: _Backend | None) -> OpenCellConfig:
    agentops = AgentOpsConfig() if backend is None else AgentOpsConfig(
        enabled=True, api_key=KEY, endpoint=backend.url,
        exporter_endpoint=f"{backend.url}/v1/traces")
    return OpenCellConfig(store=StoreConfig(url=url),
                          observability=ObservabilityConfig(agentops=agentops))


def _messages(count: int, offset: int) -> list[IncomingMessage]:
    keys = [ConversationKey(bot="bench", platform="bench", channel=f"c{u}", user=f"u{u}")
            for u in range(USERS)]
    return [IncomingMessage(key=keys[i % USERS], text=f"message {offset + i}: please answer",
                            user_id=keys[i % USERS].user) for i in range(count)]


async def _round(setup: str, count: int, directory: str, offset: int) -> list[float]:
    backend = None if setup == "disabled" else _Backend(answer_traces=setup == "delivering")
    observability = Observability.from_config(
        _config(f"sqlite:///{directory}/{setup}-{offset}.db", backend), env={})
    runtime = BotRuntime(BotConfig(name="bench", llm=LLMConfig(provider="offline")),
                         observability=observability)
    messages = _messages(count, offset)
    for message in messages[:500]:  # warm up sessions and caches
        await runtime.dispatch(message)
    # Let the exporter reach its steady state (blackholed: its first request hangs).
    await asyncio.sleep(0.5)
    timings = []
    clock = time.perf_counter_ns
    for message in messages:
        start = clock()
        await runtime.dispatch(message)
        timings.append((clock() - start) / 1000)
    await runtime.aclose()
    observability.close(timeout=10, export_timeout=0.5)
    if backend is not None:
        backend.close()
    return timings


async def measure(count: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {"disabled": [], "blackholed": [], "delivering": []}
    per_round = max(500, count // ROUNDS)
    with tempfile.TemporaryDirectory(prefix="opencell-bench-exporter-") as directory:
        for number in range(ROUNDS):
            for setup in results:
                results[setup] += await _round(setup, per_round, directory,
                                               number * per_round)
    return results


def run(quick: bool) -> list[Figure]:
    # The blackholed exporter logs its outage as it should; the benchmark's table says enough.
    logging.getLogger("opencell.exporters").setLevel(logging.ERROR)
    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cores)})  # one core, shared with the exporter's thread
    try:
        results = asyncio.run(measure(10_000 if quick else 40_000))
    finally:
        os.sched_setaffinity(0, cores)
    off = percentile(results["disabled"], 99)
    figures = []
    for setup in ("blackholed", "delivering"):
        p99 = percentile(results[setup], 99)
        met = p99 <= off * TARGET
        figures.append(Figure(
            "exporter", f"message latency p99, AgentOps {setup}", p99, "µs",
            f"<= disabled × {TARGET:.2f}", met if setup == "blackholed" else None,
            f"disabled p99 {off:.1f} µs", f"{p99 / off:.3f}× disabled; p50 "
            f"{median(results[setup]):.1f} vs {median(results['disabled']):.1f} µs; one core"))
    return figures


def main(argv: Sequence[str] | None = None) -> list[Figure]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    from benchmarks._report import print_table

    figures = run(args.quick)
    print_table(figures, "exporter")
    for figure in figures:
        ratio = float(figure.note.split("×")[0])
        within = "within" if ratio <= TARGET else "NOT within"
        print(f"{figure.name}: {figure.value:.1f} µs vs {figure.baseline} "
              f"({ratio:.3f}×) → {within} 10 %")
    return figures


if __name__ == "__main__":
    main()
