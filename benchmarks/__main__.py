"""Runs every OpenCell benchmark and prints one table plus one JSON object with every figure.

Run: python -m benchmarks [--quick] [--only NAME …] [--json-only]

Each benchmark compares against a baseline measured in the same run, so a noisy machine
cancels out. ``--quick`` keeps the whole run within about two minutes on two cores.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._report import Figure, as_json, print_table  # noqa: E402


def _recorder(quick: bool) -> list[Figure]:
    from benchmarks import recorder

    with contextlib.redirect_stdout(io.StringIO()):
        figures: dict[str, Any] = recorder.main(["--quick"] if quick else [])
    met = figures["targets_met"]
    return [
        Figure("recorder", "record() on the caller", figures["record_us"], "µs", "<= 1",
               met["record_us"], f"OpenTelemetry span {figures['otel_span_us']:.2f} µs",
               f"emit() incl. building the record {figures['emit_us']:.2f} µs"),
        Figure("recorder", "OpenTelemetry span / record()", figures["span_over_record"], "×",
               ">= 15", met["span_over_record"], "same attributes, BatchSpanProcessor", ""),
        Figure("store", "sustained ingest into SQLite", figures["ingest_events_per_s"],
               "events/s", ">= 100,000", met["ingest_events_per_s"], "",
               f"{figures['ingest_events']:,} events over {figures['ingest_sessions']} "
               "sessions"),
        Figure("store", "durable after record() (max)", figures["durable_ms_max"], "ms",
               "<= 200", met["durable_ms_max"],
               f"median {figures['durable_ms_median']:.0f} ms", ""),
    ]


def _pipeline(quick: bool) -> list[Figure]:
    from benchmarks import pipeline

    return pipeline.run(quick)


def _sessions(quick: bool) -> list[Figure]:
    from benchmarks import sessions

    return sessions.run(quick)


def _platforms(quick: bool) -> list[Figure]:
    from benchmarks import platforms

    return platforms.run(quick)


def _streaming(quick: bool) -> list[Figure]:
    from benchmarks import streaming

    return streaming.run(quick)


def _exporter(quick: bool) -> list[Figure]:
    from benchmarks import exporter

    return exporter.run(quick)


def _dashboard(quick: bool) -> list[Figure]:
    from benchmarks import dashboard

    return dashboard.run(quick)


def _redact(quick: bool) -> list[Figure]:
    from benchmarks import redact

    return redact.run(quick)


def _mcp(quick: bool) -> list[Figure]:
    from benchmarks import mcp

    return mcp.run(quick)


def _cluster(quick: bool) -> list[Figure]:
    from benchmarks import cluster

    try:
        return cluster.run(quick)
    except RuntimeError as exc:  # no PostgreSQL on this machine
        return [Figure("cluster", "several processes on one PostgreSQL", None, "",
                       note=f"skipped: {exc}")]


def _startup(quick: bool) -> list[Figure]:
    from benchmarks import startup

    return startup.run(quick)


def _transcript(quick: bool) -> list[Figure]:
    from benchmarks import transcript

    return transcript.run(quick)


def _replay(quick: bool) -> list[Figure]:
    from benchmarks import replay

    return replay.run(quick)


BENCHMARKS: dict[str, Callable[[bool], list[Figure]]] = {
    "recorder": _recorder,
    "pipeline": _pipeline,
    "sessions": _sessions,
    "platforms": _platforms,
    "streaming": _streaming,
    "exporter": _exporter,
    "dashboard": _dashboard,
    "redact": _redact,
    "mcp": _mcp,
    "startup": _startup,
    "transcript": _transcript,
    "replay": _replay,
    "cluster": _cluster,
}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts (≈2 min)")
    parser.add_argument("--only", nargs="*", choices=sorted(BENCHMARKS), default=None)
    args = parser.parse_args(argv)
    figures: list[Figure] = []
    timings: dict[str, float] = {}
    for name, bench in BENCHMARKS.items():
        if args.only and name not in args.only:
            continue
        print(f"running {name} …", file=sys.stderr, flush=True)
        started = time.perf_counter()
        figures.extend(bench(args.quick))
        timings[name] = round(time.perf_counter() - started, 1)
    print_table(figures, "OpenCell benchmarks" + (" (quick)" if args.quick else ""))
    print(as_json(figures, quick=args.quick, seconds=timings))
    unmet = [f"{f.group}: {f.name}" for f in figures if f.met is False]
    return {"figures": figures, "unmet": unmet}


if __name__ == "__main__":
    main()
