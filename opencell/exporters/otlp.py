"""The OTLP exporter: conversations as OpenTelemetry GenAI traces, for any OTLP/HTTP backend.

Phoenix, Langfuse, MLflow, Jaeger, Grafana Tempo or a Collector read it; what the spans look
like is in ``_otlp_spans.py`` (a trace per turn, grouped by ``session.id``). Message and tool
content (``gen_ai.input.messages`` and the rest, ``input.value``/``output.value``) is sent
only with ``export_content: true``; it comes from the stored, already redacted records.

Where it sends, and how, follows the standard OpenTelemetry environment variables over the
config (``observability.otlp``):

- ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``: the traces URL, used as is; else
  ``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``endpoint``, a base URL to which ``/v1/traces`` is
  appended unless it already ends with it;
- ``OTEL_EXPORTER_OTLP_HEADERS`` then ``OTEL_EXPORTER_OTLP_TRACES_HEADERS``
  (``key=value,…``, values URL-encoded) on top of ``headers`` from the config;
- ``OTEL_EXPORTER_OTLP_TRACES_COMPRESSION`` / ``OTEL_EXPORTER_OTLP_COMPRESSION``: ``gzip`` or
  ``none`` (the default);
- ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES`` (``key=value,…``) for the resource
  (``service.name`` defaults to ``opencell``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan

from opencell.exporters._http import (
    Delivery,
    ExportSession,
    quiet_otlp_logs,
    send_spans,
)
from opencell.exporters._otlp_spans import PROVIDERS, OTLPSpans
from opencell.exporters._spans import RESOURCE
from opencell.exporters.outbox import StoredEvent

if TYPE_CHECKING:
    from opencell.config import OTLPConfig

__all__ = ["PROVIDERS", "OTLPExporter", "OTLPTarget", "otlp_target", "probe_body",
           "traces_url"]


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL for a base endpoint (``/v1/traces`` appended once)."""
    base = endpoint.strip().rstrip("/")
    return base if base.endswith("/v1/traces") else f"{base}/v1/traces"


def key_values(text: str) -> dict[str, str]:
    """``k1=v1,k2=v2`` (the OpenTelemetry list format; values URL-encoded) as a dict.
    Entries without ``=`` or with an empty key are skipped."""
    out: dict[str, str] = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            out[unquote(key.strip())] = unquote(value.strip())
    return out


@dataclass(frozen=True)
class OTLPTarget:
    """Where and how spans are sent, and the resource they describe."""

    url: str
    headers: dict[str, str]
    gzip: bool
    resource: Resource


def otlp_target(config: OTLPConfig, env: Mapping[str, str]) -> OTLPTarget:
    """The config with the standard ``OTEL_*`` variables applied (see the module docstring)."""
    exact = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    url = exact or traces_url(config.endpoint)
    headers = {**config.headers, **key_values(env.get("OTEL_EXPORTER_OTLP_HEADERS", "")),
               **key_values(env.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS", ""))}
    compression = (env.get("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "").strip()
                   or env.get("OTEL_EXPORTER_OTLP_COMPRESSION", "").strip()).lower()
    attributes: dict[str, Any] = dict(RESOURCE.attributes)
    attributes |= key_values(env.get("OTEL_RESOURCE_ATTRIBUTES", ""))
    service = env.get("OTEL_SERVICE_NAME", "").strip()
    if service:
        attributes["service.name"] = service
    return OTLPTarget(url, headers, compression == "gzip", Resource(attributes))


def probe_body(target: OTLPTarget, now: float) -> bytes:
    """A minimal valid export for ``opencell doctor``: one zero-length span named
    ``opencell doctor`` (some backends, MLflow for one, answer 400 to an export with none).
    Gzip-compressed when the target says so (send ``Content-Encoding: gzip`` then)."""
    import gzip
    import os

    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    from opencell.exporters._spans import make_span, ns

    at = ns(now)
    span = make_span("opencell doctor", session_id=os.urandom(16).hex(),
                     span=int.from_bytes(os.urandom(8), "big") or 1, parent=None,
                     start=at, end=at, attributes={"opencell.probe": True},
                     resource=target.resource)
    body = encode_spans([span]).SerializeToString()
    return gzip.compress(body) if target.gzip else body


class OTLPExporter(OTLPSpans):
    """A :class:`~opencell.exporters._worker.SpanSink` for any OTLP backend."""

    name = "otlp"
    label = "[OTLP]"

    def __init__(self, config: OTLPConfig, *, request_timeout: float = 10.0,
                 env: Mapping[str, str] | None = None) -> None:
        target = otlp_target(config, env or {})
        super().__init__(content=config.export_content, resource=target.resource)
        self.endpoint = target.url
        quiet_otlp_logs()
        self._session = ExportSession()
        self._exporter = OTLPSpanExporter(
            endpoint=self.endpoint, session=self._session, headers=target.headers,
            timeout=request_timeout,
            compression=Compression.Gzip if target.gzip else Compression.NoCompression)

    def connect(self, timeout: float) -> Delivery:
        return Delivery(True)

    def send(self, spans: Sequence[ReadableSpan], timeout: float) -> Delivery:
        return send_spans(self._exporter, self._session, spans, timeout)

    def delivered(self, batch: Sequence[StoredEvent], spans: Sequence[ReadableSpan]) -> None:
        """Nothing to do: OTLP backends need no links logged."""

    def close(self) -> None:
        self._exporter.shutdown()  # type: ignore[no-untyped-call]
