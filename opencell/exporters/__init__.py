"""Exporters: what the store holds, delivered to AgentOps and to any OpenTelemetry backend.

``start_exporters`` starts one worker thread per enabled exporter, each draining its outbox
(``outbox.py``) from the store: turns never wait for an exporter, a backend outage loses
nothing, and a stop leaves what was not delivered for the next start. ``stats()`` reports
lag and failures for ``/metrics``; ``agentops_session_url`` links a session to AgentOps.

Settings come from ``observability.agentops`` / ``observability.otlp`` in
``config/opencell.yaml``; ``AGENTOPS_*`` and the ``OTEL_*`` variables win when set
(the shipped config maps them; without a config file they still apply).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opencell.exporters._http import describe as describe_failure
from opencell.exporters._worker import Backoff, ExportWorker, SpanSink
from opencell.exporters.agentops import (
    AgentOpsExporter,
    agentops_session_url,
)
from opencell.exporters.outbox import Outbox, cursor_rows
from opencell.guard import guard

if TYPE_CHECKING:
    from opencell.config import AgentOpsConfig, OpenCellConfig, OTLPConfig
    from opencell.llm.pricing import PriceBook
    from opencell.store import Store

__all__ = ["ExportTuning", "Exporters", "agentops_session_url", "cursor_rows",
           "describe_failure", "effective_settings", "start_exporters"]

log = logging.getLogger("opencell.exporters")

_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class ExportTuning:
    """How the workers pace themselves (defaults for production; tests inject time)."""

    batch_events: int = 256
    poll_interval: float = 0.5
    request_timeout: float = 10.0
    backoff: Callable[[int], float] = field(default_factory=Backoff)
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] | None = None
    """Replaces the interruptible wait between rounds (a manual clock in tests)."""


@dataclass
class Exporters:
    """The exporters one :class:`~opencell.observability.observer.Observability` started and
    owns (no registry: two in one process never see each other's)."""

    workers: list[ExportWorker] = field(default_factory=list)

    def stats(self) -> list[dict[str, Any]]:
        """Every worker's counters: ``exporter, endpoint, state (starting | ok | failing |
        auth_failed | standby | stopped), pending_events, oldest_pending_age_s,
        delivered_events, delivered_spans, rejected_events, failed_attempts,
        consecutive_failures, last_error, last_success_at, cursor``."""
        return [worker.stats() for worker in self.workers]

    def metrics(self) -> dict[str, dict[str, float]]:
        """:meth:`stats` as Prometheus-ready numbers per exporter (the dashboard's
        ``ExporterStats`` hook): ``lag_events``, ``lag_seconds``, ``failing`` (1/0),
        ``consecutive_failures``, and the counters ``delivered_events_total``,
        ``delivered_spans_total``, ``failures_total``, ``rejected_events_total``."""
        return {row["exporter"]: _gauges(row) for row in self.stats()}

    def wake(self) -> None:
        """Ask every worker to look at its outbox now (tests, flush paths)."""
        for worker in self.workers:
            worker.wake()

    def agentops_session_url(self, session_id: str) -> str | None:
        """The session's page in the AgentOps app (see :func:`agentops_session_url`)."""
        running = [w.sink for w in self.workers if isinstance(w.sink, AgentOpsExporter)]
        return agentops_session_url(session_id, running[-1] if running else None)

    def stop(self, timeout: float = 5.0) -> bool:
        """Give every exporter ``timeout`` seconds (together, not each) to deliver, then
        stop them. True when nothing was left pending."""
        deadline = time.monotonic() + max(0.0, timeout) + 0.5
        for worker in self.workers:
            worker.begin_stop(timeout)
        done = True
        for worker in self.workers:
            done = worker.finish_stop(deadline) and done
        return done


def _gauges(row: Mapping[str, Any]) -> dict[str, float]:
    return {
        "lag_events": float(row["pending_events"]),
        "lag_seconds": float(row["oldest_pending_age_s"] or 0.0),
        "failing": 1.0 if row["state"] in ("failing", "auth_failed") else 0.0,
        "consecutive_failures": float(row["consecutive_failures"]),
        "delivered_events_total": float(row["delivered_events"]),
        "delivered_spans_total": float(row["delivered_spans"]),
        "failures_total": float(row["failed_attempts"]),
        "rejected_events_total": float(row["rejected_events"]),
    }


def effective_settings(config: OpenCellConfig, env: Mapping[str, str]
                       ) -> tuple[AgentOpsConfig, OTLPConfig]:
    """The AgentOps and OTLP settings with the environment variables applied on top."""
    agentops, otlp = config.observability.agentops, config.observability.otlp
    changes: dict[str, Any] = {}
    if env.get("AGENTOPS_ENABLED", "").strip():
        changes["enabled"] = env["AGENTOPS_ENABLED"].strip().lower() in _TRUE
    for variable, name in (("AGENTOPS_API_KEY", "api_key"), ("AGENTOPS_ENDPOINT", "endpoint"),
                           ("AGENTOPS_EXPORTER_ENDPOINT", "exporter_endpoint")):
        if env.get(variable, "").strip():
            changes[name] = env[variable].strip()
    if env.get("AGENTOPS_TAGS", "").strip():
        changes["tags"] = [t.strip() for t in env["AGENTOPS_TAGS"].split(",") if t.strip()]
    if changes:
        agentops = agentops.model_copy(update=changes)
    for variable in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        # The traces endpoint wins (and is used as is: see ``otlp.otlp_target``).
        if env.get(variable, "").strip():
            otlp = otlp.model_copy(update={"endpoint": env[variable].strip()})
    return agentops, otlp


def start_exporters(config: OpenCellConfig, store: Store, *,
                    env: Mapping[str, str], prices: PriceBook | None = None,
                    tuning: ExportTuning | None = None) -> Exporters:
    """Start a worker per enabled exporter; the caller owns them (``Exporters.stop``).

    Never raises: an exporter that cannot be set up is logged and left out.
    """
    tuning = tuning or ExportTuning()
    agentops, otlp = effective_settings(config, env)
    sinks: list[SpanSink] = []
    if agentops.enabled:
        if not agentops.api_key.strip():
            log.error("[AgentOps] not started: AGENTOPS_API_KEY is empty (AGENTOPS_ENABLED is "
                      "true); set the key, or AGENTOPS_ENABLED=false")
        else:
            with guard("exporter.agentops.setup", logger=log):
                sinks.append(AgentOpsExporter(agentops, prices=prices, env=env,
                                              request_timeout=tuning.request_timeout))
    if otlp.endpoint.strip():
        with guard("exporter.otlp.setup", logger=log):
            from opencell.exporters.otlp import OTLPExporter

            sinks.append(OTLPExporter(otlp, request_timeout=tuning.request_timeout, env=env))
    exporters = Exporters()
    for sink in sinks:
        worker = ExportWorker(sink, Outbox(store, sink.name), batch_events=tuning.batch_events,
                              poll_interval=tuning.poll_interval, backoff=tuning.backoff,
                              request_timeout=tuning.request_timeout, clock=tuning.clock,
                              sleep=tuning.sleep)
        worker.start()
        exporters.workers.append(worker)
        log.info("%s exporter started endpoint=%s", sink.label, sink.endpoint)
    return exporters
