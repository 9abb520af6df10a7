"""``/metrics``: OpenCell's counters in the Prometheus text format (version 0.0.4).

Store-wide figures come from the rollups (so a scrape costs the same on any store size) and
count everything any process recorded into this store. Recorder figures (queue depth, drops)
exist only in the process that records, i.e. with ``opencell run --dashboard``; exporter
figures come from the exporters' own stats hook there, and otherwise from their cursors in
the store (events not yet delivered).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

from sqlalchemy import Connection

from opencell.dashboard import queries

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

ExporterStats = Callable[[], Mapping[str, Mapping[str, float]]]
"""Per exporter name, named gauges, e.g. ``{"agentops": {"lag_events": 12,
"lag_seconds": 3.5, "failures_total": 2}}`` → ``opencell_exporter_lag_events{exporter=
"agentops"} 12``. Names must be ``[a-z_]+``; others are skipped."""


class RecorderStatsLike(Protocol):
    """What ``Recorder.stats`` returns (``RecorderStats``)."""

    queued: int
    written: int
    dropped: int
    failures: int
    batches: int
    failing: bool
    quarantined: int
    dropped_by: Mapping[str, int]


_KINDS = (("message", "turns"), ("llm_call", "llm_calls"), ("tool_call", "tool_calls"),
          ("error", "errors"), ("session_start", "sessions_started"),
          ("session_end", "sessions_ended"))
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


class _Writer:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str,
               samples: Iterable[tuple[Mapping[str, str], float]]) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            text = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
            self.lines.append(f"{name}{{{text}}} {_number(value)}" if text
                              else f"{name} {_number(value)}")


def render(conn: Connection, *, recorder: RecorderStatsLike | None = None,
           exporters: Mapping[str, Mapping[str, float]] | None = None) -> str:
    """The whole ``/metrics`` document."""
    out = _Writer()
    opened = queries.open_sessions(conn)
    totals = queries.all_time(conn)
    kinds: dict[str, dict[str, tuple[int, int]]] = totals["kinds"]
    costs: dict[str, dict[str, Any]] = totals["costs"]
    bots = sorted(set(kinds) | set(costs) | set(opened))
    out.family("opencell_sessions_open", "gauge", "Sessions open now.",
               [({"bot": bot}, opened.get(bot, 0)) for bot in bots])
    for kind, name in _KINDS:
        help_text = (f"{kind} events recorded" + (
            " (also inside turns that were retried and answered: failed turns are "
            "opencell_turns_failed_total)." if kind == "error" else "."))
        out.family(f"opencell_{name}_total", "counter", help_text,
                   [({"bot": bot}, kinds.get(bot, {}).get(kind, (0, 0))[0]) for bot in bots])
    out.family("opencell_turns_failed_total", "counter",
               "Turns that failed (the user got no answer).",
               [({"bot": bot}, kinds.get(bot, {}).get("message", (0, 0))[1]) for bot in bots])
    out.family("opencell_sessions_failed_total", "counter", "Sessions that ended failed.",
               [({"bot": bot}, kinds.get(bot, {}).get("session_end", (0, 0))[1])
                for bot in bots])
    token_samples = []
    for bot in bots:
        row = costs.get(bot, {})
        for kind in ("input", "output", "cache_read", "cache_write"):
            token_samples.append(({"bot": bot, "type": kind}, row.get(f"{kind}_tokens", 0)))
    out.family("opencell_tokens_total", "counter", "Model tokens used.", token_samples)
    out.family("opencell_cost_usd_total", "counter", "Model cost in USD (priced calls).",
               [({"bot": bot}, costs.get(bot, {}).get("cost_usd", 0.0)) for bot in bots])
    out.family("opencell_unpriced_calls_total", "counter",
               "Model calls with no known price (add a pricing override).",
               [({"bot": bot}, costs.get(bot, {}).get("unpriced_calls", 0)) for bot in bots])
    if recorder is not None:
        out.family("opencell_recorder_queue_depth", "gauge",
                   "Records waiting for the store.", [({}, recorder.queued)])
        out.family("opencell_recorder_dropped_total", "counter",
                   "Records this process dropped, by reason (queue_full, unstored_at_close …).",
                   [({"reason": reason}, n) for reason, n in sorted(recorder.dropped_by.items())]
                   or [({}, recorder.dropped)])
        out.family("opencell_recorder_quarantined_total", "counter",
                   "Records this process's store refused, isolated and kept apart.",
                   [({}, recorder.quarantined)])
        out.family("opencell_recorder_written_total", "counter", "Records stored.",
                   [({}, recorder.written)])
        out.family("opencell_recorder_write_failures_total", "counter",
                   "Failed store writes (retried).", [({}, recorder.failures)])
        out.family("opencell_recorder_store_failing", "gauge",
                   "1 while the store is failing.", [({}, 1 if recorder.failing else 0)])
    _losses(out, conn)
    if exporters is None:
        exporters = queries.exporter_lag(conn)
    if exporters:
        gauges: dict[str, list[tuple[Mapping[str, str], float]]] = {}
        for exporter, values in sorted(exporters.items()):
            for key, value in sorted(values.items()):
                if _NAME.match(key) and isinstance(value, int | float):
                    gauges.setdefault(key, []).append(({"exporter": exporter}, value))
        for key, samples in gauges.items():
            kind = "counter" if key.endswith("_total") else "gauge"
            out.family(f"opencell_exporter_{key}", kind, f"Exporter {key}.", samples)
    return "\n".join(out.lines) + "\n"


def _losses(out: _Writer, conn: Connection) -> None:
    """Store-wide: records any process dropped (by reason) or the store quarantined."""
    from opencell.store.losses import losses

    found = losses(conn)
    out.family("opencell_records_dropped_total", "counter",
               "Records recorders sharing this store dropped, by reason (as they noted them).",
               [({"reason": reason}, n) for reason, n in sorted(found["dropped"].items())])
    out.family("opencell_records_quarantined_total", "counter",
               "Records the store refused and kept apart (table quarantine).",
               [({}, found["quarantined"])])
