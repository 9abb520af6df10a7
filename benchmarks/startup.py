"""Benchmark: start-up — `opencell --help`, and a bot from start to its first reply.

Run: python -m benchmarks.startup [--quick]

Baseline in the same run: the bare interpreter (`python -c pass`), which every command pays.
Heavy SDKs (anthropic, openai, discord, slack) must be imported lazily for `--help` to be fast.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._report import Figure, median, run_main  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TARGET_HELP_MS = 300.0


def _time(command: list[str], runs: int, stdin: str = "",
          env: dict[str, str] | None = None) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, input=stdin, capture_output=True, text=True, check=True,
                       cwd=REPO, env=env)
        samples.append((time.perf_counter() - start) * 1000)
    return median(samples)


def run(quick: bool) -> list[Figure]:
    runs = 5 if quick else 15
    python = [sys.executable]
    bare = _time([*python, "-c", "pass"], runs)
    help_ms = _time([*python, "-m", "opencell", "--help"], runs)
    with tempfile.TemporaryDirectory(prefix="opencell-bench-") as tmp:
        env = {**os.environ, "OPENCELL_DATABASE_URL": f"sqlite:///{tmp}/startup.db"}
        first_reply = _time([*python, "-m", "opencell", "chat", "bots/demo.yaml"],
                            max(3, runs // 3), stdin="hello\n", env=env)
    return [
        Figure("start-up", "opencell --help", help_ms, "ms", f"<= {TARGET_HELP_MS:.0f}",
               help_ms <= TARGET_HELP_MS, f"bare interpreter {bare:.0f} ms", ""),
        Figure("start-up", "chat: start, one reply, clean exit", first_reply, "ms", "", None,
               f"bare interpreter {bare:.0f} ms", "offline demo bot, new SQLite store"),
    ]


def main(argv: Sequence[str] | None = None) -> list[Figure]:
    return run_main(argv, __doc__ or "", run, "start-up")


if __name__ == "__main__":
    main()
